//! The commit journal. A renewal stages every new file next to its target, writes this
//! journal, then renames. After a crash, `recover` rolls the journal forward (every staged
//! file it lists is verified material, so finishing the renames is always right), removes
//! staged files no journal lists, and repairs any cert/key pair that still does not match from
//! the backups.

use crate::act::store::atomic::{self, is_staged_name};
use crate::node::NodePaths;
use crate::pki::material::FileChange;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One rename still to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// Host path of the target.
    pub target: String,
    /// Host path of the staged file.
    pub staged: String,
}

/// An in-flight commit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Journal {
    /// Host path of the backup holding the material from before.
    pub backup_dir: String,
    /// The renames, in commit order.
    pub entries: Vec<Entry>,
}

/// Write the journal atomically.
pub fn write(paths: &NodePaths, j: &Journal) -> Result<()> {
    let text = serde_json::to_vec_pretty(j).context("encoding the journal")?;
    atomic::write_atomic(&paths.journal(), &text, 0o600)
}

/// Stage every change next to its target, then write the journal that commits them (in
/// order). Nothing is committed here: on an error every file staged so far is removed (a full
/// disk, a read-only filesystem) and no journal is written.
pub fn stage_all<'a>(
    paths: &NodePaths,
    backup_dir: &Path,
    changes: impl IntoIterator<Item = &'a FileChange>,
) -> Result<Journal> {
    let mut entries = Vec::new();
    let mut staged_files = Vec::new();
    for c in changes {
        match atomic::stage(&c.target, &c.contents, c.mode) {
            Ok(staged) => {
                entries.push(Entry {
                    target: paths.show(&c.target),
                    staged: paths.show(&staged),
                });
                staged_files.push(staged);
            }
            Err(e) => {
                for f in &staged_files {
                    let _ = std::fs::remove_file(f);
                }
                return Err(e);
            }
        }
    }
    let j = Journal {
        backup_dir: paths.show(backup_dir),
        entries,
    };
    write(paths, &j)?;
    Ok(j)
}

/// Read the journal, if one exists.
pub fn read(paths: &NodePaths) -> Result<Option<Journal>> {
    let p = paths.journal();
    match crate::node::fsread::read_regular(&p, crate::node::fsread::MAX_NODE_FILE) {
        Ok(b) => {
            Ok(Some(serde_json::from_slice(&b).with_context(|| {
                format!("{}: corrupt journal", p.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// Remove the journal (the commit is complete).
pub fn remove(paths: &NodePaths) -> Result<()> {
    let p = paths.journal();
    match std::fs::remove_file(&p) {
        Ok(()) => atomic::fsync_dir(&paths.state),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
    }
}

/// Check that every entry is one kubeadm-certd writes: a staged file next to its target, in
/// one of the directories it stages in. A journal is never trusted blindly: an edited or
/// forged one could otherwise rename arbitrary files.
pub fn validate(paths: &NodePaths, j: &Journal) -> Result<()> {
    let dirs = staging_dirs(paths);
    for e in &j.entries {
        let target = paths.root.resolve(&e.target);
        let staged = paths.root.resolve(&e.staged);
        let in_dir = target.parent().is_some_and(|p| dirs.iter().any(|d| d == p));
        if !in_dir || staged != atomic::staged_path(&target) {
            anyhow::bail!(
                "{}: entry {} -> {} is not one kubeadm-certd writes; refusing to act on the journal (check it, then remove it)",
                paths.show(&paths.journal()),
                e.staged,
                e.target
            );
        }
    }
    Ok(())
}

/// Carry out the journal's remaining renames.
pub fn roll_forward(paths: &NodePaths, j: &Journal) -> Result<Vec<String>> {
    validate(paths, j)?;
    let mut done = Vec::new();
    for e in &j.entries {
        let staged = paths.root.resolve(&e.staged);
        if staged.exists() {
            atomic::commit(&staged, &paths.root.resolve(&e.target))?;
            done.push(e.target.clone());
        }
    }
    Ok(done)
}

/// Directories where staged files may be left.
pub fn staging_dirs(paths: &NodePaths) -> Vec<PathBuf> {
    let mut v = vec![
        paths.pki.clone(),
        paths.pki.join("etcd"),
        paths.kubeconfigs.clone(),
    ];
    if let Some(d) = paths.kubelet_config.parent() {
        v.push(d.to_path_buf());
    }
    // The kubelet client revival stages its pem and link there.
    v.push(paths.kubelet_pki.clone());
    v
}

/// Remove staged files that no journal lists (a crash before the journal was written: the
/// targets were never touched).
pub fn remove_strays(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        for e in rd.flatten() {
            if is_staged_name(&e.file_name().to_string_lossy()) {
                std::fs::remove_file(e.path())
                    .with_context(|| format!("removing {}", e.path().display()))?;
                removed.push(e.path());
            }
        }
        if !removed.is_empty() {
            atomic::fsync_dir(d)?;
        }
    }
    Ok(removed)
}

/// Whether any staged file sits in `dir`.
pub fn has_staged(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| is_staged_name(&e.file_name().to_string_lossy()))
        })
        .unwrap_or(false)
}
