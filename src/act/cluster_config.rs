//! Keeping the cluster's ClusterConfiguration in `<stateDir>/cluster-config.json` (issue 18
//! item 1): only a document that parsed and validated, with when it was read, written
//! atomically (temp file, fsync, rename, fsync dir) so that a reader never sees half a file.

use crate::act::store::atomic::{create_dir_all_mode, write_atomic};
use crate::node::cluster_config::{self as cc, CachedClusterConfig, ClusterConfig};
use crate::node::NodePaths;
use anyhow::{Context, Result};
use time::OffsetDateTime;

/// What keeping a copy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// No copy was kept before.
    First,
    /// The document differs from the copy kept before.
    Changed,
    /// Same document; only the time it was read moved on.
    Same,
}

/// Keep `text` (already parsed into `config`), read at `at`.
pub fn keep(
    paths: &NodePaths,
    text: &str,
    config: &ClusterConfig,
    at: OffsetDateTime,
) -> Result<Kept> {
    let before = cc::read(paths).ok().flatten();
    let kept = match &before {
        None => Kept::First,
        Some(b) if b.cluster_configuration.as_deref() == Some(text) => Kept::Same,
        Some(_) => Kept::Changed,
    };
    let c = CachedClusterConfig {
        read_at: crate::logging::rfc3339(at),
        source: cc::CONFIGMAP.to_string(),
        kubernetes_version: config.kubernetes_version.clone(),
        api_version: Some(config.api_version.clone()),
        cluster_configuration: Some(text.to_string()),
    };
    create_dir_all_mode(&paths.state, 0o700)?;
    let file = cc::path(paths);
    let json = serde_json::to_vec_pretty(&c)?;
    write_atomic(&file, &json, 0o600).with_context(|| paths.show(&file))?;
    Ok(kept)
}

/// One line for the journal: what the kept ClusterConfiguration says.
pub fn summary(config: &ClusterConfig) -> String {
    let validity = config
        .certificate_validity
        .map(crate::plan::cluster_inputs::days)
        .unwrap_or_else(|| "unset (one year)".into());
    let alg = config
        .encryption_algorithm
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unset (RSA-2048)".into());
    format!(
        "{}: kubernetesVersion {}, certificateValidityPeriod {validity}, encryptionAlgorithm {alg}, controlPlaneEndpoint {}, certificatesDir {}",
        config.api_version,
        config.kubernetes_version.as_deref().unwrap_or("unset"),
        config.control_plane_endpoint.as_deref().unwrap_or("unset"),
        config
            .certificates_dir
            .as_deref()
            .unwrap_or(cc::parse::DEFAULT_CERTIFICATES_DIR),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::node::paths::Root;

    #[test]
    fn keeps_the_document_and_says_whether_it_changed() {
        let d = tempfile::tempdir().unwrap();
        let p = Settings::default().paths(&Root::new(d.path()));
        let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkubernetesVersion: v1.33.2\ncertificateValidityPeriod: 17520h0m0s\n";
        let c = cc::parse::parse(text).unwrap();
        let at = time::macros::datetime!(2026-12-01 10:00 UTC);
        assert_eq!(keep(&p, text, &c, at).unwrap(), Kept::First);
        assert_eq!(keep(&p, text, &c, at).unwrap(), Kept::Same);
        let back = cc::read(&p).unwrap().unwrap();
        assert_eq!(back.read_at, "2026-12-01T10:00:00Z");
        assert_eq!(back.kubernetes_version.as_deref(), Some("v1.33.2"));
        assert_eq!(back.config().unwrap(), Some(c.clone()));
        let other = format!("{text}encryptionAlgorithm: RSA-4096\n");
        let c2 = cc::parse::parse(&other).unwrap();
        assert_eq!(keep(&p, &other, &c2, at).unwrap(), Kept::Changed);
        assert!(
            summary(&c2).contains("certificateValidityPeriod 730d, encryptionAlgorithm RSA-4096")
        );
    }
}
