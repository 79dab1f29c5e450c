//! Taking the restart lock: wait for a working quorum (or, with none for breakGlassAfter,
//! break glass), refuse while a halt stands, then queue on the v3 lock with a lease of our
//! own, telling the caller who holds it while it waits.

use super::lock::{self, Holder};
use super::{race, Coordinator, Permit, Wait, CALL_BOUND, CANCEL_POLL};
use crate::logging::{MSG_BREAK_GLASS, MSG_LOCK_ACQUIRED, MSG_LOCK_WAIT};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Since when no quorum could be reached, across connections: one process serves one node,
/// and each restart sequence connects anew, so the break-glass clock lives here.
static UNREACHABLE_SINCE: Mutex<Option<Instant>> = Mutex::new(None);

impl Coordinator {
    /// Wait for a working quorum, tracking how long it has been unreachable; `Ok(None)`
    /// means break glass is due.
    fn reach(&self, cancel: &dyn Fn() -> bool, deadline: Instant) -> Result<Option<()>, Wait> {
        loop {
            let r = self
                .rt
                .block_on(race(self.pool.working(), Duration::from_secs(30), cancel));
            match r {
                None if cancel() => return Err(Wait::Cancelled),
                Some(Ok(_)) => {
                    if let Ok(mut g) = UNREACHABLE_SINCE.lock() {
                        *g = None;
                    }
                    return Ok(Some(()));
                }
                other => {
                    let reason = match other {
                        Some(Err(e)) => e.0,
                        _ => "no answer".into(),
                    };
                    let since = UNREACHABLE_SINCE
                        .lock()
                        .map(|mut g| *g.get_or_insert_with(Instant::now))
                        .unwrap_or_else(|_| Instant::now());
                    let left = self
                        .settings
                        .break_glass_after
                        .saturating_sub(since.elapsed());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    if Instant::now() >= deadline {
                        return Err(Wait::Unreachable {
                            reason,
                            break_glass_in: whole_secs(left),
                        });
                    }
                    let pause = left.min(Duration::from_secs(1));
                    if self
                        .rt
                        .block_on(race(std::future::pending::<()>(), pause, cancel))
                        .is_none()
                        && cancel()
                    {
                        return Err(Wait::Cancelled);
                    }
                }
            }
        }
    }

    /// Take the restart lock for `node`'s whole restart sequence. Waits at most lockTimeout
    /// (then [`Wait::Timeout`]); refuses while a halt stands; with no quorum reachable for
    /// breakGlassAfter returns a break-glass permit. While another node holds the lock,
    /// `on_wait` is told its name and how long this node has waited, at every look at the
    /// queue (every few seconds), so that a long wait shows before it ends.
    pub fn acquire(
        &self,
        node: &str,
        cancel: &dyn Fn() -> bool,
        now: OffsetDateTime,
        on_wait: &dyn Fn(&str, Duration),
    ) -> Result<Permit<'_>, Wait> {
        let start = Instant::now();
        let deadline = start + self.settings.lock_timeout;
        if self.reach(cancel, deadline)?.is_none() {
            return Ok(self.break_glass(node));
        }
        if let Some(h) = self
            .halt_record()
            .map_err(|e| Wait::Failed(format!("{e:#}")))?
        {
            return Err(Wait::Halted(h));
        }
        let since = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let holder = Holder {
            node: node.to_string(),
            since,
            lease: String::new(),
        };
        let lease = self
            .rt
            .block_on(race(
                lock::grant(&self.pool, self.settings.lock_ttl, &holder),
                CALL_BOUND,
                cancel,
            ))
            .ok_or(Wait::Cancelled)?
            .map_err(|e| Wait::Failed(format!("{e:#}")))?;
        let outcome = self.rt.block_on(async {
            let lock = lock::lock(&self.pool, &lease);
            tokio::pin!(lock);
            let mut last_holder = String::new();
            let mut next_look = tokio::time::Instant::now() + Duration::from_millis(300);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Wait::Timeout {
                        holder: non_empty(last_holder),
                        waited: whole_secs(start.elapsed()),
                    });
                }
                if cancel() {
                    return Err(Wait::Cancelled);
                }
                let tick = tokio::time::sleep(left.min(CANCEL_POLL));
                tokio::select! {
                    r = &mut lock => return r.map_err(|e| Wait::Failed(format!("{e:#}"))),
                    _ = tick => {}
                }
                if tokio::time::Instant::now() >= next_look {
                    next_look = tokio::time::Instant::now() + Duration::from_secs(5);
                    if let Ok(q) = lock::queue(&self.pool).await {
                        let h = q.first().map(|h| h.node.clone()).unwrap_or_default();
                        if !h.is_empty() && h != node {
                            if h != last_holder {
                                tracing::info!(
                                    MESSAGE_ID = MSG_LOCK_WAIT,
                                    "waiting for the restart lock, held by {h}"
                                );
                            }
                            on_wait(&h, start.elapsed());
                        }
                        last_holder = h;
                    }
                }
            }
        });
        let key = match outcome {
            Ok(k) => k,
            Err(w) => {
                // Leave the queue: revoking the lease deletes our waiter key and record.
                let _ = self.rt.block_on(lock::release(&self.pool, &lease, None));
                return Err(w);
            }
        };
        // A halt written while we waited still stops us.
        if let Ok(Some(h)) = self.halt_record() {
            let _ = self
                .rt
                .block_on(lock::release(&self.pool, &lease, Some(&key)));
            return Err(Wait::Halted(h));
        }
        // From here the caller blocks outside the runtime (the restarts) while the lease must
        // be kept alive: a thread drives the runtime until the permit gives the lock back.
        if let Err(e) = self.rt.drive() {
            let _ = self
                .rt
                .block_on(lock::release(&self.pool, &lease, Some(&key)));
            return Err(Wait::Failed(format!("{e:#}")));
        }
        tracing::info!(
            MESSAGE_ID = MSG_LOCK_ACQUIRED,
            "acquired the restart lock after {}",
            humantime::format_duration(Duration::from_secs(start.elapsed().as_secs()))
        );
        Ok(Permit {
            coord: self,
            node: node.to_string(),
            held: Some((lease, key)),
            waited: start.elapsed(),
            released: false,
        })
    }

    fn break_glass(&self, node: &str) -> Permit<'_> {
        tracing::warn!(
            MESSAGE_ID = MSG_BREAK_GLASS,
            "no etcd quorum reachable for {}: restarting without the restart lock (break glass); the lock is taken again as soon as quorum returns",
            humantime::format_duration(self.settings.break_glass_after)
        );
        Permit {
            coord: self,
            node: node.to_string(),
            held: None,
            waited: Duration::ZERO,
            released: false,
        }
    }
}

/// Durations for humans: whole seconds (rounded up, so "in 0s" never means "not yet").
fn whole_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}
