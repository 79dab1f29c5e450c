//! HA coordination through the cluster's own etcd: one node restarts static pods at a time
//! (a v3 lock on a lease of our own), etcd is restarted only while quorum holds without it,
//! a failed restart halts the rollout everywhere, and with no quorum reachable for
//! `breakGlassAfter` a node restarts anyway (a dead cluster must be able to heal).
//!
//! The API is synchronous, because the restart code is: [`Coordinator`] owns a current-thread
//! tokio runtime that runs on the caller's thread, and on a thread of its own only while the
//! restart lock is held, for the lease keep-alives (see `runtime`). Nothing is built until a
//! caller asks to connect; the idle daemon asks only when the node's own files say the
//! cluster may have more than one member ([`Coordinator::connect_unless_single`]).

mod acquire;
pub mod client;
pub mod endpoints;
pub mod gate;
pub mod halt;
pub mod lock;
mod permit;
pub mod quorum;
pub mod rotation;
pub mod runtime;
pub mod settings;

use anyhow::{anyhow, bail, Result};
use client::{MemberHealth, Pool};
use endpoints::{LocalSize, LocalView};
use halt::Halt;
use lock::{Holder, Lease};
use runtime::EtcdRuntime;
use settings::{Coordination, Mode};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

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
    rt: EtcdRuntime,
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

/// Run `f` until it finishes, `bound` passes or `cancel` says stop.
async fn race<F: Future>(f: F, bound: Duration, cancel: &dyn Fn() -> bool) -> Option<F::Output> {
    crate::act::cancel::race(f, bound, CANCEL_POLL, cancel).await
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
        Self::open(paths, settings, stop, false)
    }

    /// [`connect_with`](Self::connect_with) for the idle daemon (its gauges): in `auto` mode,
    /// when the node's own files say the cluster has one member (the members last seen, else
    /// the etcd manifest's `--initial-cluster`, see [`endpoints::local_size`]), `None` without
    /// building a client or a runtime. Restarts always use `connect_with`, which looks at etcd:
    /// that is how the first node of a cluster that grew by `kubeadm join` (its manifest still
    /// names one member) learns that it has to coordinate.
    pub fn connect_unless_single(
        paths: &crate::node::NodePaths,
        settings: &Coordination,
        stop: StopFn,
    ) -> Result<Option<Coordinator>> {
        Self::open(paths, settings, stop, true)
    }

    fn open(
        paths: &crate::node::NodePaths,
        settings: &Coordination,
        stop: StopFn,
        unless_single: bool,
    ) -> Result<Option<Coordinator>> {
        if settings.mode == Mode::None {
            return Ok(None);
        }
        let view = endpoints::local_view(paths);
        if unless_single
            && settings.mode == Mode::Auto
            && endpoints::local_size_of(paths, &view, settings) == LocalSize::Single
        {
            return Ok(None);
        }
        let mut seeds = endpoints::seeds(&view, settings);
        // With the local member down, the members seen last time still lead to the cluster.
        seeds.extend(endpoints::last_seen_urls(paths));
        if seeds.is_empty() {
            if settings.mode == Mode::Etcd {
                bail!("coordination.mode is etcd, but no etcd endpoint is configured or found in the static pod manifests");
            }
            return Ok(None);
        }
        let rt = EtcdRuntime::new()?;
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

    /// Whether the runtime's own thread runs (only while the restart lock is held).
    pub fn driving(&self) -> bool {
        self.rt.driven()
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
}
