//! Where the rotation record lives: etcd on an HA control plane (`cluster::rotation`), a file
//! in stateDir on a single node. Both change it only by compare-and-swap on a revision.

use crate::act::store::atomic;
use crate::cluster::Coordinator;
use crate::node::NodePaths;
use crate::plan::rotation::{Rotation, LOCAL_RECORD};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// A record and the revision a swap compares with (0: none yet).
pub type Versioned = (Rotation, i64);

/// Read and compare-and-swap the record.
pub trait Store {
    /// The record, if any.
    fn load(&self) -> Result<Option<Versioned>>;
    /// Write `r` if the record is still at `rev`; whether it was written.
    fn swap(&self, rev: i64, r: &Rotation) -> Result<bool>;
}

/// The record in the cluster's etcd.
pub struct EtcdStore<'a> {
    /// The connection.
    pub coord: &'a Coordinator,
    /// The CA (`etcd-ca`).
    pub ca: &'a str,
}

impl Store for EtcdStore<'_> {
    fn load(&self) -> Result<Option<Versioned>> {
        self.coord.rotation(self.ca)
    }
    fn swap(&self, rev: i64, r: &Rotation) -> Result<bool> {
        self.coord.swap_rotation(rev, r)
    }
}

/// The record of a single control-plane node, in `<stateDir>/ca-rotation.json`. The node
/// lock keeps every writer apart; the revision still guards against a record replaced
/// between a read and a write (an abort from another shell).
pub struct LocalStore<'a> {
    /// The node.
    pub paths: &'a NodePaths,
}

#[derive(Serialize, Deserialize)]
struct File {
    revision: i64,
    record: Rotation,
}

impl LocalStore<'_> {
    fn path(&self) -> std::path::PathBuf {
        self.paths.state.join(LOCAL_RECORD)
    }

    /// Whether this node keeps a local record of a rotation under way. A finished one does
    /// not count: the node may have become part of an HA control plane since.
    pub fn active(paths: &NodePaths) -> bool {
        matches!(LocalStore { paths }.load(), Ok(Some((r, _))) if r.phase.active())
    }
}

impl Store for LocalStore<'_> {
    fn load(&self) -> Result<Option<Versioned>> {
        let p = self.path();
        match crate::node::fsread::read_regular(&p, 1 << 20) {
            Ok(b) => {
                let f: File = serde_json::from_slice(&b).with_context(|| {
                    format!("{}: not a valid rotation record", self.paths.show(&p))
                })?;
                Ok(Some((f.record, f.revision)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.paths.show(&p))),
        }
    }

    fn swap(&self, rev: i64, r: &Rotation) -> Result<bool> {
        let now = self.load()?.map(|(_, v)| v).unwrap_or(0);
        if now != rev {
            return Ok(false);
        }
        let text = serde_json::to_vec_pretty(&File {
            revision: rev + 1,
            record: r.clone(),
        })
        .context("encoding the rotation record")?;
        atomic::create_dir_all_mode(&self.paths.state, 0o700)?;
        atomic::write_atomic(&self.path(), &text, 0o600)?;
        Ok(true)
    }
}

/// Restarts a failed step still needs when it resumes: `run_sequence` clears the owed restarts
/// after a failure (so that recovery does not retry it for ever), but a step whose files were
/// not all put back (its backup was made by an earlier, interrupted run) must restart its
/// components again once the halt is cleared, or the step would be recorded with components
/// running on what they loaded before. Read only by the rotation, which respects the halt.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Resume {
    /// The rotation.
    pub id: String,
    /// The phase whose step failed.
    pub phase: crate::plan::rotation::Phase,
    /// Components to restart.
    pub components: Vec<String>,
}

const RESUME: &str = "ca-rotation-resume.json";

impl Resume {
    /// What a failed step left, if it is for this rotation and phase.
    pub fn read(paths: &NodePaths, id: &str, phase: crate::plan::rotation::Phase) -> Vec<String> {
        crate::node::fsread::read_regular(&paths.state.join(RESUME), 64 * 1024)
            .ok()
            .and_then(|b| serde_json::from_slice::<Resume>(&b).ok())
            .filter(|r| r.id == id && r.phase == phase)
            .map(|r| r.components)
            .unwrap_or_default()
    }

    /// Record it.
    pub fn write(&self, paths: &NodePaths) -> Result<()> {
        let text = serde_json::to_vec(self).context("encoding the rotation's resume record")?;
        atomic::write_atomic(&paths.state.join(RESUME), &text, 0o600)
    }

    /// The step is done: nothing to resume.
    pub fn clear(paths: &NodePaths) -> Result<()> {
        match std::fs::remove_file(paths.state.join(RESUME)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).context("removing the rotation's resume record"),
        }
    }
}
