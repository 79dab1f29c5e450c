//! The kubelet config's single-key edit: `serverTLSBootstrap`, changed so that every other
//! byte of /var/lib/kubelet/config.yaml stays (comments, order, spacing), with a backup, a
//! re-parse that proves the edit, and an atomic write.

use crate::config::Settings;
use crate::node::fsread::read_node_file;
use crate::node::kubelet::parse_kubelet_config;
use crate::node::paths::Root;
use crate::node::NodePaths;
use crate::store::{atomic, backup};
use crate::yamledit;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The key this module edits.
pub const KEY: &str = "serverTLSBootstrap";

/// What an edit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// The key already had the wanted value; nothing was written.
    Unchanged,
    /// The file was rewritten.
    Changed {
        /// The copy of the old file.
        backup: PathBuf,
        /// Unified-style diff of the change (host path in the header).
        diff: String,
    },
}

/// What kubelet-serving certificates need after `serverTLSBootstrap: true`, for the terminal
/// and the log.
pub const ENABLE_FOLLOW_UP: &str = "\
serverTLSBootstrap is on: the kubelet now asks the cluster for a CA-signed serving certificate
through a CertificateSigningRequest (signer kubernetes.io/kubelet-serving), and serves none
until that CSR is approved. The kube-controller-manager does NOT approve these CSRs.
  - approve them: `kubectl get csr`, then `kubectl certificate approve <name>` for each pending
    kubelet-serving CSR of this node (check that its DNS names and IPs are the node's own);
  - auto-approval (e.g. kubelet-csr-approver) is only safe when it validates the requested SANs;
  - other nodes and future joins read the cluster-wide kubelet-config ConfigMap, which a node
    daemon does not touch: `kubectl -n kube-system edit cm kubelet-config` and set
    serverTLSBootstrap: true there too.";

/// Set `serverTLSBootstrap` in the kubelet config to `enable`. A missing key counts as false
/// (the kubelet's default), so disabling a file without the key changes nothing. The caller
/// holds the lock. The kubelet is not restarted here.
pub fn set_server_tls_bootstrap(
    paths: &NodePaths,
    enable: bool,
    now: OffsetDateTime,
) -> Result<Edit> {
    let file = &paths.kubelet_config;
    let host = paths.show(file);
    let text = read_text(&paths.root, file).with_context(|| host.clone())?;
    let Some(new) = edited_text(&text, enable).with_context(|| host.clone())? else {
        return Ok(Edit::Unchanged);
    };
    let backup = backup_file(paths, file, now)?;
    fail::fail_point!("kubelet-edit::mid-write");
    replace_file(&paths.root, file, &new).with_context(|| host.clone())?;
    tracing::info!(
        ACTION = "kubelet-config",
        CERT_PATH = host.as_str(),
        "set {KEY}: {enable} in {host} (backup {})",
        paths.show(&backup)
    );
    Ok(Edit::Changed {
        backup,
        diff: line_diff(&host, &text, &new),
    })
}

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
        bail!("the edited config reads back as {after:?}, expected {expected:?}; refusing to write it");
    }
    Ok(Some(new))
}

/// Apply `settings.kubelet_server_tls_bootstrap` (the daemon's start-up and reload step):
/// nothing when it is `None`; otherwise edit the file and, when it changed, restart the
/// kubelet and wait until it is healthy (bounded by `settings.restart.timeout`). Enabling logs
/// the CSR follow-up. The caller holds the lock.
pub fn apply_setting(paths: &NodePaths, settings: &Settings, now: OffsetDateTime) -> Result<Edit> {
    let Some(enable) = settings.kubelet_server_tls_bootstrap else {
        return Ok(Edit::Unchanged);
    };
    let edit = set_server_tls_bootstrap(paths, enable, now)?;
    if let Edit::Changed { .. } = &edit {
        crate::systemd::restart_kubelet(paths, settings.restart.timeout)?;
        if enable {
            tracing::warn!(ACTION = "kubelet-config", "{ENABLE_FOLLOW_UP}");
        }
    }
    Ok(edit)
}

/// Read a node file as UTF-8 text.
pub(crate) fn read_text(root: &Root, file: &Path) -> Result<String> {
    let bytes = read_node_file(root, file).map_err(|e| anyhow!("{e}"))?;
    String::from_utf8(bytes).map_err(|_| anyhow!("not UTF-8 text"))
}

/// Copy `file` into a new backup directory; returns where the copy is.
pub(crate) fn backup_file(paths: &NodePaths, file: &Path, now: OffsetDateTime) -> Result<PathBuf> {
    let dir = backup::new_dir(paths, now)?;
    backup::copy_into(paths, &dir, &[file.to_path_buf()])?;
    let copy = backup::backup_path(paths, &dir, file);
    if !copy.is_file() {
        bail!("backup of {} was not written", paths.show(file));
    }
    Ok(copy)
}

/// Replace `file` atomically, keeping its mode and owner. A symlink (inside the root) is
/// followed so that the link itself stays a link.
pub(crate) fn replace_file(root: &Root, file: &Path, text: &str) -> Result<()> {
    let meta = std::fs::symlink_metadata(file).context("cannot stat")?;
    let target = if meta.file_type().is_symlink() {
        if !root.contains_real(file)? {
            bail!("symlink points outside the node root; refusing to write through it");
        }
        file.canonicalize().context("cannot resolve symlink")?
    } else {
        file.to_path_buf()
    };
    atomic::write_atomic(&target, text.as_bytes(), 0o600)
}

/// A unified-style diff of two texts that differ in one contiguous run of lines (what a
/// single-key edit produces), without context lines.
pub fn line_diff(name: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let pre = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let room = a.len().min(b.len()) - pre;
    let suf = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(room)
        .take_while(|(x, y)| x == y)
        .count();
    let (del, add) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    if del.is_empty() && add.is_empty() {
        return String::new();
    }
    // Unified ranges: an empty range names the line before it.
    let range = |len: usize| match len {
        0 => format!("{pre},0"),
        1 => format!("{}", pre + 1),
        n => format!("{},{n}", pre + 1),
    };
    let mut out = format!(
        "--- {name}\n+++ {name}\n@@ -{} +{} @@\n",
        range(del.len()),
        range(add.len())
    );
    for (sign, lines) in [('-', del), ('+', add)] {
        for l in lines {
            out.push(sign);
            out.push_str(l);
            if !l.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
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
