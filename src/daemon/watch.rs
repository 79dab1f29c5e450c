//! Watches on directories (not files: rename-replace drops file watches): certificatesDir,
//! its etcd/, kubeconfigDir, kubeletPkiDir and the kubelet config's directory.
//!
//! Only events that change content or names count: create, close after write, rename in or
//! out, delete, attribute changes. Opens, reads and close-without-write (etcd re-reads its
//! certificates on every handshake; exporters and backup agents read them all day) are
//! dropped at the source. Changed paths are coalesced in a bounded set, so a long restart
//! cannot grow a queue. A watch that cannot be set up (inotify limits are common on busy
//! nodes) leaves the daemon on its timer; `refresh` retries every cycle.

use super::nodelock::FileId;
use crate::act::store::atomic::is_staged_name;
use crate::node::NodePaths;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Distinct changed paths kept before they collapse into one "rescan everything".
const MAX_PENDING: usize = 1024;

/// What the watcher thread hands to the daemon loop.
#[derive(Debug, Default)]
struct Pending {
    paths: BTreeSet<String>,
    rescan: bool,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
}

/// The daemon's directory watches.
pub struct Watch {
    shared: Arc<Shared>,
    watcher: Option<notify::RecommendedWatcher>,
    watched: BTreeSet<PathBuf>,
}

/// Changes collected since the last [`Watch::take`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Host paths that changed.
    pub paths: BTreeSet<String>,
    /// The kernel queue overflowed or too many paths changed: rescan everything.
    pub rescan: bool,
}

impl Changes {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && !self.rescan
    }
}

/// Whether an event kind changes content or names (see the module doc).
pub fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Metadata(_)) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        // Writes still in progress end with a close-after-write, which counts.
        EventKind::Modify(_) | EventKind::Access(_) => false,
        // Unknown kinds: better one scan too many than a change missed.
        EventKind::Any | EventKind::Other => true,
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Pending> {
    match shared.pending.lock() {
        Ok(p) => p,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Watch {
    /// No watches yet; call [`Watch::refresh`].
    pub fn new() -> Watch {
        Watch {
            shared: Arc::new(Shared::default()),
            watcher: None,
            watched: BTreeSet::new(),
        }
    }

    /// Set up what is missing: the inotify instance, and a watch on every listed directory
    /// that exists now (one created after start-up is picked up here). Returns the problem,
    /// if any, for the caller to report as a standing condition; never fails the daemon.
    pub fn refresh(&mut self, paths: &NodePaths) -> Option<String> {
        if self.watcher.is_none() {
            match self.create(paths) {
                Ok(w) => self.watcher = Some(w),
                Err(e) => return Some(format!("cannot create the directory watcher: {e}")),
            }
        }
        let w = self.watcher.as_mut()?;
        let mut problem = None;
        for d in dirs(paths) {
            if self.watched.contains(&d) {
                if !d.is_dir() {
                    // Removed: its watch went with it; watch it again once it is back.
                    self.watched.remove(&d);
                }
                continue;
            }
            if !d.is_dir() {
                continue;
            }
            match add_watch(w, &d) {
                Ok(()) => {
                    self.watched.insert(d);
                }
                Err(e) => {
                    problem.get_or_insert(format!("cannot watch {}: {e}", paths.show(&d)));
                }
            }
        }
        problem
    }

    fn create(&self, paths: &NodePaths) -> notify::Result<notify::RecommendedWatcher> {
        fail::fail_point!("watch::create", |_| Err(notify::Error::generic(
            "failpoint watch::create (inotify instance limit reached)"
        )));
        let shared = Arc::clone(&self.shared);
        let root = paths.root.clone();
        let state = paths.state.clone();
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let mut p = lock(&shared);
            match res {
                Ok(ev) if ev.need_rescan() => p.rescan = true,
                Ok(ev) if !is_change(&ev.kind) => return,
                Ok(ev) => {
                    for path in ev.paths {
                        let name = path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        if is_staged_name(&name) || path.starts_with(&state) {
                            continue;
                        }
                        if p.paths.len() >= MAX_PENDING {
                            p.rescan = true;
                        } else {
                            p.paths.insert(root.host_path(&path).display().to_string());
                        }
                    }
                    if p.paths.is_empty() && !p.rescan {
                        return;
                    }
                }
                Err(_) => p.rescan = true,
            }
            drop(p);
            shared.wake.notify_one();
        })
    }

    /// Wait until something changed (returns at once if a change is already pending).
    pub async fn changed(&self) {
        self.shared.wake.notified().await;
    }

    /// Take the changes collected so far.
    pub fn take(&self) -> Changes {
        let p = std::mem::take(&mut *lock(&self.shared));
        Changes {
            paths: p.paths,
            rescan: p.rescan,
        }
    }

    /// Forget pending changes to files the daemon itself wrote; keep the others. A file is
    /// the daemon's only while it still has the identity stamped when the daemon was done with
    /// it: the lock is free between cycles, and a manual command may have written the same
    /// file since, which must still start a cycle.
    pub fn forget_own(&self, paths: &NodePaths, own: &[(String, FileId)]) {
        lock(&self.shared).paths.retain(|x| {
            !own.iter()
                .any(|(h, id)| h == x && *id == FileId::of(&paths.root.resolve(h)))
        });
    }
}

impl Default for Watch {
    fn default() -> Self {
        Watch::new()
    }
}

fn add_watch(w: &mut notify::RecommendedWatcher, d: &std::path::Path) -> notify::Result<()> {
    fail::fail_point!("watch::add", |_| Err(notify::Error::generic(
        "failpoint watch::add (inotify watch limit reached)"
    )));
    w.watch(d, RecursiveMode::NonRecursive)
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
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};

    /// Replace `p` the way every writer here does: a staged file renamed over it.
    fn replace(p: &std::path::Path, text: &str) {
        let tmp = crate::act::store::atomic::staged_path(p);
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, p).unwrap();
    }

    /// Wait for the watcher thread to have seen what was just written.
    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    #[test]
    fn own_writes_are_forgotten_but_a_later_write_by_someone_else_is_not() {
        let d = tempfile::tempdir().unwrap();
        let paths =
            crate::config::Settings::default().paths(&crate::node::paths::Root::new(d.path()));
        std::fs::create_dir_all(&paths.pki).unwrap();
        let crt = paths.pki.join("apiserver.crt");
        let host = paths.show(&crt);
        let mut w = Watch::new();
        assert_eq!(w.refresh(&paths), None);
        // The daemon's own write, stamped under the lock: its events are dropped.
        replace(&crt, "daemon");
        let own = super::super::nodelock::stamp(&paths, std::slice::from_ref(&host));
        settle();
        w.forget_own(&paths, &own);
        assert!(w.take().is_empty());
        // The daemon writes again, then (lock released) a manual command replaces the same
        // file before the daemon gets to forget its own events: the change must stay.
        replace(&crt, "daemon again");
        let own = super::super::nodelock::stamp(&paths, std::slice::from_ref(&host));
        replace(&crt, "renewed by a command");
        settle();
        w.forget_own(&paths, &own);
        let c = w.take();
        assert!(c.paths.contains(&host), "{c:?}");
        // A write elsewhere is never taken for the daemon's.
        replace(&crt, "daemon");
        let own = super::super::nodelock::stamp(&paths, std::slice::from_ref(&host));
        let key = paths.pki.join("apiserver.key");
        replace(&key, "command");
        settle();
        w.forget_own(&paths, &own);
        let c = w.take();
        assert_eq!(
            c.paths.into_iter().collect::<Vec<_>>(),
            vec![paths.show(&key)]
        );
    }

    #[test]
    fn only_changes_count() {
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Remove(RemoveKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::From
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Read)));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
    }
}
