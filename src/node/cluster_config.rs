//! The cached copy of the cluster's ClusterConfiguration: `<stateDir>/cluster-config.json`.
//!
//! Issue 18 item 1 reads `kube-system/kubeadm-config` when the API answers and keeps the last
//! copy here, with when and where it was read, so that a dead cluster keeps its configured
//! values. This module only reads it; the writer (the API client's side) owns its contents.
//! Only the fields used so far are declared; unknown fields are kept by the writer and ignored
//! here, so the file can grow without breaking older readers.

use crate::node::NodePaths;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The file name inside stateDir.
pub const FILE: &str = "cluster-config.json";

/// Largest cache accepted (a ClusterConfiguration is a few KiB).
const MAX: u64 = 256 * 1024;

/// What the cache holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedClusterConfig {
    /// When the ConfigMap was read, RFC 3339 UTC.
    pub read_at: String,
    /// Where it was read from, e.g. `kube-system/kubeadm-config`.
    pub source: String,
    /// `ClusterConfiguration.kubernetesVersion`, e.g. `v1.31.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
}

/// Where the cache lives.
pub fn path(paths: &NodePaths) -> PathBuf {
    paths.state.join(FILE)
}

/// The cached copy: `Ok(None)` when there is none (never read, or a node without API access);
/// `Err` with the reason, naming the file, when it exists but cannot be used.
pub fn read(paths: &NodePaths) -> Result<Option<CachedClusterConfig>, String> {
    let file = path(paths);
    let host = paths.show(&file);
    let bytes = match crate::node::fsread::read_regular(&file, MAX) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{host}: {e}")),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{host}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_writer_keeps_and_ignores_fields_it_does_not_know() {
        let json = r#"{"readAt":"2026-12-01T10:00:00Z","source":"kube-system/kubeadm-config",
            "kubernetesVersion":"v1.33.4","certificateValidityPeriod":"17520h"}"#;
        let c: CachedClusterConfig = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kubernetes_version.as_deref(), Some("v1.33.4"));
        assert_eq!(c.source, "kube-system/kubeadm-config");
        let minimal = r#"{"readAt":"2026-12-01T10:00:00Z","source":"kube-system/kubeadm-config"}"#;
        let c: CachedClusterConfig =
            serde_json::from_str(minimal).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kubernetes_version, None);
    }
}
