//! The permit to restart this node's static pods: the lock held for the whole sequence (or
//! break glass), the quorum guard and catch-up wait around etcd, the halt record, release.

use super::{lock, quorum, race, Coordinator, Deferral, Halt, Lease, Wait};
use crate::logging::{MSG_DEFERRED, MSG_HALT, MSG_LOCK_RELEASED};
use anyhow::Result;
use std::time::Duration;
use time::OffsetDateTime;

/// Permission to restart this node's static pods: the lock (or break glass).
pub struct Permit<'a> {
    pub(super) coord: &'a Coordinator,
    pub(super) node: String,
    pub(super) held: Option<(Lease, Vec<u8>)>,
    pub(super) waited: Duration,
    pub(super) released: bool,
}

impl Permit<'_> {
    /// Restarting without the lock because no quorum was reachable.
    pub fn is_break_glass(&self) -> bool {
        self.held.is_none()
    }

    /// How long the lock took to win.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// The lease behind the lock may be gone: park no further manifest.
    pub fn lost(&self) -> bool {
        self.held.as_ref().is_some_and(|(l, _)| l.lost())
    }

    /// Before each component: a break-glass permit re-takes the lock once quorum is back.
    pub fn checkpoint(
        &mut self,
        cancel: &dyn Fn() -> bool,
        now: OffsetDateTime,
    ) -> Result<(), Wait> {
        if self.held.is_some() {
            if self.lost() {
                return Err(Wait::Failed("the restart lock's lease was lost".into()));
            }
            return Ok(());
        }
        let quick = self.coord.rt.block_on(race(
            self.coord.pool.working(),
            Duration::from_secs(5),
            cancel,
        ));
        if !matches!(quick, Some(Ok(_))) {
            return Ok(());
        }
        let mut p = self.coord.acquire(&self.node, cancel, now, &|_, _| {})?;
        self.held = p.held.take();
        p.released = true;
        Ok(())
    }

    /// The quorum guard before restarting the local etcd member. A break-glass permit
    /// allows it (the cluster is down already; refusing would keep it down).
    pub fn etcd_guard(&self) -> Result<(), Deferral> {
        if self.is_break_glass() {
            return Ok(());
        }
        let hs = self
            .coord
            .rt
            .block_on(self.coord.pool.health())
            .map_err(|e| Deferral {
                unhealthy: Vec::new(),
                reason: e.0,
            })?;
        match quorum::decide(&hs, &self.coord.is_local()) {
            quorum::Verdict::Allow => Ok(()),
            quorum::Verdict::Defer(d) => {
                tracing::warn!(
                    MESSAGE_ID = MSG_DEFERRED,
                    "etcd restart deferred: {} (unhealthy: {})",
                    d.reason,
                    if d.unhealthy.is_empty() {
                        "none".into()
                    } else {
                        d.unhealthy.join(", ")
                    }
                );
                Err(d)
            }
        }
    }

    /// After restarting etcd: wait (at most `bound`) until the local member answers and has
    /// caught up with the leader's raft index.
    pub fn wait_member_caught_up(
        &self,
        bound: Duration,
        cancel: &dyn Fn() -> bool,
    ) -> Result<(), String> {
        let coord = self.coord;
        let is_local = coord.is_local();
        let r = coord.rt.block_on(race(
            async {
                loop {
                    coord.pool.invalidate();
                    match quorum::caught_up(&coord.pool, &is_local).await {
                        Ok(()) => return Ok::<(), String>(()),
                        Err(e) => tracing::debug!("local etcd member not caught up yet: {e}"),
                    }
                    tokio::time::sleep(quorum::CATCH_UP_POLL).await;
                }
            },
            bound,
            cancel,
        ));
        r.unwrap_or_else(|| {
            Err(format!(
                "the local etcd member did not catch up within {}",
                humantime::format_duration(bound)
            ))
        })
    }

    /// Write the halt record: a restart failed and was rolled back.
    pub fn halt(&self, component: &str, reason: &str, now: OffsetDateTime) -> Result<()> {
        let h = Halt {
            node: self.node.clone(),
            component: component.to_string(),
            reason: reason.to_string(),
            time: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        };
        tracing::error!(MESSAGE_ID = MSG_HALT, "halting restarts on every node: {h}");
        self.coord.put_halt(&h)
    }

    /// Give the lock back (unlock, revoke the lease).
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        let Some((lease, key)) = self.held.take() else {
            return Ok(());
        };
        let r = self
            .coord
            .rt
            .block_on(lock::release(&self.coord.pool, &lease, Some(&key)));
        self.coord.rt.park();
        if r.is_ok() {
            tracing::info!(MESSAGE_ID = MSG_LOCK_RELEASED, "released the restart lock");
        }
        r
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Some((lease, key)) = self.held.take() {
            let _ = self
                .coord
                .rt
                .block_on(lock::release(&self.coord.pool, &lease, Some(&key)));
            self.coord.rt.park();
        }
    }
}
