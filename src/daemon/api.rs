//! The daemon's Kubernetes side (issue 17), as tokio tasks on its current-thread runtime:
//! the kubelet serving CSR approver (`approver.mode`), and `serverTLSBootstrap` in the
//! kubelet-config ConfigMap (`kubelet.serverTLSBootstrap`, or a value left pending by
//! `kubelet-serving-certs`, noticed after each cycle). Started at start-up; a reload restarts
//! only what its changes concern. The cycle never waits for them. Their counters reach the
//! metrics textfile through a shared handle, and last from start to exit.

use crate::act::cancel::Cancel;
use crate::act::kubelet::pending;
use crate::act::metrics::{KubeGauges, KubeSource};
use crate::config::ApproverMode;
use crate::context::{now, Ctx};
use crate::kube::approver;
use crate::kube::client::{pause, Backoff, Kube};
use crate::kube::kubelet_config::{set_server_tls_bootstrap, CmEdit, CmError};
use crate::kube::stats::Shared;
use crate::logging;
use crate::node::NodePaths;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// What the client and its tasks were started with. A reload that changes none of it keeps
/// them running, with their counters and standing conditions (issue 17: a SIGHUP that
/// changed nothing here must not reset `kubeadm_certd_csr_approved_total` or say "API
/// unreachable" again).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Basis {
    mode: ApproverMode,
    kubeconfig: String,
    deny: bool,
    ip_prefixes: Vec<String>,
    dns_pattern: Option<String>,
    /// Every node path the approver's facts come from (internal comparison only).
    paths: String,
    /// The kubeconfig's bytes: a renewed admin.conf gives a new client at the next reload.
    credentials: Option<Vec<u8>>,
}

impl Basis {
    fn of(ctx: &Ctx) -> Basis {
        let a = &ctx.settings.approver;
        Basis {
            mode: a.mode,
            kubeconfig: a.kubeconfig.clone(),
            deny: a.deny,
            ip_prefixes: a.ip_prefixes.iter().map(|p| p.to_string()).collect(),
            dns_pattern: a.dns_pattern.as_ref().map(|d| d.as_str().to_string()),
            paths: format!("{:?}", ctx.paths),
            credentials: crate::node::fsread::read_node_file(
                &ctx.paths.root,
                &ctx.paths.root.resolve(&a.kubeconfig),
            )
            .ok(),
        }
    }
}

/// How long the tasks get to end on their own at the daemon's stop.
const STOP_GRACE: Duration = Duration::from_millis(300);

/// The running tasks; dropping this stops them. The counters outlive the tasks: they are
/// the daemon's, from start to exit.
#[derive(Default)]
pub struct KubeTasks {
    kube: Option<Kube>,
    basis: Option<Basis>,
    stats: Shared,
    approver: Option<JoinHandle<()>>,
    refresh: Option<JoinHandle<()>>,
    /// The kubelet-config ConfigMap task and the value it sets.
    configmap: Option<(bool, JoinHandle<()>)>,
    /// The pending request (value, since) last taken up, so that each is taken up once.
    pending_seen: Option<(bool, String)>,
    /// Told of the tasks' calls and watch events (every client this makes reports to it).
    activity: Arc<tokio::sync::Notify>,
}

impl Drop for KubeTasks {
    fn drop(&mut self) {
        self.stop();
    }
}

impl KubeTasks {
    /// What the metrics textfile reads (nothing without a client).
    pub fn source(&self) -> KubeSource {
        if self.kube.is_none() {
            return KubeSource::default();
        }
        let s = self.stats.clone();
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
    /// waits for the API. `kubelet.serverTLSBootstrap`, when set, goes to the ConfigMap;
    /// otherwise a value `kubelet-serving-certs` left pending does.
    pub async fn start(ctx: &Ctx, cancel: &Cancel) -> KubeTasks {
        let mut t = KubeTasks::default();
        t.follow(ctx, cancel).await;
        t
    }

    /// After a reload, as at start, but the client and its tasks are restarted only when
    /// what they were started with changed, and a ConfigMap value already on its way is not
    /// started again. A ConfigMap value that failed for good is tried again.
    pub async fn reload(&mut self, ctx: &Ctx, cancel: &Cancel) {
        self.follow(ctx, cancel).await;
    }

    async fn follow(&mut self, ctx: &Ctx, cancel: &Cancel) {
        let basis = Basis::of(ctx);
        // A ConfigMap value still on its way survives a new client.
        let mut carried = None;
        if self.basis.as_ref() != Some(&basis) {
            carried = self
                .configmap
                .as_ref()
                .filter(|(_, h)| !h.is_finished())
                .map(|(v, _)| *v);
            self.stop();
            self.basis = Some(basis);
            self.connect(ctx, cancel).await;
        }
        if self.kube.is_none() {
            return;
        }
        let setting = ctx.settings.kubelet_server_tls_bootstrap;
        if let Some(v) = setting.or(carried) {
            self.set_configmap(v, &ctx.paths);
        }
        // The setting wins over what is pending now; a request written after this is taken
        // up at the next look.
        self.pending_seen = match setting {
            Some(_) => pending::read_request(&ctx.paths),
            None => None,
        };
        self.notice_pending(&ctx.paths);
    }

    /// At the daemon's stop (its cancel handle already cancelled): let the tasks end on their
    /// own for a moment, so that a decision the API has just recorded is also logged, then
    /// abort whatever still waits (a call to a hanging API). SIGTERM stays within 1 s.
    pub async fn finish(mut self) {
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        let tasks = [self.approver.as_mut(), self.refresh.as_mut()];
        for h in tasks
            .into_iter()
            .flatten()
            .chain(self.configmap.as_mut().map(|(_, h)| h))
        {
            let _ = tokio::time::timeout_at(deadline, h).await;
        }
    }

    /// The API side's activity signal: resolves after a call or watch event (one wake for
    /// any number of them since the last).
    pub fn activity(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.activity)
    }

    /// Stop the client's tasks (the counters stay).
    fn stop(&mut self) {
        let tasks = [self.approver.take(), self.refresh.take()];
        tasks
            .into_iter()
            .flatten()
            .chain(self.configmap.take().map(|(_, h)| h))
            .for_each(|h| h.abort());
        let mut s = self.stats.lock();
        s.approver_on = false;
        s.configmap = None;
        s.pending.clear();
    }

    /// Connect and start the approver (by its mode) and the ClusterConfiguration refresh.
    async fn connect(&mut self, ctx: &Ctx, cancel: &Cancel) {
        let a = &ctx.settings.approver;
        let paths = &ctx.paths;
        // The ClusterConfiguration refresh (issue 18) runs wherever the kubeconfig exists,
        // whatever the approver's mode: the client is needed in every case.
        let kube = match Kube::connect(&paths.root, &a.kubeconfig, cancel).await {
            Ok(Some(k)) => k.reporting_to(Arc::clone(&self.activity)),
            Ok(None) => {
                if a.mode == ApproverMode::On && logging::once_a_day("approver-no-kubeconfig") {
                    tracing::error!(
                        MESSAGE_ID = logging::MSG_APPROVER_FAILED,
                        ACTION = "csr-approve",
                        "approver.mode is on, but {} does not exist here: no kubelet serving CSR is approved by this node (approver.mode: auto turns it on only where the kubeconfig exists, i.e. on control-plane nodes)",
                        a.kubeconfig
                    );
                }
                self.kube = None;
                return;
            }
            Err(e) => {
                if logging::once_a_day("approver-kubeconfig") {
                    tracing::error!(
                        MESSAGE_ID = logging::MSG_APPROVER_FAILED,
                        ACTION = "kube-api",
                        "cannot use the Kubernetes API: {e}"
                    );
                }
                self.kube = None;
                return;
            }
        };
        // Another API server is another spell of (un)reachability.
        if self.kube.as_ref().map(Kube::url) != Some(kube.url()) {
            self.stats.lock().reachable = None;
        }
        if a.mode != ApproverMode::Off {
            // Set before the task first runs, so that the textfile written by the next cycle
            // already carries the approver's series.
            self.stats.lock().approver_on = true;
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
            self.approver = Some(tokio::spawn(approver::run(
                kube.clone(),
                env,
                self.stats.clone(),
            )));
        }
        self.refresh = Some(tokio::spawn(super::cluster_config::refresh(
            kube.clone(),
            paths.clone(),
            self.stats.clone(),
            now,
        )));
        self.kube = Some(kube);
    }

    /// After each cycle. The cycle may have renewed the kubeconfig's client certificate
    /// (admin.conf is renewed like every kubeadm kubeconfig): a client still holding the old
    /// one would be refused once it expires, and approvals would stop. So a kubeconfig whose
    /// bytes changed gives a new client and tasks (the counters stay); then a value
    /// `kubelet-serving-certs` left pending is taken up.
    pub async fn after_cycle(&mut self, ctx: &Ctx, cancel: &Cancel) {
        let renewed = self
            .basis
            .as_ref()
            .is_some_and(|b| b.credentials != Basis::of(ctx).credentials);
        if renewed {
            tracing::info!(
                ACTION = "kube-api",
                "{} changed: the API client now uses its new credentials",
                ctx.settings.approver.kubeconfig
            );
            self.follow(ctx, cancel).await;
        } else {
            self.notice_pending(&ctx.paths);
        }
    }

    /// Take up a value `kubelet-serving-certs` left pending since the last look (issue 17
    /// item 5): the daemon looks after each cycle, and a command that changes the node file
    /// starts one. Each request is taken up once; one for the value already on its way
    /// changes nothing.
    pub fn notice_pending(&mut self, paths: &NodePaths) {
        if self.kube.is_none() {
            return;
        }
        let Some(request) = pending::read_request(paths) else {
            return;
        };
        if self.pending_seen.as_ref() == Some(&request) {
            return;
        }
        let enable = request.0;
        self.pending_seen = Some(request);
        self.set_configmap(enable, paths);
    }

    /// Have the ConfigMap task set `enable`, unless it is already doing so.
    fn set_configmap(&mut self, enable: bool, paths: &NodePaths) {
        let Some(kube) = self.kube.clone() else {
            return;
        };
        if let Some((v, h)) = &self.configmap {
            if *v == enable && !h.is_finished() {
                return;
            }
            h.abort();
        }
        self.stats.lock().configmap = Some(enable);
        let task = cluster_kubelet_config(kube, enable, paths.clone(), self.stats.clone());
        self.configmap = Some((enable, tokio::spawn(task)));
    }
}

/// Set `serverTLSBootstrap` in the kubelet-config ConfigMap: at once when the API answers;
/// otherwise say once that the cluster part is pending, remember it in the state dir (a
/// restart keeps it), and retry quietly with backoff.
async fn cluster_kubelet_config(kube: Kube, enable: bool, paths: NodePaths, stats: Shared) {
    let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
    // Said already by this task's predecessor (the same value, before a new client).
    let mut said = stats.lock().configmap_said == Some(enable);
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
                let mut s = stats.lock();
                s.configmap = None;
                s.configmap_said = None;
                return;
            }
            Err(CmError::Kube(crate::kube::KubeError::Cancelled)) => return,
            Err(e) if e.transient() => {
                if !said {
                    said = true;
                    stats.lock().configmap_said = Some(enable);
                    if let Err(w) = pending::write(&paths, enable, now()) {
                        tracing::warn!(ACTION = "kubelet-config", "{w:#}");
                    }
                    tracing::warn!(
                        MESSAGE_ID = logging::MSG_KUBELET_CONFIGMAP_PENDING,
                        ACTION = "kubelet-config",
                        "serverTLSBootstrap: {enable} in the cluster's kubelet-config ConfigMap is pending ({e}); it is set when the API answers"
                    );
                }
                if !pause(backoff.next_delay(), kube.cancel()).await {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(
                    MESSAGE_ID = logging::MSG_KUBELET_CONFIGMAP_FAILED,
                    ACTION = "kubelet-config",
                    "serverTLSBootstrap: {enable} not set in the cluster's kubelet ConfigMap: {e} (tried again at the next start or reload, or when `kubelet-serving-certs` asks again)"
                );
                let mut s = stats.lock();
                s.configmap = None;
                s.configmap_said = None;
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
