//! `serverTLSBootstrap` in kube-system's kubelet-config ConfigMap, the copy that `kubeadm
//! join` and `kubeadm upgrade` write into every node's /var/lib/kubelet/config.yaml. The
//! embedded KubeletConfiguration (data key `kubelet`) gets the node file's single-key text
//! edit (`node::kubelet_edit`): one key changes, every other byte stays. The write carries
//! the resourceVersion read; a 409 re-reads and tries again.
//!
//! The name: kubeadm ≥ 1.24 uses `kubelet-config`; older kubeadm used `kubelet-config-1.X`
//! for control-plane version 1.X (kubernetes CHANGELOG-1.24.md: the UnversionedKubeletConfigMap
//! feature gate went Beta and on by default, "kubeadm will start using the
//! kube-system/kubelet-config naming scheme"; CHANGELOG-1.25.md: GA and locked; the old
//! name came from cmd/kubeadm/app/constants `GetKubeletConfigMapName`,
//! `KubeletBaseConfigurationConfigMapPrefix` + "MAJOR.MINOR"). The unversioned name is tried
//! first, then the versioned one for the server's `/version`.

use super::client::Kube;
use super::KubeError;
use crate::node::kubelet_edit::{edited_text, line_diff};
use k8s_openapi::api::core::v1::ConfigMap;

/// The namespace.
pub const NAMESPACE: &str = "kube-system";
/// kubeadm ≥ 1.24's name.
pub const UNVERSIONED: &str = "kubelet-config";
/// The data key holding the KubeletConfiguration (kubeadm's KubeletBaseConfigurationConfigMapKey).
pub const DATA_KEY: &str = "kubelet";
/// Conflicts retried before giving up (each retry re-reads).
const CONFLICT_RETRIES: usize = 5;

/// What the edit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmEdit {
    /// The key already had the value.
    Unchanged {
        /// The ConfigMap's name.
        name: String,
    },
    /// The ConfigMap was updated.
    Changed {
        /// The ConfigMap's name.
        name: String,
        /// A diff of the embedded KubeletConfiguration.
        diff: String,
    },
}

/// Why the ConfigMap was not set.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CmError {
    /// The API call failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// Neither name exists.
    #[error(
        "no kubelet ConfigMap in kube-system (looked for {0}); was this cluster made with kubeadm?"
    )]
    NotFound(String),
    /// Its content cannot take the edit.
    #[error("ConfigMap kube-system/{name}, key {DATA_KEY}: {why}")]
    Content {
        /// The ConfigMap.
        name: String,
        /// What is wrong.
        why: String,
    },
}

impl CmError {
    /// Whether waiting for the API may help (unreachable, timed out, 5xx).
    pub fn transient(&self) -> bool {
        matches!(self, CmError::Kube(e) if e.transient())
    }
}

/// `kubelet-config-MAJOR.MINOR` for a gitVersion such as `v1.23.17`.
pub fn versioned_name(git_version: &str) -> Option<String> {
    let v = git_version.trim_start_matches('v');
    let mut it = v.split('.');
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some(format!("{UNVERSIONED}-{major}.{minor}"))
}

/// Find the cluster's kubelet ConfigMap.
async fn find(kube: &Kube) -> Result<ConfigMap, CmError> {
    match kube.configmap(NAMESPACE, UNVERSIONED).await {
        Ok(cm) => return Ok(cm),
        Err(e) if e.not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let git = kube.git_version().await?;
    let Some(name) = versioned_name(&git) else {
        return Err(CmError::NotFound(UNVERSIONED.into()));
    };
    match kube.configmap(NAMESPACE, &name).await {
        Ok(cm) => Ok(cm),
        Err(e) if e.not_found() => Err(CmError::NotFound(format!("{UNVERSIONED} and {name}"))),
        Err(e) => Err(e.into()),
    }
}

/// Set `serverTLSBootstrap` to `enable` in the cluster's kubelet ConfigMap.
pub async fn set_server_tls_bootstrap(kube: &Kube, enable: bool) -> Result<CmEdit, CmError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut cm = find(kube).await?;
        let name = cm.metadata.name.clone().unwrap_or_default();
        let content = |why: String| CmError::Content {
            name: name.clone(),
            why,
        };
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(DATA_KEY))
            .cloned()
            .ok_or_else(|| content("missing".into()))?;
        let Some(new) = edited_text(&text, enable).map_err(|e| content(format!("{e:#}")))? else {
            return Ok(CmEdit::Unchanged { name });
        };
        let diff = line_diff(&format!("{NAMESPACE}/{name}:{DATA_KEY}"), &text, &new);
        cm.data
            .get_or_insert_with(Default::default)
            .insert(DATA_KEY.into(), new);
        match kube.replace_configmap(&cm).await {
            Ok(_) => return Ok(CmEdit::Changed { name, diff }),
            Err(e) if e.conflict() && attempt <= CONFLICT_RETRIES => {
                tracing::debug!("{e}; reading it again");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_names() {
        assert_eq!(
            versioned_name("v1.23.17").as_deref(),
            Some("kubelet-config-1.23")
        );
        assert_eq!(
            versioned_name("v1.22.0-rc.1").as_deref(),
            Some("kubelet-config-1.22")
        );
        assert_eq!(
            versioned_name("v1.21+k3s1").as_deref(),
            Some("kubelet-config-1.21")
        );
        assert_eq!(versioned_name("garbage"), None);
    }
}
