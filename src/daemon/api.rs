//! The daemon's Kubernetes side (issue 17), as tokio tasks on its current-thread runtime:
//! the kubelet serving CSR approver (`approver.mode`), and `serverTLSBootstrap` in the
//! kubelet-config ConfigMap (`kubelet.serverTLSBootstrap`, or a value left pending by
//! `kubelet-serving-certs`). Started at start-up and again after each reload; the cycle never
//! waits for them. Their counters reach the metrics textfile through a shared handle.

use crate::act::cancel::Cancel;
use crate::act::kubelet::pending;
use crate::act::metrics::{KubeGauges, KubeSource};
use crate::config::ApproverMode;
use crate::context::{now, Ctx};
use crate::kube::approver;
use crate::kube::client::{sleep, Backoff, Kube};
use crate::kube::kubelet_config::{set_server_tls_bootstrap, CmEdit, CmError};
use crate::kube::stats::Shared;
use crate::logging;
use crate::node::NodePaths;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The running tasks; dropping this stops them.
#[derive(Default)]
pub struct KubeTasks {
    handles: Vec<JoinHandle<()>>,
    stats: Option<Shared>,
}

impl Drop for KubeTasks {
    fn drop(&mut self) {
        self.handles.iter().for_each(JoinHandle::abort);
    }
}

impl KubeTasks {
    /// What the metrics textfile reads.
    pub fn source(&self) -> KubeSource {
        let Some(s) = self.stats.clone() else {
            return KubeSource::default();
        };
        KubeSource(Some(Arc::new(move || {
            let s = s.snapshot();
            KubeGauges {
                approver_on: s.approver_on,
                approved: s.approved,
                denied: s.denied,
                pending_created: s.pending.into_values().collect(),
                api_reachable: s.reachable,
            }
        })))
    }

    /// Start what the settings ask for. Connecting reads only the kubeconfig; nothing here
    /// waits for the API.
    pub async fn start(ctx: &Ctx, cancel: &Cancel) -> KubeTasks {
        let a = &ctx.settings.approver;
        let paths = &ctx.paths;
        let configmap = ctx
            .settings
            .kubelet_server_tls_bootstrap
            .or_else(|| pending::read(paths));
        let approve = a.mode != ApproverMode::Off;
        // The ClusterConfiguration refresh (issue 18) runs wherever the kubeconfig exists,
        // whatever the approver's mode: the client is needed in every case.
        let kube = match Kube::connect(&paths.root, &a.kubeconfig, cancel).await {
            Ok(Some(k)) => k,
            Ok(None) => {
                if a.mode == ApproverMode::On && logging::once_a_day("approver-no-kubeconfig") {
                    tracing::error!(
                        MESSAGE_ID = logging::MSG_APPROVER_FAILED,
                        ACTION = "csr-approve",
                        "approver.mode is on, but {} does not exist here: no kubelet serving CSR is approved by this node (approver.mode: auto turns it on only where the kubeconfig exists, i.e. on control-plane nodes)",
                        a.kubeconfig
                    );
                }
                return KubeTasks::default();
            }
            Err(e) => {
                if logging::once_a_day("approver-kubeconfig") {
                    tracing::error!(
                        MESSAGE_ID = logging::MSG_APPROVER_FAILED,
                        ACTION = "kube-api",
                        "cannot use the Kubernetes API: {e}"
                    );
                }
                return KubeTasks::default();
            }
        };
        let stats = Shared::default();
        let mut handles = Vec::new();
        if approve {
            // Set before the task first runs, so that the textfile written by the next cycle
            // already carries the approver's series.
            stats.lock().approver_on = true;
            let env = crate::context::approver_env(ctx);
            tracing::debug!(
                "approver starting with {} ({}; CSRs that fail a rule are {})",
                a.kubeconfig,
                if a.mode == ApproverMode::On {
                    "approver.mode: on"
                } else {
                    "approver.mode: auto, this node holds the kubeconfig"
                },
                if a.deny { "denied" } else { "left pending" }
            );
            handles.push(tokio::spawn(approver::run(
                kube.clone(),
                env,
                stats.clone(),
            )));
        }
        handles.push(tokio::spawn(super::cluster_config::refresh(
            kube.clone(),
            paths.clone(),
            stats.clone(),
            now,
        )));
        if let Some(enable) = configmap {
            handles.push(tokio::spawn(cluster_kubelet_config(
                kube,
                enable,
                paths.clone(),
                stats.clone(),
            )));
        }
        KubeTasks {
            handles,
            stats: Some(stats),
        }
    }
}

/// Set `serverTLSBootstrap` in the kubelet-config ConfigMap: at once when the API answers;
/// otherwise say once that the cluster part is pending, remember it in the state dir (a
/// restart keeps it), and retry quietly with backoff.
async fn cluster_kubelet_config(kube: Kube, enable: bool, paths: NodePaths, stats: Shared) {
    let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
    let mut said = false;
    loop {
        let r = set_server_tls_bootstrap(&kube, enable).await;
        if let Err(CmError::Kube(e)) = &r {
            stats.note::<()>(kube.url(), &Err(e.clone()));
        } else {
            stats.reached(kube.url());
        }
        match r {
            Ok(edit) => {
                let name = match &edit {
                    CmEdit::Changed { name, .. } | CmEdit::Unchanged { name } => name,
                };
                if matches!(edit, CmEdit::Changed { .. }) || said {
                    tracing::info!(
                        MESSAGE_ID = logging::MSG_KUBELET_CONFIGMAP_SET,
                        ACTION = "kubelet-config",
                        "serverTLSBootstrap: {enable} in ConfigMap kube-system/{name}: joins and upgrades keep it from now on"
                    );
                }
                if let Err(e) = pending::clear(&paths) {
                    tracing::warn!(ACTION = "kubelet-config", "{e:#}");
                }
                return;
            }
            Err(CmError::Kube(crate::kube::KubeError::Cancelled)) => return,
            Err(e) if e.transient() => {
                if !said {
                    said = true;
                    if let Err(w) = pending::write(&paths, enable, now()) {
                        tracing::warn!(ACTION = "kubelet-config", "{w:#}");
                    }
                    tracing::warn!(
                        MESSAGE_ID = logging::MSG_KUBELET_CONFIGMAP_PENDING,
                        ACTION = "kubelet-config",
                        "serverTLSBootstrap: {enable} in the cluster's kubelet-config ConfigMap is pending ({e}); it is set when the API answers"
                    );
                }
                if !sleep(backoff.next_delay(), kube.cancel()).await {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(
                    MESSAGE_ID = logging::MSG_KUBELET_CONFIGMAP_FAILED,
                    ACTION = "kubelet-config",
                    "serverTLSBootstrap: {enable} not set in the cluster's kubelet ConfigMap: {e} (tried again at the next start or reload)"
                );
                return;
            }
        }
    }
}

/// `run --once`: read the ClusterConfiguration once (bounded) before the cycle, so that a
/// timer-driven node keeps its copy fresh too. Without the kubeconfig, nothing.
pub async fn refresh_cluster_config_once(ctx: &Ctx, cancel: &Cancel) {
    let kubeconfig = &ctx.settings.approver.kubeconfig;
    match Kube::connect(&ctx.paths.root, kubeconfig, cancel).await {
        Ok(Some(kube)) => {
            super::cluster_config::refresh_once(kube, ctx.paths.clone(), now).await;
        }
        Ok(None) => {}
        Err(e) => tracing::debug!("reading the ClusterConfiguration: {e}"),
    }
}
