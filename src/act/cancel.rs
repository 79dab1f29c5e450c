//! A cancel/progress handle: long waits (restart holds, health waits, the kubelet restart)
//! poll it instead of a global signal flag, and report progress through it so the daemon can
//! feed the watchdog only while work moves. Whoever owns the process's signals (the CLI, the
//! daemon) sets it; the acting code only reads it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Cloneable; all clones share one flag and one progress counter.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
}

impl Cancel {
    /// A handle nobody has cancelled.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Ask the current work to stop at its next safe point.
    pub fn cancel(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether stopping was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The shared flag, for registering signal handlers on it (signal-hook).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Note that long-running work is still making progress.
    pub fn heartbeat(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    /// The progress counter (changes while work moves).
    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }
}

/// Run `f` until it finishes, `bound` passes, or `stop()` says so (looked at every `poll`):
/// how the async clients (etcd's, the Kubernetes API's) bound a call and honour SIGTERM while
/// a server hangs. `None` when it did not finish.
pub async fn race<F: Future>(
    f: F,
    bound: Duration,
    poll: Duration,
    stop: impl Fn() -> bool,
) -> Option<F::Output> {
    let deadline = tokio::time::Instant::now() + bound;
    tokio::pin!(f);
    loop {
        if stop() {
            return None;
        }
        let tick = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + poll));
        tokio::select! {
            v = &mut f => return Some(v),
            _ = tick => if tokio::time::Instant::now() >= deadline { return None },
        }
    }
}
