//! A kubeadm-shaped node for daemon tests (EC keys, so it builds fast) and its config file.

use kubeadm_certd::testkit::nodebuilder::{build, NodeSpec};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

/// A node whose leaves have `leaf_days` left.
pub fn node(leaf_days: u64) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let mut spec = NodeSpec::new(OffsetDateTime::now_utc());
    spec.leaf_left = Duration::from_secs(leaf_days * 86_400);
    spec.key = kubeadm_certd::pki::inspect::KeyAlg::EcP256;
    build(d.path(), &spec).unwrap();
    d
}

/// Write the daemon's config file next to the node.
pub fn config(root: &Path, text: &str) -> PathBuf {
    let p = root.join("certd.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The NotAfter of the first certificate in a PEM file.
pub fn not_after(path: &Path) -> OffsetDateTime {
    let b = std::fs::read(path).unwrap();
    kubeadm_certd::pki::inspect::parse_cert_file(&b).unwrap()[0].not_after
}
