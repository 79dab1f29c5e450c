//! The daemon's hook for CA rotations (issue 20), one call per cycle: this node's due steps
//! (`act::rotate`), the rotation gauges, what keeps the node from its step (a standing
//! condition, logged once), and how soon the next cycle should look again.

use super::conditions::Conditions;
use super::cycle::{CycleReport, State};
use crate::act::cancel::Cancel;
use crate::act::metrics::RotationGauges;
use crate::config::Settings;
use crate::logging::MSG_ROTATION_BLOCKED;
use crate::node::NodePaths;
use std::cell::RefCell;
use std::time::Duration;
use time::OffsetDateTime;

/// While a step of this node's may be due, the next cycle comes this soon.
const POLL_ACTIVE: Duration = Duration::from_secs(10);
/// While the rotation is blocked here (a halt, a member down), at most this late.
const POLL_BLOCKED: Duration = Duration::from_secs(300);

/// Run this node's part of a rotation and report it into the cycle.
pub fn run(
    paths: &NodePaths,
    settings: &Settings,
    state: &mut State,
    now: OffsetDateTime,
    cancel: &Cancel,
    rep: &mut CycleReport,
) {
    let gauges = RefCell::new(state.counters.cluster.clone().unwrap_or_default());
    let progress = |p| super::coordinate::progress(&gauges, p);
    let r = crate::act::rotate::tick(paths, settings, cancel, &crate::context::now, &progress);
    if state.counters.cluster.is_some() || gauges.borrow().lock_held {
        state.counters.cluster = Some(gauges.into_inner());
    }
    for (c, ok) in &r.restarts {
        state.counters.restart(c, *ok);
    }
    rep.written.extend(r.written.iter().cloned());
    if r.failed.is_some() {
        rep.failures += 1;
    }
    if r.seen {
        state.counters.rotation = Some(RotationGauges::of(
            crate::act::rotate::ETCD_CA,
            r.record.as_ref(),
        ));
    }
    let active = r.record.as_ref().is_some_and(|x| x.phase.active());
    rep.rotation_status = r.record.as_ref().filter(|x| x.phase.active()).map(|x| {
        format!(
            "; {} rotation {}: {} ({} of {} nodes done){}",
            x.ca,
            x.id,
            x.phase,
            x.done.len(),
            x.nodes.len(),
            if r.blocked.is_some() { ", waiting" } else { "" }
        )
    });
    rep.rotation_poll = match (&r.blocked, active) {
        (_, false) => None,
        (Some(_), true) => Some(POLL_BLOCKED),
        (None, true) => Some(POLL_ACTIVE),
    };
    blocked(&mut state.conditions, r.blocked.as_deref(), now);
}

/// What keeps this node from its step: logged once while it stands (resolved by the round).
fn blocked(conditions: &mut Conditions, why: Option<&str>, now: OffsetDateTime) {
    if let Some(text) = why {
        if conditions.holds("ca-rotation", text, now) {
            tracing::warn!(
                MESSAGE_ID = MSG_ROTATION_BLOCKED,
                ACTION = "ca-rotate",
                "{text}"
            );
        }
    }
}

/// When the next cycle runs: the timer's, or sooner while a rotation is under way.
pub fn next_cycle(timer: tokio::time::Instant, rep: Option<&CycleReport>) -> tokio::time::Instant {
    match rep.and_then(|r| r.rotation_poll) {
        Some(d) => timer.min(tokio::time::Instant::now() + d),
        None => timer,
    }
}
