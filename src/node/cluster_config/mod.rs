//! The cluster's ClusterConfiguration (issue 18 item 1): the document kubeadm keeps in
//! `kube-system/kubeadm-config` (`parse`), the server URL its `controlPlaneEndpoint` means
//! (`endpoint`), and the copy kept in `<stateDir>/cluster-config.json` so that a dead cluster
//! keeps its configured values.
//!
//! The cache is written (atomically, by `act::cluster_config`) only with a ClusterConfiguration
//! that parsed and validated, with when and where it was read. This module only reads it.
//! Unknown fields are ignored, so the file can grow without breaking older readers.

/// `controlPlaneEndpoint` -> server URL, as kubeadm forms it.
pub mod endpoint;
/// The ClusterConfiguration document: parsing and validation.
pub mod parse;

pub use parse::{ClusterConfig, EncryptionAlgorithm};

use crate::node::NodePaths;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The file name inside stateDir.
pub const FILE: &str = "cluster-config.json";
/// The ConfigMap, as messages name it.
pub const CONFIGMAP: &str = "kube-system/kubeadm-config";
/// The data key holding the ClusterConfiguration (kubeadm's
/// `ClusterConfigurationConfigMapKey`; `cmd/kubeadm/app/util/config/cluster.go` reads
/// `configMap.Data[constants.ClusterConfigurationConfigMapKey]`).
pub const DATA_KEY: &str = "ClusterConfiguration";

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
    /// Its `apiVersion`, e.g. `kubeadm.k8s.io/v1beta4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The ClusterConfiguration document exactly as read (parsed again on use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_configuration: Option<String>,
}

impl CachedClusterConfig {
    /// The cached document, parsed and validated; `Ok(None)` for a cache that holds only the
    /// version (written before the document was kept).
    pub fn config(&self) -> Result<Option<ClusterConfig>, String> {
        self.cluster_configuration
            .as_deref()
            .map(parse::parse)
            .transpose()
    }
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
        assert_eq!(c.config(), Ok(None));
        let minimal = r#"{"readAt":"2026-12-01T10:00:00Z","source":"kube-system/kubeadm-config"}"#;
        let c: CachedClusterConfig =
            serde_json::from_str(minimal).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kubernetes_version, None);
    }

    #[test]
    fn the_kept_document_is_parsed_again() {
        let c = CachedClusterConfig {
            read_at: "2026-12-01T10:00:00Z".into(),
            source: CONFIGMAP.into(),
            kubernetes_version: None,
            api_version: None,
            cluster_configuration: Some(
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: RSA-3072\n"
                    .into(),
            ),
        };
        let got = c.config().unwrap().unwrap();
        assert_eq!(got.encryption_algorithm, Some(EncryptionAlgorithm::Rsa3072));
        let broken = CachedClusterConfig {
            cluster_configuration: Some("apiVersion: v1\n".into()),
            ..c
        };
        assert!(broken.config().is_err());
    }
}
