//! Backups: before every change, the old files are copied into
//! `<stateDir>/backups/<UTC timestamp>/<host path>`, directories 0700, modes kept.

use crate::act::store::atomic::{create_dir_all_mode, fsync_dir};
use crate::node::NodePaths;
use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// A new, empty backup directory named after `now` (a suffix keeps two in one second apart).
pub fn new_dir(paths: &NodePaths, now: OffsetDateTime) -> Result<PathBuf> {
    let base = paths.backups();
    create_dir_all_mode(&base, 0o700)?;
    let now = now.to_offset(time::UtcOffset::UTC);
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    for n in 0..1000 {
        let dir = if n == 0 {
            base.join(&stamp)
        } else {
            base.join(format!("{stamp}-{n}"))
        };
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                fsync_dir(&base)?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("creating backup dir {}", dir.display()))
            }
        }
    }
    anyhow::bail!("{}: too many backups in one second", base.display())
}

use std::os::unix::fs::DirBuilderExt;

/// Copy `files` (those that exist) into the backup directory, fsynced, keeping their modes.
pub fn copy_into(paths: &NodePaths, dir: &Path, files: &[PathBuf]) -> Result<()> {
    for f in files {
        let meta = match std::fs::metadata(f) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", f.display())),
        };
        let dest = paths.backup_path(dir, f);
        if let Some(parent) = dest.parent() {
            create_dir_all_mode(parent, 0o700)?;
        }
        let bytes = crate::node::fsread::read_regular(f, crate::node::fsread::MAX_NODE_FILE)
            .with_context(|| format!("reading {} for backup", f.display()))?;
        crate::act::store::atomic::write_atomic(&dest, &bytes, meta.permissions().mode() & 0o777)
            .with_context(|| format!("backing up {}", f.display()))?;
    }
    Ok(())
}

/// Backup directories, newest first.
pub fn list(paths: &NodePaths) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(paths.backups())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    dirs
}

/// Copy `file` into a new backup directory; returns where the copy is.
pub fn backup_one(paths: &NodePaths, file: &Path, now: OffsetDateTime) -> Result<PathBuf> {
    let dir = new_dir(paths, now)?;
    copy_into(paths, &dir, &[file.to_path_buf()])?;
    let copy = paths.backup_path(&dir, file);
    if !copy.is_file() {
        bail!("backup of {} was not written", paths.show(file));
    }
    Ok(copy)
}
