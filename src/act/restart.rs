//! Restarting the static pods a renewal affects, with rollback of each failed component to
//! the renewal's backup.

use crate::act::cancel::Cancel;
use crate::act::renew::Outcome;
use crate::act::staticpods::restart::{
    restart_all, restart_all_gated, RestartOpts, Restarted, Rollback, SequenceError,
};
use crate::cluster::gate::ClusterGate;
use crate::cluster::{Coordinator, Wait};
use crate::config::Settings;
use crate::node::NodePaths;
use crate::pki::table::Component;
use crate::plan::restarts::ManifestConsumers;
use crate::plan::Consumers;
use std::time::Duration;
use time::OffsetDateTime;

/// The files a failed component gets back: those of renewed certificates it uses, paired with
/// their copies in the renewal's backup.
pub fn rollback_for(paths: &NodePaths, outcome: &Outcome, c: Component) -> Rollback {
    let Some(dir) = &outcome.backup_dir else {
        return Vec::new();
    };
    let consumers = ManifestConsumers::read(paths);
    let mut out = Vec::new();
    for r in &outcome.renewed {
        let used = r.files.iter().any(|f| {
            consumers
                .uses(c, f)
                .unwrap_or_else(|| r.handler.consumers.contains(&c))
        });
        if used {
            for f in &r.files {
                let target = paths.root.resolve(f);
                out.push((target.clone(), paths.backup_path(dir, &target)));
            }
        }
    }
    out
}

/// What became of a restart sequence.
#[derive(Debug)]
pub enum Sequence {
    /// Every component asked for was restarted (or skipped by the gate, and still owed).
    Done(Vec<Restarted>),
    /// Nothing was restarted now: the lock was not won, a halt stands, etcd is unreachable.
    /// The restarts stay owed.
    Owed(String),
}

/// The coordination's progress, for sd_notify and the metrics.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Waiting for the restart lock: who holds it, and how long this node has waited so far
    /// (reported every few seconds while the wait lasts).
    Waiting {
        /// The node holding the lock.
        holder: String,
        /// The wait so far.
        waited: Duration,
    },
    /// The lock was won after this long (zero for break glass).
    Acquired(Duration),
    /// The lock was given back.
    Released,
}

/// Restart `components` in order. On an HA control plane (see `coordination`) the whole
/// sequence runs under the cluster-wide restart lock; a node that acts alone restarts at once.
pub fn restart_coordinated(
    paths: &NodePaths,
    settings: &Settings,
    components: &[Component],
    cancel: &Cancel,
    rollback: &dyn Fn(Component) -> Rollback,
    clock: &dyn Fn() -> OffsetDateTime,
    progress: &dyn Fn(Progress),
) -> Result<Sequence, SequenceError> {
    let early = |error: anyhow::Error| SequenceError {
        done: Vec::new(),
        failed: None,
        error,
    };
    let opts = RestartOpts::from_node(paths, settings, cancel).map_err(early)?;
    let c = cancel.clone();
    let coord = match Coordinator::connect_with(
        paths,
        &settings.coordination,
        std::sync::Arc::new(move || c.is_cancelled()),
    ) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Ok(Sequence::Done(restart_all(
                paths, components, &opts, rollback,
            )?))
        }
        Err(e) => return Ok(Sequence::Owed(format!("{e:#}"))),
    };
    let stop = || {
        cancel.heartbeat();
        cancel.is_cancelled()
    };
    let node = coord.node_name();
    let mut permit = match coord.acquire(&node, &stop, clock(), &|h, waited| {
        progress(Progress::Waiting {
            holder: h.to_string(),
            waited,
        })
    }) {
        Ok(p) => p,
        Err(Wait::Cancelled) => {
            return Err(early(anyhow::anyhow!(
                "interrupted while waiting for the restart lock"
            )))
        }
        Err(w) => {
            let id = match w {
                Wait::Halted(_) => crate::logging::MSG_HALT,
                _ => crate::logging::MSG_LOCK_WAIT,
            };
            tracing::warn!(
                MESSAGE_ID = id,
                ACTION = "restart",
                RESULT = "owed",
                "not restarting now, the restarts stay owed: {w}"
            );
            return Ok(Sequence::Owed(w.to_string()));
        }
    };
    progress(Progress::Acquired(permit.waited()));
    let result = {
        let mut gate = ClusterGate {
            permit: &mut permit,
            cancel: &stop,
            now: clock,
            catch_up: settings.restart.timeout,
        };
        restart_all_gated(paths, components, &opts, rollback, &mut gate)
    };
    if let Err(e) = permit.release() {
        tracing::warn!("releasing the restart lock: {e:#} (it lapses with its lease)");
    }
    progress(Progress::Released);
    Ok(Sequence::Done(result?))
}

/// Restart the components after a renewal or install, with rollback to `outcome`'s backup;
/// `Owed` when coordination says not now.
pub fn restart_after(
    paths: &NodePaths,
    settings: &Settings,
    outcome: Option<&Outcome>,
    components: &[String],
    cancel: &Cancel,
    clock: &dyn Fn() -> OffsetDateTime,
    progress: &dyn Fn(Progress),
) -> Result<Sequence, SequenceError> {
    let comps: Vec<Component> = components
        .iter()
        .filter_map(|n| Component::from_name(n))
        .collect();
    let rollback = |c| {
        outcome
            .map(|o| rollback_for(paths, o, c))
            .unwrap_or_default()
    };
    restart_coordinated(paths, settings, &comps, cancel, &rollback, clock, progress)
}
