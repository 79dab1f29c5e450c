//! HA coordination through the cluster's own etcd: one node restarts static pods at a time
//! (a v3 lock on a lease of our own), etcd is restarted only while quorum holds without it,
//! a failed restart halts the rollout everywhere, and with no quorum reachable for
//! `breakGlassAfter` a node restarts anyway (a dead cluster must be able to heal).
//!
//! The API is synchronous, because the restart code is: [`Coordinator`] owns a small tokio
//! runtime whose single worker runs the lease keep-alives while the caller blocks.

pub mod client;
pub mod endpoints;
pub mod gate;
pub mod halt;
pub mod lock;
mod permit;
pub mod quorum;
pub mod settings;

use anyhow::{anyhow, bail, Context, Result};
use client::{MemberHealth, Pool};
use endpoints::LocalView;
use halt::Halt;
use lock::{Holder, Lease};
use settings::{Coordination, Mode};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// MESSAGE_ID: waiting for the restart lock.
pub const MSG_LOCK_WAIT: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b321";
/// MESSAGE_ID: the restart lock was acquired.
pub const MSG_LOCK_ACQUIRED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b322";
/// MESSAGE_ID: the restart lock was released.
pub const MSG_LOCK_RELEASED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b323";
/// MESSAGE_ID: a halt record was written, or blocks restarts.
pub const MSG_HALT: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b324";
/// MESSAGE_ID: the etcd restart was deferred by the quorum guard.
pub const MSG_DEFERRED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b325";
/// MESSAGE_ID: restarting without the lock (no quorum reachable).
pub const MSG_BREAK_GLASS: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b326";
/// MESSAGE_ID: the lock's lease was lost mid-hold.
pub const MSG_LOCK_LOST: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b327";

/// How often blocking waits look at the cancel check.
const CANCEL_POLL: Duration = Duration::from_millis(200);
/// The error of a read cut short by a stop request.
pub const INTERRUPTED: &str = "interrupted by a stop request";

pub use permit::Permit;
pub use quorum::Deferral;

/// Why no permit was given.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Wait {
    /// The lock was not won within lockTimeout.
    #[error("the restart lock was not won within {}{}", humantime::format_duration(*waited), holder.as_ref().map(|h| format!(" (held by {h})")).unwrap_or_default())]
    Timeout {
        /// Who held it when we gave up.
        holder: Option<String>,
        /// How long we waited.
        waited: Duration,
    },
    /// A halt record stands.
    #[error(
        "restarts are halted: {0}; run `kubeadm-certd cluster resume` once the cause is fixed"
    )]
    Halted(Halt),
    /// No quorum reachable, and break glass is not due yet.
    #[error("etcd quorum unreachable ({reason}); break glass in {}", humantime::format_duration(*break_glass_in))]
    Unreachable {
        /// Why.
        reason: String,
        /// Time left until break glass.
        break_glass_in: Duration,
    },
    /// The cancel check said stop.
    #[error("cancelled")]
    Cancelled,
    /// etcd answered with an error.
    #[error("{0}")]
    Failed(String),
}

/// Everything `cluster status` shows.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    /// Members and their health.
    pub members: Vec<MemberHealth>,
    /// The lock holder, then the waiters.
    pub queue: Vec<Holder>,
    /// The halt record.
    pub halt: Option<Halt>,
}

/// The coordination layer of one node.
pub struct Coordinator {
    rt: tokio::runtime::Runtime,
    pool: Arc<Pool>,
    settings: Coordination,
    view: LocalView,
    /// A stop request: reads give up at once instead of waiting out an unanswering member.
    stop: StopFn,
}

/// Whether the caller has been asked to stop (a SIGTERM in the daemon).
pub type StopFn = Arc<dyn Fn() -> bool + Send + Sync>;

/// How long a cancellable call may take at most; each etcd request has its own, shorter bound.
const CALL_BOUND: Duration = Duration::from_secs(120);

/// Since when no quorum could be reached, across connections: one process serves one node,
/// and each restart sequence connects anew, so the break-glass clock lives here.
static UNREACHABLE_SINCE: Mutex<Option<Instant>> = Mutex::new(None);

/// Run `f` until it finishes, `bound` passes or `cancel` says stop.
async fn race<F: Future>(f: F, bound: Duration, cancel: &dyn Fn() -> bool) -> Option<F::Output> {
    let deadline = tokio::time::Instant::now() + bound;
    tokio::pin!(f);
    loop {
        if cancel() {
            return None;
        }
        let tick =
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + CANCEL_POLL));
        tokio::select! {
            v = &mut f => return Some(v),
            _ = tick => if tokio::time::Instant::now() >= deadline { return None },
        }
    }
}

impl Coordinator {
    /// Decide from the mode (and, in `auto`, the cluster's size) whether this node
    /// coordinates; `None` means act alone (mode none, a single member, no etcd at all).
    pub fn connect(
        paths: &crate::node::NodePaths,
        settings: &Coordination,
    ) -> Result<Option<Coordinator>> {
        Self::connect_with(paths, settings, Arc::new(|| false))
    }

    /// [`connect`](Self::connect) for a process that may be asked to stop: reads (member
    /// lists, health, the halt record, the lock's lease) give up within a fraction of a second
    /// of `stop` turning true, rather than after an unanswering member's timeout. Releasing
    /// the lock and writing a halt record are never cut short.
    pub fn connect_with(
        paths: &crate::node::NodePaths,
        settings: &Coordination,
        stop: StopFn,
    ) -> Result<Option<Coordinator>> {
        if settings.mode == Mode::None {
            return Ok(None);
        }
        let view = endpoints::local_view(paths);
        let mut seeds = endpoints::seeds(&view, settings);
        // With the local member down, the members seen last time still lead to the cluster.
        seeds.extend(endpoints::last_seen_urls(paths));
        if seeds.is_empty() {
            if settings.mode == Mode::Etcd {
                bail!("coordination.mode is etcd, but no etcd endpoint is configured or found in the static pod manifests");
            }
            return Ok(None);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kubeadm-certd-etcd")
            .enable_all()
            .build()
            .context("starting the etcd client runtime")?;
        let identity = endpoints::Identity::resolve(paths, settings);
        let pool = Arc::new(Pool::new(seeds, identity));
        let members = rt
            .block_on(race(pool.refresh_members(), CALL_BOUND, &*stop))
            .ok_or_else(|| anyhow!(INTERRUPTED))?;
        let coordinate = match (&members, settings.mode) {
            (_, Mode::Etcd) => true,
            (Ok(ms), _) => ms.iter().filter(|m| !m.is_learner).count() > 1,
            (Err(e), _) => {
                let last = endpoints::last_seen(paths);
                let yes = endpoints::auto_offline(&view, last);
                // Every cycle asks (metrics); a quiet daemon does not say it each time.
                tracing::debug!(
                    "etcd unreachable ({e}); coordination.mode auto {} from --initial-cluster ({} member(s)) and the last member count seen ({})",
                    if yes { "coordinates" } else { "does not coordinate" },
                    view.initial_cluster.len(),
                    last.map(|n| n.to_string()).unwrap_or_else(|| "none".into())
                );
                yes
            }
        };
        if let Ok(ms) = &members {
            endpoints::record_seen(paths, ms);
        }
        if !coordinate {
            return Ok(None);
        }
        Ok(Some(Coordinator {
            rt,
            pool,
            settings: settings.clone(),
            view,
            stop,
        }))
    }

    /// Run a read on the etcd runtime; gives up when a stop is asked for.
    fn read<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        self.rt
            .block_on(race(f, CALL_BOUND, &*self.stop))
            .unwrap_or_else(|| Err(anyhow!(INTERRUPTED)))
    }

    /// This node's name in the lock queue: the local etcd member's name, else the hostname.
    pub fn node_name(&self) -> String {
        self.view.local_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &Coordination {
        &self.settings
    }

    fn is_local(&self) -> impl Fn(&MemberHealth) -> bool + Sync + '_ {
        move |h| {
            quorum::matches_local(
                h,
                &self.view.local_client_urls,
                self.view.local_name.as_deref(),
            )
        }
    }

    /// Members' health, the lock queue and the halt record.
    pub fn status(&self) -> Result<ClusterStatus> {
        self.read(async {
            let members = self.pool.health().await.map_err(|e| anyhow!(e))?;
            let queue = lock::queue(&self.pool).await?;
            let mut c = self.pool.working().await.map_err(|e| anyhow!(e))?;
            let halt = halt::get(&mut c).await?;
            Ok(ClusterStatus {
                members,
                queue,
                halt,
            })
        })
    }

    /// The halt record, if one stands.
    pub fn halt_record(&self) -> Result<Option<Halt>> {
        self.read(async {
            let mut c = self.pool.working().await.map_err(|e| anyhow!(e))?;
            halt::get(&mut c).await
        })
    }

    /// Remove the halt record; whether there was one.
    pub fn clear_halt(&self) -> Result<bool> {
        self.read(async {
            let mut c = self.pool.working().await.map_err(|e| anyhow!(e))?;
            halt::clear(&mut c).await
        })
    }

    /// Write a halt record (used by [`Permit::halt`] and tests).
    pub fn put_halt(&self, h: &Halt) -> Result<()> {
        self.rt.block_on(async {
            let mut c = self.pool.working().await.map_err(|e| anyhow!(e))?;
            halt::put(&mut c, h).await
        })
    }

    /// Number of voting members that answer Status (for the metrics).
    pub fn healthy_members(&self) -> Option<usize> {
        let hs = self
            .read(async { self.pool.health().await.map_err(|e| anyhow!(e)) })
            .ok()?;
        Some(
            hs.iter()
                .filter(|h| !h.member.is_learner && h.status.is_ok())
                .count(),
        )
    }

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
