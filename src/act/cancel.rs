//! A cancel/progress handle: long waits (restart holds, health waits, the kubelet restart)
//! poll it instead of a global signal flag, and report progress through it so the daemon can
//! feed the watchdog only while work moves. Whoever owns the process's signals (the CLI, the
//! daemon) sets it; the acting code only reads it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Cloneable; all clones share one flag and one progress counter.
#[derive(Debug, Clone)]
pub struct Cancel {
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
    /// Wakes async waiters at [`Cancel::cancel`], so that an idle task waits without polling
    /// the flag. A signal handler sets the flag only; its owner then calls `cancel()`.
    woken: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Cancel {
    fn default() -> Cancel {
        Cancel {
            stop: Arc::default(),
            progress: Arc::default(),
            woken: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

impl Cancel {
    /// A handle nobody has cancelled.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Ask the current work to stop at its next safe point.
    pub fn cancel(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.woken.send_replace(true);
    }

    /// Resolves once stopping was asked for through [`Cancel::cancel`] (at once when the
    /// flag is already set): an async task's wait ends at a stop without polling.
    pub async fn stopped(&self) {
        let mut rx = self.woken.subscribe();
        if self.is_cancelled() {
            return;
        }
        // Err: every sender is gone, which cannot happen while `self` holds one.
        let _ = rx.wait_for(|stop| *stop).await;
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
        // Biased: a call that has its answer wins over a stop that came meanwhile, so what
        // the server did is known (and logged) rather than dropped.
        tokio::select! {
            biased;
            v = &mut f => return Some(v),
            _ = tick => if tokio::time::Instant::now() >= deadline { return None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stop that comes while a call waits, and the call's answer at the same instant as
    /// the next look at the stop: the answer is taken (the `biased` select). Unbiased, each
    /// round would drop it half the time.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn an_answer_ready_with_the_stop_check_wins() {
        for _ in 0..20 {
            let c = Cancel::new();
            let stopper = {
                let c = c.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    c.cancel();
                })
            };
            let answer = async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                7
            };
            let poll = Duration::from_millis(100);
            let got = race(answer, Duration::from_secs(10), poll, || c.is_cancelled()).await;
            assert_eq!(got, Some(7));
            stopper.await.unwrap();
        }
    }
}
