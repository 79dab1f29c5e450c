//! Carrying a rotation out on this node, called once per daemon cycle: read the record; if
//! this node's step of the current phase is due, take the cluster-wide restart lock (HA),
//! write the step's files, restart what loads them (etcd, then kube-apiserver, each verified,
//! with the quorum guard), and record the step by compare-and-swap. The last node of a phase
//! moves the record to the next phase; holding the lock, it goes on with its next step.
//!
//! A failed restart rolls the node's step back (its files from the step's backup, the
//! component restarted once more) and halts the rollout: the cluster's halt record on an HA
//! control plane (`cluster resume` clears it), a halt in the local record on a single node.

use super::material;
use super::side::{Ha, Local, Side};
use super::step;
use super::store::{EtcdStore, LocalStore, Store};
use crate::act::cancel::Cancel;
use crate::act::restart::Progress;
use crate::act::staticpods::restart::RestartOpts;
use crate::cluster::{Coordinator, Wait};
use crate::config::Settings;
use crate::logging::{
    rfc3339, MSG_ROTATION_DONE, MSG_ROTATION_FAILED, MSG_ROTATION_PHASE, MSG_ROTATION_STEP,
};
use crate::node::NodePaths;
use crate::pki::table::Component;
use crate::plan::rotation::{Phase, Rotation, Which};
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

fn now_text(t: OffsetDateTime) -> String {
    rfc3339(t)
}

/// Do this node's due steps through `side`, at most [`MAX_STEPS`].
fn steps(
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
            rep.record = None;
            return Ok(());
        };
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
        let pairs = if st.changes.is_empty() {
            Vec::new()
        } else {
            let (_, pairs) = step::commit(paths, &st, now)?;
            rep.written
                .extend(st.changes.iter().map(|c| paths.show(&c.target)));
            pairs
        };
        // Whatever is owed, the step's restarts included (a crash may have left them owed with
        // the files already written; recovery may also have done them already).
        let mut owed_names = crate::act::store::owed::read(paths);
        owed_names.extend(super::store::Resume::read(paths, &rec.id, rec.phase));
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
                    for c in &e.done {
                        rep.restarts.push((c.name().into(), true));
                    }
                    if let Some(c) = e.failed {
                        rep.restarts.push((c.name().into(), false));
                    }
                    let reason = format!(
                        "{} step of the {} rotation {} on {node}: {}",
                        rec.phase, rec.ca, rec.id, e.error
                    );
                    if e.failed.is_none() {
                        // Stopped before a component failed (a stop request, the lease, the
                        // gate): nothing to roll back; the restarts stay owed for next time.
                        rep.blocked = Some(reason);
                        return Ok(());
                    }
                    tracing::error!(
                        MESSAGE_ID = MSG_ROTATION_FAILED,
                        ACTION = "ca-rotate",
                        RESULT = "failed",
                        "{reason}; the step's files were restored from the backup; the rotation is halted"
                    );
                    side.halt(&reason, clock());
                    let resume = super::store::Resume {
                        id: rec.id.clone(),
                        phase: rec.phase,
                        components: owed.iter().map(|c| c.name().to_string()).collect(),
                    };
                    if let Err(w) = resume.write(paths) {
                        tracing::error!("{w:#}");
                    }
                    rep.failed = Some(reason);
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
        let moved = record_step(side.store(), &rec, node, clock())?;
        super::store::Resume::clear(paths)?;
        rep.steps += 1;
        log_step(&rec, node, &st.reissued, &restarted, moved.as_ref());
        rep.record = moved.or(rep.record.take());
    }
    Ok(())
}

/// A single node's halt, for humans.
fn halted(rec: &Rotation) -> Option<String> {
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
        let Some(next) = cur.with_step_done(&rec.id, rec.phase, node, &now_text(now)) else {
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

fn log_step(
    rec: &Rotation,
    node: &str,
    reissued: &[&str],
    restarted: &[&str],
    next: Option<&Rotation>,
) {
    let done = next
        .map(|n| {
            if n.phase == rec.phase {
                n.done.len()
            } else {
                rec.nodes.len()
            }
        })
        .unwrap_or(rec.done.len() + 1);
    tracing::info!(
        MESSAGE_ID = MSG_ROTATION_STEP,
        ACTION = "ca-rotate",
        RESULT = "ok",
        "{} rotation {}: {} done on {node} ({done} of {} nodes){}{}",
        rec.ca,
        rec.id,
        rec.phase,
        rec.nodes.len(),
        if reissued.is_empty() {
            String::new()
        } else {
            format!("; re-issued {}", reissued.join(", "))
        },
        if restarted.is_empty() {
            String::new()
        } else {
            format!("; restarted {}", restarted.join(", "))
        }
    );
    let Some(n) = next else { return };
    if n.phase == rec.phase {
        return;
    }
    match n.phase {
        Phase::Done => tracing::info!(
            MESSAGE_ID = MSG_ROTATION_DONE,
            ACTION = "ca-rotate",
            "{} rotation {} complete: every node trusts only the new CA",
            rec.ca,
            rec.id
        ),
        Phase::Aborted => tracing::info!(
            MESSAGE_ID = MSG_ROTATION_DONE,
            ACTION = "ca-rotate",
            "{} rotation {} aborted: every node is back on the old CA",
            rec.ca,
            rec.id
        ),
        p => tracing::info!(
            MESSAGE_ID = MSG_ROTATION_PHASE,
            ACTION = "ca-rotate",
            "{} rotation {}: {} complete on every node; {p} begins",
            rec.ca,
            rec.id,
            rec.phase
        ),
    }
}

/// This node's name as a rotation knows it: its etcd member's name, else the hostname.
pub fn node_name(paths: &NodePaths) -> String {
    crate::cluster::endpoints::local_view(paths)
        .local_name
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        })
}

/// A single node's rotation: every due step, in one call.
pub fn run_local(
    paths: &NodePaths,
    settings: &Settings,
    cancel: &Cancel,
    clock: &dyn Fn() -> OffsetDateTime,
) -> Report {
    let mut rep = Report {
        seen: true,
        ..Report::default()
    };
    let store = LocalStore { paths };
    match store.load() {
        Ok(Some((r, _))) => {
            rep.blocked = halted(&r);
            let active = r.phase.active() && r.halt.is_none();
            rep.record = Some(r);
            if !active {
                return rep;
            }
        }
        Ok(None) => return rep,
        Err(e) => {
            rep.blocked = Some(format!("{e:#}"));
            return rep;
        }
    }
    if !settings.restart.enabled {
        rep.blocked = Some(NO_RESTARTS.into());
        return rep;
    }
    let opts = match RestartOpts::from_node(paths, settings, cancel) {
        Ok(o) => o,
        Err(e) => {
            rep.blocked = Some(format!("{e:#}"));
            return rep;
        }
    };
    let mut side = Local { store, paths, opts };
    let node = node_name(paths);
    if let Err(e) = steps(paths, settings, &node, &mut side, cancel, clock, &mut rep) {
        rep.blocked = Some(format!("{e:#}"));
    }
    rep
}

const NO_RESTARTS: &str = "restart.enabled is false: a CA rotation restarts etcd and kube-apiserver on every control-plane node, so it cannot go on here";

/// An HA node's part: `coord` is connected; the record was seen active.
pub fn run_ha(
    coord: &Coordinator,
    paths: &NodePaths,
    settings: &Settings,
    ca: &str,
    cancel: &Cancel,
    clock: &dyn Fn() -> OffsetDateTime,
    progress: &dyn Fn(Progress),
) -> Report {
    let mut rep = Report {
        seen: true,
        ..Report::default()
    };
    let node = coord.node_name();
    let rec = match coord.rotation(ca) {
        Ok(Some((r, _))) => r,
        Ok(None) => return rep,
        Err(e) => {
            rep.seen = false;
            tracing::debug!("reading the rotation record: {e:#}");
            return rep;
        }
    };
    rep.record = Some(rec.clone());
    if !rec.phase.active() {
        return rep;
    }
    if !rec.nodes.contains(&node) {
        rep.blocked = Some(format!(
            "this node ({node}) is not one of the nodes of the {} rotation {} ({}); it was added after the rotation began, or its etcd member's name changed",
            rec.ca,
            rec.id,
            rec.nodes.join(", ")
        ));
        return rep;
    }
    if !rec.due(&node) {
        return rep;
    }
    if !settings.restart.enabled {
        rep.blocked = Some(NO_RESTARTS.into());
        return rep;
    }
    let opts = match RestartOpts::from_node(paths, settings, cancel) {
        Ok(o) => o,
        Err(e) => {
            rep.blocked = Some(format!("{e:#}"));
            return rep;
        }
    };
    let stop = || {
        cancel.heartbeat();
        cancel.is_cancelled()
    };
    let mut permit = match coord.acquire(&node, &stop, clock(), &|h, waited| {
        progress(Progress::Waiting {
            holder: h.to_string(),
            waited,
        })
    }) {
        Ok(p) => p,
        Err(Wait::Halted(h)) => {
            rep.blocked = Some(format!(
                "the {} rotation {} waits: {}",
                rec.ca,
                rec.id,
                Wait::Halted(h)
            ));
            return rep;
        }
        Err(Wait::Cancelled) => return rep,
        Err(w) => {
            rep.blocked = Some(format!("the {} rotation {} waits: {w}", rec.ca, rec.id));
            return rep;
        }
    };
    progress(Progress::Acquired(permit.waited()));
    if permit.is_break_glass() {
        rep.blocked = Some(format!(
            "the {} rotation {} waits: no etcd quorum is reachable, and a rotation step never breaks glass",
            rec.ca, rec.id
        ));
    } else if let Err(e) = members_unchanged(coord, &rec) {
        rep.blocked = Some(e);
    } else {
        let mut side = Ha {
            store: EtcdStore { coord, ca },
            permit: &mut permit,
            paths,
            opts,
            stop: &stop,
            clock,
            catch_up: settings.restart.timeout,
        };
        if let Err(e) = steps(paths, settings, &node, &mut side, cancel, clock, &mut rep) {
            rep.blocked = Some(format!("{e:#}"));
        }
    }
    if let Err(e) = permit.release() {
        tracing::warn!("releasing the restart lock: {e:#} (it lapses with its lease)");
    }
    progress(Progress::Released);
    rep
}

/// The voting members must be the rotation's nodes: a member added since would not trust the
/// new CA, one removed would never do its steps.
fn members_unchanged(coord: &Coordinator, rec: &Rotation) -> Result<(), String> {
    let mut now = coord.voting_members().map_err(|e| format!("{e:#}"))?;
    let mut want = rec.nodes.clone();
    now.sort();
    want.sort();
    if now != want {
        return Err(format!(
            "the {} rotation {} waits: the etcd members are now {}, the rotation began with {}; restore the membership, or abort the rotation",
            rec.ca,
            rec.id,
            now.join(", "),
            want.join(", ")
        ));
    }
    Ok(())
}
