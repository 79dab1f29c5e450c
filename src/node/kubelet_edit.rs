//! The kubelet config's single-key edit, computed as text: `serverTLSBootstrap` changed so
//! that every other byte of /var/lib/kubelet/config.yaml stays (comments, order, spacing),
//! and a re-parse that proves the edit. Writing it is `act::kubelet::serving`'s job.

use crate::node::fsread::read_node_file;
use crate::node::kubelet::parse_kubelet_config;
use crate::node::paths::Root;
use crate::node::yamledit;
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;

/// The key this module edits.
pub const KEY: &str = "serverTLSBootstrap";

/// What kubelet-serving certificates need after `serverTLSBootstrap: true`, for the terminal
/// and the log.
pub const ENABLE_FOLLOW_UP: &str = "\
serverTLSBootstrap is on: the kubelet now asks the cluster for a CA-signed serving certificate
through a CertificateSigningRequest (signer kubernetes.io/kubelet-serving), and serves none
until that CSR is approved. The kube-controller-manager does NOT approve these CSRs.
  - on control-plane nodes the kubeadm-certd daemon approves them (approver.mode: auto), after
    checking every requested name and address against the Nodes and the API server's own;
  - see them, with what each rule says: `kubeadm-certd csr list` (on a control-plane node);
    approve one by hand: `kubeadm-certd csr approve NAME`;
  - on a control-plane node this command also sets serverTLSBootstrap in the cluster's
    kubelet-config ConfigMap, so that joins and upgrades keep it (--node-only skips that).";

/// The kubelet config text with `serverTLSBootstrap` set to `enable`, or `None` when it
/// already is (absent counts as false). The result is re-parsed to prove that the key, and
/// nothing else the kubelet config parser reads, changed.
pub fn edited_text(text: &str, enable: bool) -> Result<Option<String>> {
    let before = parse_kubelet_config(text.as_bytes())?;
    if before.server_tls_bootstrap.unwrap_or(false) == enable {
        return Ok(None);
    }
    let value = if enable { "true" } else { "false" };
    let new =
        yamledit::set_top_level(text, KEY, value).with_context(|| format!("cannot set {KEY}"))?;
    let after = parse_kubelet_config(new.as_bytes())
        .context("the edited config does not parse; refusing to write it")?;
    let mut expected = before;
    expected.server_tls_bootstrap = Some(enable);
    if after != expected {
        bail!("the edited config does not read back with only {KEY} changed; refusing to write it");
    }
    Ok(Some(new))
}

/// Read a node file as UTF-8 text.
pub fn read_text(root: &Root, file: &Path) -> Result<String> {
    let bytes = read_node_file(root, file).map_err(|e| anyhow!("{e}"))?;
    String::from_utf8(bytes).map_err(|_| anyhow!("not UTF-8 text"))
}

/// A unified diff of the change without context lines (`similar`; the hunk header follows
/// GNU diff), with the host path in both header lines. Empty when nothing changed.
pub fn line_diff(name: &str, old: &str, new: &str) -> String {
    let diff = similar::TextDiff::from_lines(old, new);
    if old == new {
        return String::new();
    }
    diff.unified_diff()
        .context_radius(0)
        .header(name, name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_of_a_changed_line() {
        let d = line_diff("/c", "a: 1\nb: false\nc: 3\n", "a: 1\nb: true\nc: 3\n");
        assert_eq!(d, "--- /c\n+++ /c\n@@ -2 +2 @@\n-b: false\n+b: true\n");
    }

    #[test]
    fn diff_of_an_appended_line() {
        let d = line_diff("/c", "a: 1\nb: 2\n", "a: 1\nb: 2\nk: true\n");
        assert_eq!(d, "--- /c\n+++ /c\n@@ -2,0 +3 @@\n+k: true\n");
        let d = line_diff("/c", "a: 1", "a: 1\nk: true\n");
        assert_eq!(
            d,
            "--- /c\n+++ /c\n@@ -1 +1,2 @@\n-a: 1\n\\ No newline at end of file\n+a: 1\n+k: true\n"
        );
        assert_eq!(line_diff("/c", "x\n", "x\n"), "");
    }

    #[test]
    fn absent_counts_as_false() {
        let base = "kind: KubeletConfiguration\n";
        assert_eq!(edited_text(base, false).unwrap(), None);
        assert_eq!(
            edited_text(base, true).unwrap().as_deref(),
            Some("kind: KubeletConfiguration\nserverTLSBootstrap: true\n")
        );
        let on = "kind: KubeletConfiguration\nserverTLSBootstrap: true\n";
        assert_eq!(edited_text(on, true).unwrap(), None);
    }

    #[test]
    fn refuses_what_it_cannot_prove() {
        // A quoted string is not a bool: the kubelet config parser rejects the input itself.
        assert!(edited_text("serverTLSBootstrap: \"yes\"\n", true).is_err());
        assert!(edited_text("kind: Pod\n", true).is_err());
        // A top-level flow mapping cannot take an appended line.
        assert!(edited_text("{kind: KubeletConfiguration}\n", true).is_err());
    }
}
