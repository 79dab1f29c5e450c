//! The backup of a rotation step in flight, durable and tied to the step (rotation id and
//! phase) rather than to the run that made it.
//!
//! A step's commit records, before it changes any file, which files it replaces and in which
//! backup set their copies are (`<stateDir>/ca-rotation-step.json`). The record stands until
//! the step's restarts have all come back (then the step is recorded in the rotation) or the
//! step has been rolled back. So a run that picks a step up after a crash, finding its files
//! already written by the crashed run and writing nothing itself, still restores the files
//! from before the step when a restart then fails.
//!
//! While it stands, the restarts owed are the rotation's: `recover` and the daemon's owed
//! restarts leave them to the rotation's next run, which carries them out with this rollback
//! and halts the rotation if one fails (a bare owed restart would neither restore the step's
//! files nor halt, and the step would then be recorded with a component that never came back).

use crate::act::staticpods::restart::Rollback;
use crate::act::store::atomic;
use crate::node::NodePaths;
use crate::pki::material::{cert_file, key_file};
use crate::pki::table::{CaId, Location, HANDLERS};
use crate::plan::rotation::{Phase, Rotation};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const FILE: &str = "ca-rotation-step.json";

/// A file the step replaces, and the backup set holding its copy from before the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    /// Host path of the file.
    pub target: String,
    /// Host path of the backup set.
    pub backup_dir: String,
}

/// A step whose files are (being) written and whose restarts are not all done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlight {
    /// The rotation.
    pub id: String,
    /// The CA.
    pub ca: String,
    /// The phase whose step this is.
    pub phase: Phase,
    /// What the step replaces.
    pub files: Vec<Saved>,
}

fn path(paths: &NodePaths) -> PathBuf {
    paths.state.join(FILE)
}

/// The record; an error says why it does not read.
fn read_checked(paths: &NodePaths) -> Result<Option<InFlight>, String> {
    let p = path(paths);
    let Ok(b) = crate::node::fsread::read_regular(&p, 1 << 20) else {
        return Ok(None);
    };
    serde_json::from_slice(&b).map(Some).map_err(|e| {
        format!(
            "{}: not a valid record of a rotation step ({e})",
            paths.show(&p)
        )
    })
}

impl InFlight {
    /// The record, if one stands and reads (one that does not read is dropped by
    /// [`forget_unless`]: its rollback could not be trusted anyway).
    pub fn read(paths: &NodePaths) -> Option<InFlight> {
        read_checked(paths).ok().flatten()
    }

    /// The record of `rec`'s current step, if that is the one standing.
    pub fn of(paths: &NodePaths, rec: &Rotation) -> Option<InFlight> {
        InFlight::read(paths).filter(|f| f.id == rec.id && f.phase == rec.phase)
    }

    /// The record for `rec`'s step after a commit that backed up `targets` into `dir`: what an
    /// earlier run of the same step saved (its files were written then) and this run's
    /// copies, which win for a file both saved (this run found it as it was before the step).
    pub fn merged(paths: &NodePaths, rec: &Rotation, dir: &Path, targets: &[PathBuf]) -> Self {
        let mut files: Vec<Saved> = InFlight::of(paths, rec)
            .map(|f| f.files)
            .unwrap_or_default();
        for t in targets {
            let target = paths.show(t);
            files.retain(|s| s.target != target);
            files.push(Saved {
                target,
                backup_dir: paths.show(dir),
            });
        }
        InFlight {
            id: rec.id.clone(),
            ca: rec.ca.clone(),
            phase: rec.phase,
            files,
        }
    }

    /// Record it (before the step changes any file).
    pub fn write(&self, paths: &NodePaths) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).context("encoding the rotation step record")?;
        atomic::create_dir_all_mode(&paths.state, 0o700)?;
        atomic::write_atomic(&path(paths), &text, 0o600)
    }

    /// The step's files, each with its copy from before the step: the rollback of any of its
    /// restarts. Only the files a rotation step writes, from sets under the backups directory:
    /// an edited record must not make a rollback write anything else.
    pub fn rollback(&self, paths: &NodePaths) -> Rollback {
        let allowed = step_files(paths);
        self.files
            .iter()
            .filter_map(|s| {
                let target = paths.root.resolve(&s.target);
                let dir = paths.root.resolve(&s.backup_dir);
                if !allowed.contains(&target) || dir.parent() != Some(paths.backups().as_path()) {
                    tracing::warn!(
                        "the rotation step record names {} from {}, which no rotation step writes; not restoring it",
                        s.target,
                        s.backup_dir
                    );
                    return None;
                }
                let copy = paths.backup_path(&dir, &target);
                copy.is_file().then_some((target, copy))
            })
            .collect()
    }

    /// Whether every file of the step holds its copy from before the step again.
    pub fn restored(&self, paths: &NodePaths) -> bool {
        let read = |p: &Path| std::fs::read(p).ok();
        let pairs = self.rollback(paths);
        pairs.len() == self.files.len()
            && pairs
                .iter()
                .all(|(t, c)| read(t).is_some() && read(t) == read(c))
    }

    /// For logs: "the etcd-ca rotation's reissue step".
    pub fn describe(&self) -> String {
        format!("the {} rotation {}'s {} step", self.ca, self.id, self.phase)
    }
}

/// The step is over (its restarts are done, or it was rolled back).
pub fn clear(paths: &NodePaths) -> Result<()> {
    match std::fs::remove_file(path(paths)) {
        Ok(()) => atomic::fsync_dir(&paths.state),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context("removing the rotation step record"),
    }
}

/// Drop a record that is not of `rec`'s current step (an abort moved the rotation on, or the
/// rotation is over or gone): it must not hold restarts back nor roll anything back.
pub fn forget_unless(paths: &NodePaths, rec: Option<&Rotation>) {
    match read_checked(paths) {
        Ok(None) => return,
        Ok(Some(f)) => {
            if rec.is_some_and(|r| r.phase.active() && r.id == f.id && r.phase == f.phase) {
                return;
            }
            tracing::debug!(
                "{} is no longer under way; dropping its record",
                f.describe()
            );
        }
        // Once: it goes now.
        Err(why) => tracing::warn!("{why}; removed"),
    }
    if let Err(e) = clear(paths) {
        tracing::warn!("{e:#}");
    }
}

/// Whether a step's record stands: its owed restarts are the rotation's.
pub fn stands(paths: &NodePaths) -> Option<String> {
    InFlight::read(paths).map(|f| f.describe())
}

/// Backup sets a standing step still needs (pruning keeps them).
pub fn dirs(paths: &NodePaths) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = InFlight::read(paths)
        .map(|f| {
            f.files
                .iter()
                .map(|s| paths.root.resolve(&s.backup_dir))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.dedup();
    v
}

/// Every file a rotation step may write: `etcd/ca.crt`, `etcd/ca.key`, the etcd leaves.
fn step_files(paths: &NodePaths) -> Vec<PathBuf> {
    let mut v = vec![paths.pki.join("etcd/ca.crt"), paths.pki.join("etcd/ca.key")];
    for h in HANDLERS.iter().filter(|h| h.ca == CaId::EtcdCa) {
        if let Location::Pki(base) = h.location {
            v.push(cert_file(paths, h));
            v.push(key_file(paths, base));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(phase: Phase) -> Rotation {
        serde_json::from_value(serde_json::json!({
            "id": "r1", "ca": "etcd-ca", "phase": phase, "nodes": ["cp1"],
            "startedBy": "cp1", "startedAt": "t", "updatedAt": "t", "oldCa": "", "newCa": ""
        }))
        .unwrap()
    }

    #[test]
    fn a_later_run_keeps_what_an_earlier_run_of_the_step_saved_and_nothing_else_is_restored() {
        let d = tempfile::tempdir().unwrap();
        let s = crate::config::Settings::default();
        let paths = s.paths(&crate::node::paths::Root::new(d.path()));
        let (ca, key, other) = (
            paths.pki.join("etcd/ca.crt"),
            paths.pki.join("etcd/ca.key"),
            paths.pki.join("ca.crt"),
        );
        let (b1, b2) = (paths.backups().join("one"), paths.backups().join("two"));
        for (dir, f, text) in [
            (&b1, &ca, "b1 ca"),
            (&b1, &key, "b1 key"),
            (&b2, &ca, "b2 ca"),
        ] {
            let copy = paths.backup_path(dir, f);
            std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
            std::fs::write(copy, text).unwrap();
        }
        let r = rec(Phase::Reissue);
        InFlight::merged(&paths, &r, &b1, &[ca.clone(), key.clone()])
            .write(&paths)
            .unwrap();
        // The same step again: ca.crt was found as before the step, ca.key was not changed.
        let f = InFlight::merged(&paths, &r, &b2, std::slice::from_ref(&ca));
        f.write(&paths).unwrap();
        let mut rb = InFlight::of(&paths, &r).unwrap().rollback(&paths);
        rb.sort();
        assert_eq!(
            rb,
            [
                (ca.clone(), paths.backup_path(&b2, &ca)),
                (key.clone(), paths.backup_path(&b1, &key))
            ]
        );
        // Pruning keeps both sets while the step stands.
        let kept = crate::act::store::prune::needed(&paths, &[b1.clone(), b2.clone()]);
        for n in ["one", "two"] {
            assert_eq!(
                kept.get(n).map(String::as_str),
                Some("a CA rotation step in flight rolls back to it")
            );
        }
        // Another phase's step does not inherit it; a record that names other files restores
        // none of them.
        assert!(InFlight::of(&paths, &rec(Phase::TrustNew)).is_none());
        let mut forged = f.clone();
        forged.files.push(Saved {
            target: paths.show(&other),
            backup_dir: paths.show(&b1),
        });
        assert_eq!(forged.rollback(&paths).len(), 2);
        assert!(!forged.restored(&paths));
        // Over once the rotation moved on; an unreadable record goes too.
        forget_unless(&paths, Some(&r));
        assert!(stands(&paths).is_some());
        forget_unless(&paths, Some(&rec(Phase::ReissueOld)));
        assert!(stands(&paths).is_none());
        std::fs::write(paths.state.join(FILE), "{").unwrap();
        forget_unless(&paths, Some(&r));
        assert!(!paths.state.join(FILE).exists());
    }
}
