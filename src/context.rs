//! What the daemon and every command share: the loaded settings and node paths, the wall
//! clock (read only here, at the edge), and the process's SIGTERM/SIGINT handling.

use crate::act::cancel::Cancel;
use crate::act::store::lock::{self, Lock};
use crate::config::Settings;
use crate::node::paths::Root;
use crate::node::NodePaths;
use anyhow::Result;
use std::time::Duration;
use time::OffsetDateTime;

/// How long a command that changes the node waits for the node lock by default (`--wait`).
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(300);

/// What every command needs: the node's paths and the settings.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Validated settings.
    pub settings: Settings,
    /// The node.
    pub paths: NodePaths,
    /// How long a command waits for the node lock (`--wait`; zero: not at all). The daemon
    /// waits for a command until it is stopped.
    pub lock_wait: Duration,
}

impl Ctx {
    /// Load from a root directory and an optional explicit config file.
    pub fn load_from(root: &std::path::Path, config: Option<&std::path::Path>) -> Result<Ctx> {
        let root = Root::new(root);
        let settings = Settings::load(&root, config)?;
        let paths = settings.paths(&root);
        Ok(Ctx {
            settings,
            paths,
            lock_wait: DEFAULT_LOCK_WAIT,
        })
    }

    /// For a command that changes the node: take the node lock as `what` (the command's
    /// name, written into the lock file for whoever waits next), waiting up to `lock_wait`
    /// for the daemon's cycle or another command to finish and saying once on stderr whom
    /// it waits for. SIGTERM/SIGINT (`cancel`) end the wait with nothing changed.
    pub fn lock(&self, what: &str, cancel: &Cancel) -> Result<Lock> {
        let path = self.paths.lock_file();
        let bound = self.lock_wait;
        let say = |h: &lock::Holder| {
            eprintln!(
                "Waiting for the node lock ({}), held by {h}, for up to {} (--wait)",
                self.paths.show(&path),
                crate::logging::human_duration(bound)
            )
        };
        let w = lock::Wait {
            what,
            bound: Some(bound),
            cancel,
            on_wait: &say,
        };
        Ok(lock::acquire_waiting(&path, &w)?)
    }

    /// [`Ctx::lock`], then finish whatever an interrupted run left.
    pub fn lock_and_recover(&self, what: &str, cancel: &Cancel) -> Result<Lock> {
        let l = self.lock(what, cancel)?;
        self.recover(true, cancel)?;
        Ok(l)
    }

    /// Recover, logging what was done; `restarts` also carries out owed restarts.
    pub fn recover(&self, restarts: bool, cancel: &Cancel) -> Result<()> {
        let r =
            crate::act::recover::recover_all(&self.paths, &self.settings, restarts, cancel, now())?;
        for a in r.actions {
            tracing::warn!(ACTION = "recover", "{a}");
        }
        for p in r.problems {
            tracing::error!(ACTION = "recover", "{p}");
        }
        Ok(())
    }
}

/// The wall clock, read only here at the edge.
pub fn now() -> OffsetDateTime {
    // Tests of the binary move the clock with FAILPOINTS=clock::now=return(<seconds>).
    fail::fail_point!("clock::now", |s: Option<String>| {
        let shift = s.and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
        OffsetDateTime::now_utc() + time::Duration::seconds(shift)
    });
    OffsetDateTime::now_utc()
}

/// A cancel handle that SIGTERM and SIGINT set (signal-hook), for the synchronous commands:
/// a restart hold then puts its manifest back before the process exits (bootupd's
/// deferred-termination idea). A second signal is not needed and not special.
pub fn cancel_on_signals() -> Cancel {
    let cancel = Cancel::new();
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, cancel.flag()) {
            tracing::warn!("cannot install a handler for signal {sig}: {e}");
        }
    }
    cancel
}

/// What the CSR approver and `csr list|approve` decide with: the policy from the settings,
/// this node's name as the kubelet client revival finds it, this host's attested view
/// (read afresh at each pass: addresses change), the clock.
pub fn approver_env(ctx: &Ctx) -> crate::kube::approver::Env {
    use crate::node::host::{host_view, RealInterfaces};
    let paths = ctx.paths.clone();
    let scan = crate::plan::scan::scan(&paths);
    let node = crate::plan::kubelet_client::node_name(&paths, &scan);
    let (host_paths, host_node) = (paths.clone(), node.clone());
    crate::kube::approver::Env {
        paths,
        policy: crate::plan::approve::Policy::from_settings(&ctx.settings.approver),
        deny: ctx.settings.approver.deny,
        host: std::sync::Arc::new(move || {
            host_node
                .as_deref()
                .and_then(|n| host_view(&host_paths, &RealInterfaces, n).ok())
        }),
        node,
        now,
    }
}
