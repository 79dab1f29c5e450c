//! Reading the cluster's ClusterConfiguration: ConfigMap `kube-system/kubeadm-config`, data
//! key `ClusterConfiguration`, as kubeadm reads it (kubernetes/kubernetes
//! `cmd/kubeadm/app/util/config/cluster.go` @4207ddeb, `getInitConfigurationFromCluster`:
//! `client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(constants.KubeadmConfigConfigMap)`,
//! then `configMap.Data[constants.ClusterConfigurationConfigMapKey]`; a missing key is an
//! error). Only the text is returned here; `node::cluster_config::parse` validates it.
//!
//! The API is a guest: the daemon reads it in a task of its own and renewals read the copy in
//! the state dir; a command may try once, bounded by a few seconds and a stop request.

use super::client::{race, Kube};
use super::KubeError;
use crate::act::cancel::Cancel;
use crate::node::cluster_config::{CONFIGMAP, DATA_KEY};
use crate::node::paths::Root;
use std::time::Duration;

/// The namespace.
pub const NAMESPACE: &str = "kube-system";
/// kubeadm's `KubeadmConfigConfigMap`.
pub const NAME: &str = "kubeadm-config";
/// How long a command waits for the API before renewing from the copy (or the default).
pub const COMMAND_BOUND: Duration = Duration::from_secs(3);

/// Why the document was not read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// The call failed (unreachable, timed out, refused...).
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// The ConfigMap or its key does not exist (not a kubeadm cluster, or a very old one).
    #[error("{0}")]
    Missing(String),
}

impl ReadError {
    /// Whether trying again later may help.
    pub fn transient(&self) -> bool {
        matches!(self, ReadError::Kube(e) if e.transient())
    }
}

/// The `ClusterConfiguration` document of `kube-system/kubeadm-config`.
pub async fn read(kube: &Kube) -> Result<String, ReadError> {
    let cm = match kube.configmap(NAMESPACE, NAME).await {
        Ok(cm) => cm,
        Err(e) if e.not_found() => {
            return Err(ReadError::Missing(format!(
                "ConfigMap {CONFIGMAP} does not exist (was this cluster made with kubeadm?)"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    cm.data
        .and_then(|mut d| d.remove(DATA_KEY))
        .ok_or_else(|| ReadError::Missing(format!("ConfigMap {CONFIGMAP} has no key {DATA_KEY}")))
}

/// For the commands: connect with `kubeconfig` (a host path under `root`) and read the
/// document, all within `bound` and cut short by `cancel`, on a runtime of its own.
/// `Ok(None)` when the kubeconfig does not exist (a worker); `Err` says why, one line.
pub fn read_bounded(
    root: &Root,
    kubeconfig: &str,
    bound: Duration,
    cancel: &Cancel,
) -> Result<Option<String>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    rt.block_on(async {
        let attempt = async {
            let Some(kube) = Kube::connect(root, kubeconfig, cancel).await? else {
                return Ok::<_, ReadError>(None);
            };
            read(&kube).await.map(Some)
        };
        match race(attempt, bound, cancel).await {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e.to_string()),
            None if cancel.is_cancelled() => Err(KubeError::Cancelled.to_string()),
            None => Err(format!(
                "the API server did not answer within {} ({kubeconfig})",
                crate::logging::human_duration(bound)
            )),
        }
    })
}
