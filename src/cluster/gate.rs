//! The restart code's [`Gate`], implemented with the restart lock: before each component the
//! lease must still be ours (a break-glass permit re-takes the lock once quorum is back),
//! etcd restarts only past the quorum guard, waits for the member to catch up afterwards, and
//! a failure leaves the halt record.

use super::Permit;
use crate::act::staticpods::restart::{Gate, GateVerdict};
use crate::logging::MSG_LOCK_LOST;
use crate::pki::table::Component;
use anyhow::{anyhow, Result};
use std::time::Duration;
use time::OffsetDateTime;

/// The gate of a node that holds (or broke glass for) the restart lock.
pub struct ClusterGate<'p, 'c> {
    /// The permit, released by the caller after the sequence.
    pub permit: &'p mut Permit<'c>,
    /// The stop request.
    pub cancel: &'p dyn Fn() -> bool,
    /// The clock, read at the edge by the caller.
    pub now: &'p dyn Fn() -> OffsetDateTime,
    /// Bound on the etcd catch-up wait.
    pub catch_up: Duration,
}

impl Gate for ClusterGate<'_, '_> {
    fn before(&mut self, c: Component) -> GateVerdict {
        if let Err(w) = self.permit.checkpoint(self.cancel, (self.now)()) {
            return GateVerdict::Stop(w.to_string());
        }
        if self.permit.lost() {
            tracing::warn!(
                MESSAGE_ID = MSG_LOCK_LOST,
                COMPONENT = c.name(),
                "the restart lock's lease is lost: {} and the components after it are not restarted",
                c.name()
            );
            return GateVerdict::Stop("the restart lock's lease was lost".into());
        }
        if c == Component::Etcd {
            if let Err(d) = self.permit.etcd_guard() {
                return GateVerdict::Skip(d.to_string());
            }
        }
        GateVerdict::Go
    }

    /// Break glass: a restarted etcd member cannot report healthy until enough members are
    /// back to form a quorum, so a new process is all this node can wait for.
    fn process_only(&self, c: Component) -> bool {
        c == Component::Etcd && self.permit.is_break_glass()
    }

    fn after(&mut self, c: Component) -> Result<()> {
        if c == Component::Etcd && !self.permit.is_break_glass() {
            self.permit
                .wait_member_caught_up(self.catch_up, self.cancel)
                .map_err(|e| anyhow!("etcd: {e}"))?;
        }
        Ok(())
    }

    fn failed(&mut self, c: Component, reason: &str) {
        if let Err(e) = self.permit.halt(c.name(), reason, (self.now)()) {
            tracing::error!("could not write the halt record: {e:#}");
        }
    }
}
