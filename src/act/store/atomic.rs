//! Atomic replacement of one file (afterburn's `write_ssh_keys` sequence): write a temp
//! file in the same directory, fsync it, rename it over the target, fsync the directory.
//! Each step's error says which step and which file.

use crate::node::paths::Root;
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Suffix of staged files. They start with a dot, so the kubelet would ignore one even in a
/// manifests directory (kubeadm-certd never stages there).
pub const STAGED_SUFFIX: &str = ".kubeadm-certd-new";

/// The staged path for a target: `<dir>/.<name>.kubeadm-certd-new`.
pub fn staged_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}{STAGED_SUFFIX}"))
}

/// Whether a file name is one of our staged files.
pub fn is_staged_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(STAGED_SUFFIX)
}

/// fsync a directory so that renames in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync of directory {}", dir.display()))
}

/// Write `contents` to the staged path of `target` and fsync it. An existing target's mode
/// and owner carry over; a new file gets `mode`.
pub fn stage(target: &Path, contents: &[u8], mode: u32) -> Result<PathBuf> {
    let staged = staged_path(target);
    let existing = std::fs::metadata(target).ok();
    let mode = existing
        .as_ref()
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(mode);
    let _ = std::fs::remove_file(&staged);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)
        .with_context(|| format!("creating temp file {}", staged.display()))?;
    let written = (|| -> Result<()> {
        if let Some(m) = &existing {
            std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))
                .with_context(|| format!("setting owner of {}", staged.display()))?;
        }
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting mode of {}", staged.display()))?;
        // Written in two halves so a failpoint can stop the process mid-write.
        let (a, b) = contents.split_at(contents.len() / 2);
        f.write_all(a)
            .with_context(|| format!("writing {}", staged.display()))?;
        fail::fail_point!("atomic::mid-write");
        f.write_all(b)
            .with_context(|| format!("writing {}", staged.display()))?;
        f.sync_all()
            .with_context(|| format!("fsync of {}", staged.display()))
    })();
    if let Err(e) = written {
        // A full disk or a failing device: leave no half-written temp file behind.
        let _ = std::fs::remove_file(&staged);
        return Err(e);
    }
    Ok(staged)
}

/// Rename a staged file over its target and fsync the directory.
pub fn commit(staged: &Path, target: &Path) -> Result<()> {
    std::fs::rename(staged, target)
        .with_context(|| format!("renaming {} to {}", staged.display(), target.display()))?;
    if let Some(dir) = target.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Replace `target` atomically with `contents`.
pub fn write_atomic(target: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let staged = stage(target, contents, mode)?;
    if let Err(e) = commit(&staged, target) {
        let _ = std::fs::remove_file(&staged);
        return Err(e);
    }
    Ok(())
}

/// Create a directory (and its parents) with `mode`, and fsync its parent.
pub fn create_dir_all_mode(dir: &Path, mode: u32) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .with_context(|| format!("creating directory {}", dir.display()))?;
    if let Some(p) = dir.parent() {
        fsync_dir(p)?;
    }
    Ok(())
}

/// Replace `file` atomically, keeping its mode and owner. A symlink (inside the root) is
/// followed so that the link itself stays a link.
pub fn replace_node_file(root: &Root, file: &Path, text: &str) -> Result<()> {
    let meta = std::fs::symlink_metadata(file).context("cannot stat")?;
    let target = if meta.file_type().is_symlink() {
        if !root.contains_real(file)? {
            bail!("symlink points outside the node root; refusing to write through it");
        }
        file.canonicalize().context("cannot resolve symlink")?
    } else {
        file.to_path_buf()
    };
    write_atomic(&target, text.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_keeps_mode() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("a.key");
        std::fs::write(&t, "old").unwrap();
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&t, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&t).unwrap(), "new");
        assert_eq!(
            std::fs::metadata(&t).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert!(!staged_path(&t).exists());
        write_atomic(&d.path().join("b.crt"), b"x", 0o644).unwrap();
        let m = std::fs::metadata(d.path().join("b.crt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o644);
    }

    #[test]
    fn staged_names() {
        let s = staged_path(Path::new("/x/pki/apiserver.crt"));
        assert_eq!(s, PathBuf::from("/x/pki/.apiserver.crt.kubeadm-certd-new"));
        assert!(is_staged_name(".apiserver.crt.kubeadm-certd-new"));
        assert!(!is_staged_name("apiserver.crt"));
    }
}
