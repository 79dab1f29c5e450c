//! The two sides a node's rotation steps run on: an HA control plane (the record in etcd, the
//! restart lock held, the cluster gate around each restart) and a single node (the record in
//! stateDir, no lock, its own halt).

use super::store::{EtcdStore, LocalStore, Store};
use crate::act::staticpods::restart::{
    restart_all, restart_all_gated, Gate, GateVerdict, RestartOpts, Restarted, Rollback,
    SequenceError,
};
use crate::cluster::gate::ClusterGate;
use crate::cluster::Permit;
use crate::node::NodePaths;
use crate::pki::table::Component;
use crate::plan::rotation::LocalHalt;
use anyhow::{anyhow, Result};
use time::OffsetDateTime;

/// How one side (etcd + lock, or the local file) carries a step.
pub(super) trait Side {
    /// Where the record lives.
    fn store(&self) -> &dyn Store;
    /// May this node restart its etcd member now (the quorum guard), before anything is written.
    fn ready(&mut self) -> Result<(), String>;
    /// Restart `comps` in order, verified, rolling a failed one back with `rollback`.
    fn restart(
        &mut self,
        comps: &[Component],
        rollback: &dyn Fn(Component) -> Rollback,
    ) -> Result<Vec<Restarted>, SequenceError>;
    /// Record a failure where every node sees it (the HA gate has already written the halt).
    fn halt(&self, reason: &str, now: OffsetDateTime);
    /// After a rollback, restart `comps` once more on the files put back: verified, nothing
    /// more to roll back, and a failure only reported (the halt names the one that caused the
    /// rollback). Each component with whether it came back.
    fn restart_again(&mut self, comps: &[Component]) -> Vec<(Component, bool)>;
}

/// What [`Side::restart_again`] reports of a sequence.
fn outcome(
    comps: &[Component],
    r: Result<Vec<Restarted>, SequenceError>,
) -> Vec<(Component, bool)> {
    match r {
        Ok(done) => done.iter().map(|d| (d.component, true)).collect(),
        Err(e) => {
            tracing::error!(
                ACTION = "ca-rotate",
                RESULT = "failed",
                "restarting {} again after the rollback: {e}",
                comps
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            e.done
                .iter()
                .map(|c| (*c, true))
                .chain(e.failed.map(|c| (c, false)))
                .collect()
        }
    }
}

/// The cluster gate without its halt record (see [`Side::restart_again`]).
struct NoHalt<'g, 'p, 'c>(&'g mut ClusterGate<'p, 'c>);

impl Gate for NoHalt<'_, '_, '_> {
    fn before(&mut self, c: Component) -> GateVerdict {
        self.0.before(c)
    }
    fn process_only(&self, c: Component) -> bool {
        self.0.process_only(c)
    }
    fn after(&mut self, c: Component) -> Result<()> {
        self.0.after(c)
    }
}

/// The HA side: the record in etcd, the restart lock held, the cluster gate.
pub(super) struct Ha<'c, 'p> {
    pub(super) store: EtcdStore<'c>,
    pub(super) permit: &'p mut Permit<'c>,
    pub(super) paths: &'p NodePaths,
    pub(super) opts: RestartOpts,
    pub(super) stop: &'p dyn Fn() -> bool,
    pub(super) clock: &'p dyn Fn() -> OffsetDateTime,
    pub(super) catch_up: std::time::Duration,
}

impl Side for Ha<'_, '_> {
    fn store(&self) -> &dyn Store {
        &self.store
    }
    fn ready(&mut self) -> Result<(), String> {
        if self.permit.lost() {
            return Err("the restart lock's lease was lost".into());
        }
        self.permit.quorum_allows().map_err(|d| d.reason)
    }
    fn restart(
        &mut self,
        comps: &[Component],
        rollback: &dyn Fn(Component) -> Rollback,
    ) -> Result<Vec<Restarted>, SequenceError> {
        let mut gate = ClusterGate {
            permit: self.permit,
            cancel: self.stop,
            now: self.clock,
            catch_up: self.catch_up,
        };
        restart_all_gated(self.paths, comps, &self.opts, rollback, &mut gate)
    }
    fn halt(&self, _reason: &str, _now: OffsetDateTime) {}
    fn restart_again(&mut self, comps: &[Component]) -> Vec<(Component, bool)> {
        let mut gate = ClusterGate {
            permit: self.permit,
            cancel: self.stop,
            now: self.clock,
            catch_up: self.catch_up,
        };
        let r = restart_all_gated(
            self.paths,
            comps,
            &self.opts,
            &|_| Vec::new(),
            &mut NoHalt(&mut gate),
        );
        outcome(comps, r)
    }
}

/// The single-node side: the record in stateDir, no lock.
pub(super) struct Local<'a> {
    pub(super) store: LocalStore<'a>,
    pub(super) paths: &'a NodePaths,
    pub(super) opts: RestartOpts,
}

impl Side for Local<'_> {
    fn store(&self) -> &dyn Store {
        &self.store
    }
    fn ready(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn restart(
        &mut self,
        comps: &[Component],
        rollback: &dyn Fn(Component) -> Rollback,
    ) -> Result<Vec<Restarted>, SequenceError> {
        restart_all(self.paths, comps, &self.opts, rollback)
    }
    fn restart_again(&mut self, comps: &[Component]) -> Vec<(Component, bool)> {
        outcome(
            comps,
            restart_all(self.paths, comps, &self.opts, &|_| Vec::new()),
        )
    }
    fn halt(&self, reason: &str, now: OffsetDateTime) {
        let r = (|| -> Result<()> {
            for _ in 0..3 {
                let Some((mut rec, rev)) = self.store.load()? else {
                    return Ok(());
                };
                rec.halt = Some(LocalHalt {
                    reason: reason.to_string(),
                    time: crate::logging::rfc3339(now),
                });
                if self.store.swap(rev, &rec)? {
                    return Ok(());
                }
            }
            Err(anyhow!("the record kept changing"))
        })();
        if let Err(e) = r {
            tracing::error!("could not record the rotation's halt: {e:#}");
        }
    }
}
