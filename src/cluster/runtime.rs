//! The etcd client's tokio runtime. It is a current-thread runtime: every call runs on the
//! calling thread (`block_on`), so a coordinator that only reads (the daemon's gauges, `cluster
//! status`) adds no thread at all. The one thing that must run behind the caller's back is the
//! restart lock's lease keep-alive, while the restart code blocks outside the runtime for
//! minutes: for that span only, [`EtcdRuntime::drive`] starts a thread that holds the
//! runtime's core and runs its tasks and I/O. Calls from other threads keep working meanwhile:
//! a `block_on` that cannot take the core polls its own future and waits to be woken, while the
//! core's holder drives the I/O and timers (tokio 1.52,
//! src/runtime/scheduler/current_thread/mod.rs `CurrentThread::block_on`, and the doc of
//! `Handle::block_on` in src/runtime/handle.rs).

use anyhow::{Context, Result};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// The name of the driving thread (tests look for it).
pub const DRIVER_THREAD: &str = "kubeadm-certd-etcd";

/// The thread that drives the runtime while a lease is held.
struct Driver {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// A current-thread runtime, and its driving thread while one is needed.
pub struct EtcdRuntime {
    rt: Arc<tokio::runtime::Runtime>,
    driver: Mutex<Option<Driver>>,
}

impl EtcdRuntime {
    /// Build the runtime; no thread is started.
    pub fn new() -> Result<EtcdRuntime> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the etcd client runtime")?;
        Ok(EtcdRuntime {
            rt: Arc::new(rt),
            driver: Mutex::new(None),
        })
    }

    /// Run `f` to completion on the calling thread.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Keep the runtime's tasks running while no caller is in [`block_on`](Self::block_on):
    /// start the driving thread unless it runs already.
    pub fn drive(&self) -> Result<()> {
        let mut g = self
            .driver
            .lock()
            .map_err(|_| anyhow::anyhow!("the etcd runtime's driver lock is poisoned"))?;
        if g.is_some() {
            return Ok(());
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let rt = self.rt.clone();
        let thread = std::thread::Builder::new()
            .name(DRIVER_THREAD.into())
            .spawn(move || {
                // Returns when `stop` is sent or dropped.
                let _ = rt.block_on(stopped);
            })
            .context("starting the etcd client's thread")?;
        *g = Some(Driver { stop, thread });
        Ok(())
    }

    /// Stop the driving thread (the lease it kept alive has been released) and wait for it.
    pub fn park(&self) {
        let driver = self.driver.lock().ok().and_then(|mut g| g.take());
        if let Some(d) = driver {
            let _ = d.stop.send(());
            let _ = d.thread.join();
        }
    }

    /// Whether the driving thread runs (for tests).
    pub fn driven(&self) -> bool {
        self.driver.lock().map(|g| g.is_some()).unwrap_or(false)
    }
}

impl Drop for EtcdRuntime {
    fn drop(&mut self) {
        self.park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[test]
    fn spawned_tasks_run_between_calls_only_while_driven() {
        let rt = EtcdRuntime::new().unwrap();
        let ticks = Arc::new(AtomicU32::new(0));
        let t = ticks.clone();
        rt.block_on(async move {
            tokio::spawn(async move {
                loop {
                    t.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        });
        // Nobody drives: the task waits for the next call.
        let before = ticks.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        assert!(ticks.load(Ordering::SeqCst) <= before + 1);
        rt.drive().unwrap();
        assert!(rt.driven());
        std::thread::sleep(Duration::from_millis(200));
        let driven = ticks.load(Ordering::SeqCst);
        assert!(driven >= before + 5, "{before} -> {driven}");
        // A caller's own future still completes, timers included, while the thread drives.
        let v = rt.block_on(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            7
        });
        assert_eq!(v, 7);
        rt.park();
        assert!(!rt.driven());
        let parked = ticks.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        assert!(ticks.load(Ordering::SeqCst) <= parked + 1);
    }
}
