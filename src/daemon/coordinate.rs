//! The daemon's side of the HA coordination: the STATUS= line says when the daemon waits for
//! the cluster-wide restart lock and who holds it, and the textfile carries the lock, halt and
//! etcd-health gauges.

use crate::act::cancel::Cancel;
use crate::act::metrics::{ClusterGauges, Counters};
use crate::act::restart::Progress;
use crate::config::Settings;
use crate::node::NodePaths;
use std::cell::RefCell;

/// Follow the coordination's progress: STATUS= and the lock gauges.
pub fn progress(g: &RefCell<ClusterGauges>, p: Progress) {
    let mut g = g.borrow_mut();
    match p {
        Progress::Waiting { holder, waited } => {
            // The gauge grows while the wait lasts, so LockWaitTooLong can fire during it.
            g.lock_wait_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
            super::notify::status(&format!(
                "waiting for the cluster-wide restart lock, held by {holder}"
            ))
        }
        Progress::Acquired(w) => {
            g.lock_held = true;
            g.lock_wait_ms = u64::try_from(w.as_millis()).unwrap_or(u64::MAX);
            super::notify::status("holding the cluster-wide restart lock: restarting");
        }
        Progress::Released => g.lock_held = false,
    }
}

/// Refresh the halt and etcd-health gauges (coordinated nodes only). A stop request cuts
/// the etcd reads short and leaves the gauges as they were: an interrupted read says nothing
/// about etcd.
pub fn refresh_gauges(
    paths: &NodePaths,
    settings: &Settings,
    counters: &mut Counters,
    cancel: &Cancel,
) {
    let c = cancel.clone();
    let stop = std::sync::Arc::new(move || c.is_cancelled());
    let coord = match crate::cluster::Coordinator::connect_with(paths, &settings.coordination, stop)
    {
        Ok(Some(c)) => c,
        Ok(None) => {
            counters.cluster = None;
            return;
        }
        Err(_) if cancel.is_cancelled() => return,
        Err(_) => {
            // A coordinated node that reaches no etcd member: that is what the gauges must
            // show (no healthy member, no lock); the last halt seen stands until etcd answers.
            let g = counters.cluster.get_or_insert_with(ClusterGauges::default);
            g.lock_held = false;
            g.members_healthy = 0;
            return;
        }
    };
    let halt = coord.halt_record();
    let healthy = coord.healthy_members();
    if cancel.is_cancelled() {
        return;
    }
    let g = counters.cluster.get_or_insert_with(ClusterGauges::default);
    g.lock_held = false;
    g.halt_present = matches!(halt, Ok(Some(_)));
    g.members_healthy = healthy.unwrap_or(0) as u64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_wait_gauge_grows_while_waiting_and_keeps_the_final_wait() {
        let g = RefCell::new(ClusterGauges::default());
        let wait = |s| Progress::Waiting {
            holder: "cp3".into(),
            waited: Duration::from_secs(s),
        };
        progress(&g, wait(5));
        progress(&g, wait(10));
        assert_eq!(g.borrow().lock_wait_ms, 10_000);
        assert!(!g.borrow().lock_held);
        progress(&g, Progress::Acquired(Duration::from_millis(12_500)));
        assert_eq!(g.borrow().lock_wait_ms, 12_500);
        assert!(g.borrow().lock_held);
        progress(&g, Progress::Released);
        assert!(!g.borrow().lock_held);
        assert_eq!(g.borrow().lock_wait_ms, 12_500);
    }
}
