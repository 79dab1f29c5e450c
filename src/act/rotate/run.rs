//! Carrying a rotation out on this node, called once per daemon cycle (through `entry`, with
//! the restart lock held on an HA control plane): read the record; if this node's step of the
//! current phase is due, write the step's files, restart what loads them (etcd, then
//! kube-apiserver, each verified, with the quorum guard), and record the step by
//! compare-and-swap. The last node of a phase moves the record to the next phase; holding the
//! lock, it goes on with its next step.
//!
//! A failed restart rolls the node's step back and halts the rollout (`failure`).

use super::inflight::{self, InFlight};
use super::material;
use super::side::Side;
use super::step;
use super::store::{Resume, Store};
use crate::act::cancel::Cancel;
use crate::config::Settings;
use crate::logging::rfc3339;
use crate::node::NodePaths;
use crate::pki::table::Component;
use crate::plan::rotation::{Rotation, Which};
use anyhow::{anyhow, Result};
use time::OffsetDateTime;

/// At most this many steps in one call (a single node runs all three phases in one cycle).
const MAX_STEPS: usize = 4;

/// What one call saw and did.
#[derive(Debug, Default)]
pub struct Report {
    /// The record as last seen; `None` when there is none (or it could not be read).
    pub record: Option<Rotation>,
    /// Whether the record could be looked for at all (false: etcd did not answer).
    pub seen: bool,
    /// What keeps this node from its step now (a standing condition: log it once).
    pub blocked: Option<String>,
    /// A step that failed and was rolled back (logged here already).
    pub failed: Option<String>,
    /// Steps completed.
    pub steps: usize,
    /// Host paths written.
    pub written: Vec<String>,
    /// Restarts attempted: component, success.
    pub restarts: Vec<(String, bool)>,
}

impl Report {
    /// A report of a record looked for (and maybe found).
    pub fn seen(record: Option<Rotation>) -> Report {
        Report {
            seen: true,
            record,
            ..Report::default()
        }
    }
}

/// Do this node's due steps through `side`, at most [`MAX_STEPS`].
pub(super) fn steps(
    paths: &NodePaths,
    settings: &Settings,
    node: &str,
    side: &mut dyn Side,
    cancel: &Cancel,
    clock: &dyn Fn() -> OffsetDateTime,
    rep: &mut Report,
) -> Result<()> {
    for _ in 0..MAX_STEPS {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let Some((rec, _)) = side.store().load()? else {
            tracing::debug!("the rotation record is gone");
            inflight::forget_unless(paths, None);
            rep.record = None;
            return Ok(());
        };
        inflight::forget_unless(paths, Some(&rec));
        rep.record = Some(rec.clone());
        if let Some(why) = halted(&rec) {
            rep.blocked = Some(why);
            return Ok(());
        }
        if !rec.due(node) {
            tracing::debug!(
                "{} rotation {}: no step of {node}'s is due in {} (done: {})",
                rec.ca,
                rec.id,
                rec.phase,
                rec.done.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            return Ok(());
        }
        let Some(target) = rec.phase.target() else {
            return Ok(());
        };
        let now = clock();
        let cas = material::load(paths, &rec, target.key == Which::New)?;
        material::keep_old(paths, &rec, &cas, now)?;
        if let Err(why) = side.ready() {
            rep.blocked = Some(format!(
                "the {} rotation {} waits on {node}: {why}",
                rec.ca, rec.id
            ));
            return Ok(());
        }
        let st = step::prepare(paths, settings, &target, &cas, now)?;
        if !st.changes.is_empty() {
            step::commit(paths, &rec, &st, now)?;
            rep.written
                .extend(st.changes.iter().map(|c| paths.show(&c.target)));
        }
        // The step's backup, whichever run made it: a crashed run may have written the files.
        let pairs = InFlight::of(paths, &rec)
            .map(|f| f.rollback(paths))
            .unwrap_or_default();
        // Whatever is owed, the step's restarts included (a crash may have left them owed with
        // the files already written; recovery leaves them to this step while it stands).
        let mut owed_names = crate::act::store::owed::read(paths);
        owed_names.extend(Resume::read(paths, &rec.id, rec.phase));
        let owed: Vec<Component> = Component::ORDER
            .into_iter()
            .filter(|c| owed_names.iter().any(|n| n == c.name()))
            .collect();
        let mut restarted = Vec::new();
        if !owed.is_empty() {
            let rollback = |_c: Component| pairs.clone();
            match side.restart(&owed, &rollback) {
                Ok(done) => {
                    for r in &done {
                        rep.restarts.push((r.component.name().into(), true));
                        restarted.push(r.component.name());
                    }
                }
                Err(e) => {
                    let stopped = cancel.is_cancelled();
                    super::failure::handle(paths, node, &rec, &owed, e, stopped, side, clock, rep);
                    return Ok(());
                }
            }
        }
        let left = crate::act::store::owed::read(paths);
        if !left.is_empty() {
            rep.blocked = Some(format!(
                "the {} rotation {} waits on {node}: restarts of {} are still owed",
                rec.ca,
                rec.id,
                left.join(", ")
            ));
            return Ok(());
        }
        fail::fail_point!("rotate::after-restarts");
        // Every restart came back: the step needs its backup no more. Before the record, so
        // that no recorded step leaves a rollback behind.
        inflight::clear(paths)?;
        let moved = record_step(side.store(), &rec, node, clock())?;
        fail::fail_point!("rotate::after-record");
        Resume::clear(paths)?;
        rep.steps += 1;
        super::events::step_done(&rec, node, &st.reissued, &restarted, moved.as_ref());
        rep.record = moved.or(rep.record.take());
    }
    Ok(())
}

/// A single node's halt, for humans.
pub(super) fn halted(rec: &Rotation) -> Option<String> {
    rec.halt.as_ref().map(|h| {
        format!(
            "the {} rotation {} is halted since {}: {}; fix the cause, then run `kubeadm-certd cluster resume`",
            rec.ca, rec.id, h.time, h.reason
        )
    })
}

/// Mark this node's step done (compare-and-swap, retried on a concurrent change); the record
/// written, or `None` when the record had moved on (an abort).
fn record_step(
    store: &dyn Store,
    rec: &Rotation,
    node: &str,
    now: OffsetDateTime,
) -> Result<Option<Rotation>> {
    for _ in 0..10 {
        let Some((cur, rev)) = store.load()? else {
            return Ok(None);
        };
        let Some(next) = cur.with_step_done(&rec.id, rec.phase, node, &rfc3339(now)) else {
            return Ok(None);
        };
        if store.swap(rev, &next)? {
            return Ok(Some(next));
        }
    }
    Err(anyhow!(
        "the rotation record kept changing while this node recorded its step"
    ))
}
