//! Watches on directories (not files: rename-replace drops file watches): certificatesDir,
//! its etcd/, kubeconfigDir, kubeletPkiDir and the kubelet config's directory. Events become
//! host paths on a tokio channel; a queue overflow becomes a rescan request.

use crate::act::store::atomic::is_staged_name;
use crate::node::NodePaths;
use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher};
use std::path::PathBuf;
use tokio::sync::mpsc;

/// Changed paths (host paths; "*" for a rescan).
pub type Events = mpsc::UnboundedReceiver<String>;

/// Start watching. Keep the returned watcher alive: dropping it stops the watches.
pub fn start(paths: &NodePaths) -> Result<(notify::RecommendedWatcher, Events)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let root = paths.root.clone();
    let state = paths.state.clone();
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            if ev.need_rescan() {
                let _ = tx.send("*".to_string());
                return;
            }
            for p in ev.paths {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if is_staged_name(&name) || p.starts_with(&state) {
                    continue;
                }
                let _ = tx.send(root.host_path(&p).display().to_string());
            }
        }
        Err(_) => {
            let _ = tx.send("*".to_string());
        }
    })
    .context("starting the directory watcher")?;
    for d in dirs(paths) {
        if d.is_dir() {
            w.watch(&d, RecursiveMode::NonRecursive)
                .with_context(|| format!("watching {}", paths.show(&d)))?;
        }
    }
    Ok((w, rx))
}

fn dirs(paths: &NodePaths) -> Vec<PathBuf> {
    let mut v = vec![
        paths.pki.clone(),
        paths.pki.join("etcd"),
        paths.kubeconfigs.clone(),
        paths.kubelet_pki.clone(),
    ];
    if let Some(d) = paths.kubelet_config.parent() {
        v.push(d.to_path_buf());
    }
    v
}

/// Drop queued events for files the daemon itself wrote; return the others.
pub fn drain_own(events: &mut Events, written: &[String]) -> Vec<String> {
    let mut foreign = Vec::new();
    while let Ok(p) = events.try_recv() {
        if !written.contains(&p) {
            foreign.push(p);
        }
    }
    // Backups, metrics and staged files are filtered at the source; anything else is real.
    if !foreign.is_empty() {
        tracing::debug!("changes during the cycle: {foreign:?}");
    }
    foreign
}
