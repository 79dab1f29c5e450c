//! The node lock in the daemon (issue 19): held only while the daemon acts (its start-up
//! recovery, each cycle, applying the kubelet setting) and never between cycles, so that an
//! operator's manual commands run while the service does. A command that holds the lock when
//! a cycle is due makes the daemon wait for it quietly: one debug line and a STATUS= line, no
//! bound but the daemon's own cancel handle (SIGTERM ends the wait at once). Since a command
//! may have died mid-write while the daemon held nothing, each cycle first finishes what it
//! left ([`recover_left`]); asking costs a few stat calls.
//!
//! The daemon also stamps the files it wrote while it still holds the lock ([`stamp`]), so
//! that the directory watch drops only the events of its own writes, and a command's later
//! write to the same file still starts a cycle.

use super::conditions::Conditions;
use super::notify;
use crate::act::cancel::Cancel;
use crate::act::store::lock::{self, Holder, Lock, LockError};
use crate::config::Settings;
use crate::node::NodePaths;
use anyhow::Result;
use std::os::unix::fs::MetadataExt;
use time::OffsetDateTime;

/// What the daemon writes into the lock file while a cycle runs.
pub const CYCLE: &str = "daemon cycle";
/// ... while it recovers at start-up.
pub const START: &str = "daemon start-up";
/// ... while it applies `kubelet.serverTLSBootstrap`.
pub const KUBELET_SETTING: &str = "daemon kubelet setting";

/// Take the node lock as `what`, waiting for whoever holds it until `cancel` is set. `None`
/// when cancelled while waiting (nothing was done).
pub fn take(paths: &NodePaths, what: &str, cancel: &Cancel) -> Result<Option<Lock>> {
    let say = |h: &Holder| {
        tracing::debug!("waiting for the node lock, held by {h}");
        notify::status(&format!("waiting for the node lock, held by {h}"));
    };
    let w = lock::Wait {
        what,
        bound: None,
        cancel,
        on_wait: &say,
    };
    match lock::acquire_waiting(&paths.lock_file(), &w) {
        Ok(l) => Ok(Some(l)),
        Err(LockError::Cancelled { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Finish or undo what another run left since the daemon last held the lock (a journal,
/// staged files, parked manifests, a revival's journal), restarting the kubelet if a revival
/// owes it. Owed static-pod restarts are left to the cycle, which does them within the
/// restart budget. A failure is a standing condition: logged once, not every cycle.
pub fn recover_left(
    paths: &NodePaths,
    settings: &Settings,
    conditions: &mut Conditions,
    now: OffsetDateTime,
    cancel: &Cancel,
) {
    if !crate::act::recover::left_behind(paths) {
        return;
    }
    let problems = match crate::act::recover::recover_files(paths, settings, true, cancel, now) {
        Ok(r) => {
            for a in &r.actions {
                tracing::warn!(ACTION = "recover", "{a} (left by an interrupted run)");
            }
            r.problems
        }
        Err(e) => vec![format!("{e:#}")],
    };
    if problems.is_empty() {
        return;
    }
    let text = format!(
        "recovering what an interrupted run left: {}",
        problems.join("; ")
    );
    if conditions.holds("recover", &text, now) {
        tracing::error!(ACTION = "recover", RESULT = "failed", "{text}");
    }
}

/// A file's identity after a write: device, inode and change time (an atomic replacement is
/// a new inode; any write or rename changes the ctime). `None`: the file does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId(Option<(u64, u64, i64, i64)>);

impl FileId {
    /// The identity of the file at `path` now.
    pub fn of(path: &std::path::Path) -> FileId {
        FileId(
            std::fs::symlink_metadata(path)
                .ok()
                .map(|m| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())),
        )
    }
}

/// The daemon's own writes: host path and the identity the file had when the daemon was done
/// with it. Taken under the lock, before anyone else may write.
pub fn stamp(paths: &NodePaths, written: &[String]) -> Vec<(String, FileId)> {
    written
        .iter()
        .map(|h| (h.clone(), FileId::of(&paths.root.resolve(h))))
        .collect()
}
