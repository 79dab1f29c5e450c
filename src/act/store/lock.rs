//! The node lock `<stateDir>/lock`: an flock held while a process changes the node (one
//! command, or one daemon cycle; the daemon holds nothing between cycles). The holder writes
//! its pid and what it does inside ("4242 daemon cycle"), so that a waiter can name it.
//!
//! flock(2) has no timed or cancellable wait, so waiting polls `try_lock` (the cost is paid
//! only while another process holds the lock). The kernel drops the lock when its holder
//! dies, even by SIGKILL; what the holder left half-done stays on disk for `recover`.

use crate::act::cancel::Cancel;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often a waiter looks again.
pub const POLL: Duration = Duration::from_millis(100);

/// Who holds the lock, as it wrote itself into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holder {
    /// Its pid, when the file names one.
    pub pid: Option<u32>,
    /// What it does ("daemon cycle", "renew"), when the file says.
    pub what: Option<String>,
}

impl Holder {
    /// Parse the lock file's content: `<pid>[ <what>]` (older versions wrote the pid alone).
    pub fn parse(text: &str) -> Holder {
        let text = text.trim();
        let (pid, what) = match text.split_once(char::is_whitespace) {
            Some((p, w)) => (p, w.trim()),
            None => (text, ""),
        };
        Holder {
            pid: pid.parse().ok(),
            what: (!what.is_empty()).then(|| what.to_string()),
        }
    }

    /// What the holder writes: `<pid> <what>`.
    fn line(pid: u32, what: &str) -> String {
        format!("{pid} {what}\n")
    }
}

/// "pid 4242 (daemon cycle)", "pid 4242", or "another kubeadm-certd process".
impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.pid, &self.what) {
            (Some(p), Some(w)) => write!(f, "pid {p} ({w})"),
            (Some(p), None) => write!(f, "pid {p}"),
            (None, _) => write!(f, "another kubeadm-certd process"),
        }
    }
}

/// Why the lock was not taken. Each is one line naming the lock file and the holder.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Held, and the caller does not wait (`--wait 0`).
    #[error(
        "{path}: {holder} holds the lock; not waiting (--wait 0): try again when it has finished"
    )]
    Held {
        /// The lock file.
        path: String,
        /// Who holds it.
        holder: Holder,
    },
    /// Still held when the bound passed.
    #[error("{path}: {holder} still holds the lock after {waited}; try again when it has finished, or wait longer with --wait")]
    TimedOut {
        /// The lock file.
        path: String,
        /// Who holds it.
        holder: Holder,
        /// The bound, for people (humantime).
        waited: String,
    },
    /// SIGTERM/SIGINT while waiting: nothing was changed.
    #[error(
        "{path}: interrupted while waiting for {holder} to release the lock; nothing was changed"
    )]
    Cancelled {
        /// The lock file.
        path: String,
        /// Who held it.
        holder: Holder,
    },
    /// The lock file cannot be opened, locked or written.
    #[error("{path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    file: File,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Empty while free, so that a waiter never reads a finished holder's name; the flock
        // goes with the file descriptor right after.
        let _ = self.file.set_len(0);
    }
}

/// How to wait for the lock.
pub struct Wait<'a> {
    /// Written into the lock file after the pid ("renew", "daemon cycle").
    pub what: &'a str,
    /// Give up after this long (`Some(ZERO)`: do not wait); `None`: until cancelled.
    pub bound: Option<Duration>,
    /// SIGTERM/SIGINT end the wait; each look counts as progress (the daemon's watchdog).
    pub cancel: &'a Cancel,
    /// Called once, when the wait begins, with the holder.
    pub on_wait: &'a dyn Fn(&Holder),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LockError + '_ {
    move |source| LockError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn open(path: &Path) -> Result<File, LockError> {
    if let Some(dir) = path.parent() {
        crate::act::store::atomic::create_dir_all_mode(dir, 0o700).map_err(|e| LockError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(format!("{e:#}")),
        })?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io(path))
}

/// Whether the process that wrote `pid` still runs (a holder killed right after taking the
/// lock leaves its line; the next holder overwrites it a moment after locking).
fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The holder named in the file. Right after a holder takes the lock, the file may still be
/// empty (or name a dead process) for a moment: look again briefly before saying "unknown".
fn read_holder(f: &mut File) -> Holder {
    let mut last = Holder::default();
    for _ in 0..10 {
        let mut text = String::new();
        if f.rewind().is_ok() && f.read_to_string(&mut text).is_ok() {
            last = Holder::parse(&text);
            if last.pid.is_some_and(alive) {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    last
}

/// Take the lock for `what` without waiting.
pub fn acquire(path: &Path, what: &str) -> Result<Lock, LockError> {
    let cancel = Cancel::new();
    acquire_waiting(
        path,
        &Wait {
            what,
            bound: Some(Duration::ZERO),
            cancel: &cancel,
            on_wait: &|_| {},
        },
    )
}

/// Take the lock, waiting as `w` says; then write our pid and `w.what` into it.
pub fn acquire_waiting(path: &Path, w: &Wait) -> Result<Lock, LockError> {
    let mut f = open(path)?;
    let start = Instant::now();
    let shown = || path.display().to_string();
    let mut announced = false;
    loop {
        match f.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(io(path)(e)),
        }
        let left = match w.bound {
            Some(b) if start.elapsed() >= b => {
                // Whoever holds it now (it may have changed hands during the wait).
                let holder = read_holder(&mut f);
                return Err(if b.is_zero() {
                    LockError::Held {
                        path: shown(),
                        holder,
                    }
                } else {
                    LockError::TimedOut {
                        path: shown(),
                        holder,
                        waited: crate::logging::human_duration(b),
                    }
                });
            }
            Some(b) => b - start.elapsed(),
            None => POLL,
        };
        if w.cancel.is_cancelled() {
            return Err(LockError::Cancelled {
                path: shown(),
                holder: read_holder(&mut f),
            });
        }
        if !announced {
            announced = true;
            (w.on_wait)(&read_holder(&mut f));
        }
        w.cancel.heartbeat();
        std::thread::sleep(left.min(POLL));
    }
    f.set_len(0).map_err(io(path))?;
    f.rewind().map_err(io(path))?;
    f.write_all(Holder::line(std::process::id(), w.what).as_bytes())
        .map_err(io(path))?;
    Ok(Lock { file: f })
}

/// Whether another run holds the lock, found without writing anything (no file is created,
/// no pid written): for read-only commands.
pub fn is_held(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    matches!(f.try_lock_shared(), Err(TryLockError::WouldBlock))
}

/// Who holds the lock now, if anyone (read-only, like [`is_held`]).
pub fn holder(path: &Path) -> Option<Holder> {
    if !is_held(path) {
        return None;
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Some(Holder::parse(&text))
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
