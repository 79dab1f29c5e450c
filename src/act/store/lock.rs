//! The exclusive lock `<stateDir>/lock`: an flock held for the life of the process, with the
//! holder's pid written inside so that a second run can name it.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Another run holds the lock.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path}: another kubeadm-certd run (pid {pid}) holds the lock; try again when it has finished"
)]
pub struct Held {
    /// The lock file.
    pub path: String,
    /// The holder's pid, as it wrote it.
    pub pid: String,
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Take the lock without waiting.
pub fn acquire(path: &Path) -> Result<Lock> {
    if let Some(dir) = path.parent() {
        crate::act::store::atomic::create_dir_all_mode(dir, 0o700)?;
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(Held {
                path: path.display().to_string(),
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.into()
                },
            }
            .into());
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
    f.set_len(0)?;
    f.rewind()?;
    write!(f, "{}", std::process::id()).with_context(|| format!("writing {}", path.display()))?;
    Ok(Lock { _file: f })
}

/// Whether another run holds the lock, found without writing anything (no file is created,
/// no pid written): for read-only commands.
pub fn is_held(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    matches!(f.try_lock_shared(), Err(TryLockError::WouldBlock))
}
