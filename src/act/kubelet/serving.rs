//! Applying the kubelet config's `serverTLSBootstrap` edit: back up the file, replace it
//! atomically, and restart the kubelet when the daemon's setting asks for it.

use crate::act::cancel::Cancel;
use crate::act::store::{atomic::replace_node_file, backup::backup_one};
use crate::config::Settings;
use crate::node::kubelet_edit::{edited_text, line_diff, read_text, ENABLE_FOLLOW_UP, KEY};
use crate::node::NodePaths;
use anyhow::{Context, Result};
use std::path::PathBuf;
use time::OffsetDateTime;

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
    let backup = backup_one(paths, file, now)?;
    fail::fail_point!("kubelet-edit::mid-write");
    replace_node_file(&paths.root, file, &new).with_context(|| host.clone())?;
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

/// Apply `settings.kubelet_server_tls_bootstrap` (the daemon's start-up and reload step):
/// nothing when it is `None`; otherwise edit the file and, when it changed, restart the
/// kubelet and wait until it is healthy (bounded by `settings.restart.timeout`). Enabling logs
/// the CSR follow-up. The caller holds the lock.
pub fn apply_setting(
    paths: &NodePaths,
    settings: &Settings,
    now: OffsetDateTime,
    cancel: &Cancel,
) -> Result<Edit> {
    let Some(enable) = settings.kubelet_server_tls_bootstrap else {
        return Ok(Edit::Unchanged);
    };
    let edit = set_server_tls_bootstrap(paths, enable, now)?;
    if let Edit::Changed { .. } = &edit {
        crate::act::systemd::restart_kubelet(paths, settings.restart.timeout, cancel)?;
        if enable {
            tracing::warn!(ACTION = "kubelet-config", "{ENABLE_FOLLOW_UP}");
        }
    }
    Ok(edit)
}
