//! The revival journal, and finishing an interrupted revival (`recover`).

use super::finish_files;
use crate::act::cancel::Cancel;
use crate::act::store::atomic;
use crate::config::Settings;
use crate::node::fsread::exists;
use crate::node::kubelet_pki::CLIENT_CURRENT;
use crate::node::NodePaths;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use time::OffsetDateTime;

/// The revival journal: what is left to do after a crash. Host paths.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    /// The backup of the material from before.
    pub backup_dir: String,
    /// The new dated file.
    pub file: String,
    /// Its staged copy (renamed into place by step 3).
    pub staged: String,
    /// `kubelet-client-current.pem`.
    pub link: String,
}

/// Where the revival journal lives.
pub fn journal_path(paths: &NodePaths) -> PathBuf {
    paths.state.join("kubelet-revive.json")
}

/// Whether an interrupted revival is waiting for `recover`.
pub fn pending(paths: &NodePaths) -> bool {
    exists(&journal_path(paths))
}

pub(super) fn write_journal(paths: &NodePaths, j: &Journal) -> Result<()> {
    let text = serde_json::to_vec_pretty(j).context("encoding the revival journal")?;
    atomic::write_atomic(&journal_path(paths), &text, 0o600)
}

pub(super) fn remove_journal(paths: &NodePaths) -> Result<()> {
    let p = journal_path(paths);
    match std::fs::remove_file(&p) {
        Ok(()) => atomic::fsync_dir(&paths.state),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
    }
}

/// A journal is acted on only if it names what a revival writes: a dated pem and its staged
/// copy in the kubelet's pki directory, and the current link there.
fn validate(paths: &NodePaths, j: &Journal) -> Result<()> {
    let file = paths.root.resolve(&j.file);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ok = file.parent() == Some(paths.kubelet_pki.as_path())
        && name.starts_with("kubelet-client-")
        && name.ends_with(".pem")
        && name != CLIENT_CURRENT
        && paths.root.resolve(&j.staged) == atomic::staged_path(&file)
        && paths.root.resolve(&j.link) == paths.kubelet_pki.join(CLIENT_CURRENT);
    if !ok {
        bail!(
            "{}: not a journal kubeadm-certd writes; refusing to act on it (check it, then remove it)",
            paths.show(&journal_path(paths))
        );
    }
    Ok(())
}

/// Finish an interrupted revival: rename the staged pair into place, repoint the link, repair
/// kubelet.conf, and (with `restart`) restart the kubelet. Returns what was done.
pub fn recover(
    paths: &NodePaths,
    settings: &Settings,
    restart: bool,
    cancel: &Cancel,
    now: OffsetDateTime,
) -> Result<Vec<String>> {
    let p = journal_path(paths);
    let bytes = match crate::node::fsread::read_regular(&p, crate::node::fsread::MAX_NODE_FILE) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    let j: Journal = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: corrupt revival journal", p.display()))?;
    validate(paths, &j)?;
    let mut done = Vec::new();
    if let Err(e) = finish_files(paths, &j, now) {
        // Nothing to roll forward to: the link still names the old file. Drop the journal so
        // the next cycle decides afresh.
        remove_journal(paths)?;
        return Err(e);
    }
    done.push(format!(
        "finished interrupted revival of the kubelet's client certificate: {} points at {}",
        j.link, j.file
    ));
    if !restart {
        return Ok(done);
    }
    if !settings.restart.enabled {
        remove_journal(paths)?;
        done.push(
            "restart.enabled is false: restart the kubelet yourself (systemctl restart kubelet)"
                .into(),
        );
        return Ok(done);
    }
    let r = crate::act::systemd::restart_kubelet(paths, settings.restart.timeout, cancel);
    remove_journal(paths)?;
    r.context("restarting the kubelet after an interrupted revival")?;
    done.push("kubelet restarted (owed by an interrupted revival)".into());
    Ok(done)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::node::paths::Root;

    #[test]
    fn only_a_journal_naming_what_a_revival_writes_is_acted_on() {
        let d = tempfile::tempdir().unwrap();
        let paths = Settings::default().paths(&Root::new(d.path()));
        let good = Journal {
            backup_dir: "/var/lib/kubeadm-certd/backups/x".into(),
            file: "/var/lib/kubelet/pki/kubelet-client-2026-11-29-09-30-20.pem".into(),
            staged:
                "/var/lib/kubelet/pki/.kubelet-client-2026-11-29-09-30-20.pem.kubeadm-certd-new"
                    .into(),
            link: "/var/lib/kubelet/pki/kubelet-client-current.pem".into(),
        };
        validate(&paths, &good).unwrap();
        let forged = [
            Journal {
                file: "/etc/shadow".into(),
                staged: "/etc/.shadow.kubeadm-certd-new".into(),
                ..good.clone()
            },
            Journal {
                link: "/etc/kubernetes/admin.conf".into(),
                ..good.clone()
            },
            Journal {
                staged: "/tmp/x".into(),
                ..good.clone()
            },
            Journal {
                file: "/var/lib/kubelet/pki/kubelet-client-current.pem".into(),
                staged: "/var/lib/kubelet/pki/.kubelet-client-current.pem.kubeadm-certd-new".into(),
                ..good.clone()
            },
        ];
        for j in forged {
            assert!(validate(&paths, &j).is_err(), "{j:?}");
        }
    }
}
