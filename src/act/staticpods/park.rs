//! Parking: a manifest is taken down by renaming it out of the manifests directory into the
//! parking directory, and brought back by renaming it back. The parking directory is the
//! journal: whatever is in it after a crash goes back (`recover_parked`), never overwriting.

use crate::act::store::atomic::{create_dir_all_mode, fsync_dir};
use crate::node::NodePaths;
use anyhow::{bail, Context, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The parking directory, created 0700, refused unless it shares the manifests' filesystem
/// (a rename across filesystems is a copy, not atomic, and would leave a half file behind).
pub fn ensure_parking(paths: &NodePaths) -> Result<PathBuf> {
    let park = &paths.parking;
    let mdev = std::fs::metadata(&paths.manifests)
        .with_context(|| {
            format!(
                "{}: cannot read the manifests directory",
                paths.show(&paths.manifests)
            )
        })?
        .dev();
    // Judge the filesystem by the nearest existing ancestor before creating anything.
    let mut probe = park.clone();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    let pdev = std::fs::metadata(&probe)
        .with_context(|| format!("{}: cannot stat", paths.show(&probe)))?
        .dev();
    if pdev != mdev {
        bail!(
            "{}: restart.parkingDir is on a different filesystem than {}; a rename between them is not atomic, so nothing was moved",
            paths.show(park),
            paths.show(&paths.manifests)
        );
    }
    if park.exists() && !park.is_dir() {
        bail!(
            "{}: restart.parkingDir is not a directory; nothing was moved",
            paths.show(park)
        );
    }
    create_dir_all_mode(park, 0o700)
        .with_context(|| format!("{}: cannot create the parking directory", paths.show(park)))?;
    Ok(park.clone())
}

/// Rename `from` to `to` unless `to` exists (RENAME_NOREPLACE where the kernel has it).
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOSYS) => {
            if to.exists() {
                return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
            }
            std::fs::rename(from, to)
        }
        Err(e) => Err(std::io::Error::from(e)),
    }
}

/// Move `manifests/<file>` into the parking directory.
pub fn park(paths: &NodePaths, file: &str) -> Result<PathBuf> {
    let park = ensure_parking(paths)?;
    let (from, to) = (paths.manifests.join(file), park.join(file));
    rename_noreplace(&from, &to)
        .with_context(|| format!("parking {} in {}", paths.show(&from), paths.show(&park)))?;
    fsync_dir(&paths.manifests)?;
    fsync_dir(&park)?;
    Ok(to)
}

/// How an unpark ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Unparked {
    /// The manifest is back.
    Restored,
    /// A manifest of that name appeared meanwhile (an upgrade wrote one): the new one is kept
    /// and the parked one is moved to this backup path.
    Superseded(PathBuf),
}

/// Move a parked manifest back, never overwriting a manifest that appeared meanwhile.
pub fn unpark(paths: &NodePaths, file: &str, now: OffsetDateTime) -> Result<Unparked> {
    let (from, to) = (paths.parking.join(file), paths.manifests.join(file));
    match rename_noreplace(&from, &to) {
        Ok(()) => {
            fsync_dir(&paths.manifests)?;
            fsync_dir(&paths.parking)?;
            Ok(Unparked::Restored)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let dir = crate::act::store::backup::new_dir(paths, now)?;
            let dest = dir.join(format!("parked-{file}"));
            std::fs::rename(&from, &dest).with_context(|| {
                format!("moving {} to {}", paths.show(&from), paths.show(&dest))
            })?;
            fsync_dir(&paths.parking)?;
            tracing::warn!(
                "{} was replaced while it was parked (an upgrade?); keeping the new manifest, the parked one is in {}",
                paths.show(&to),
                paths.show(&dest)
            );
            Ok(Unparked::Superseded(dest))
        }
        Err(e) => Err(e)
            .with_context(|| format!("moving {} back to {}", paths.show(&from), paths.show(&to))),
    }
}

/// Files waiting in the parking directory.
pub fn parked(paths: &NodePaths) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(&paths.parking)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Move every parked manifest back. Returns one line per action.
pub fn recover_parked(paths: &NodePaths, now: OffsetDateTime) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in parked(paths) {
        match unpark(paths, &f, now)? {
            Unparked::Restored => out.push(format!(
                "moved parked manifest {f} back to {}",
                paths.show(&paths.manifests)
            )),
            Unparked::Superseded(p) => out.push(format!(
                "kept the newer manifest {f}; the parked one was moved to {}",
                paths.show(&p)
            )),
        }
    }
    Ok(out)
}
