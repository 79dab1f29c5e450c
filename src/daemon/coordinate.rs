//! The daemon's side of the HA coordination: the STATUS= line says when the daemon waits for
//! the cluster-wide restart lock and who holds it, and the textfile carries the lock, halt and
//! etcd-health gauges.

use crate::act::cancel::Cancel;
use crate::act::metrics::{ClusterGauges, Counters};
use crate::act::restart::Progress;
use crate::config::Settings;
use crate::node::NodePaths;
use std::cell::RefCell;
use std::time::Instant;

/// Follow the coordination's progress: STATUS= and the lock gauges.
pub fn progress(g: &RefCell<ClusterGauges>, p: Progress) {
    let mut g = g.borrow_mut();
    match p {
        Progress::Waiting { holder, waited } => {
            // The gauge grows while the wait lasts, so LockWaitTooLong can fire during it, and
            // counts from the first attempt: a lockTimeout shorter than the alert's threshold
            // must not hide a node that never gets the lock.
            g.wait_started.get_or_insert_with(|| {
                Instant::now()
                    .checked_sub(waited)
                    .unwrap_or_else(Instant::now)
            });
            super::notify::status(&format!(
                "waiting for the cluster-wide restart lock, held by {holder}"
            ))
        }
        Progress::Acquired(_) => {
            g.lock_held = true;
            g.wait_started = None;
            super::notify::status("holding the cluster-wide restart lock: restarting");
        }
        Progress::Released => g.lock_held = false,
    }
}

/// Refresh the halt and etcd-health gauges (coordinated nodes only). A stop request cuts
/// the etcd reads short and leaves the gauges as they were: an interrupted read says nothing
/// about etcd. A node whose own files say it is a single member never connects here (no
/// client, no runtime at idle); its restarts still look at etcd first, and a node found to
/// have gained members there gets its gauges from the next cycle on.
pub fn refresh_gauges(
    paths: &NodePaths,
    settings: &Settings,
    counters: &mut Counters,
    cancel: &Cancel,
) {
    let c = cancel.clone();
    let stop = std::sync::Arc::new(move || c.is_cancelled());
    let coord = match crate::cluster::Coordinator::connect_unless_single(
        paths,
        &settings.coordination,
        stop,
    ) {
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
    // A wait goes on across cycles while restarts stay owed, and ends when none are.
    if crate::act::store::owed::read(paths).is_empty() {
        g.wait_started = None;
    }
    g.halt_present = matches!(halt, Ok(Some(_)));
    g.members_healthy = healthy.unwrap_or(0) as u64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_wait_gauge_counts_from_the_first_attempt_and_drops_to_zero_with_the_lock() {
        let g = RefCell::new(ClusterGauges::default());
        let wait = |s| Progress::Waiting {
            holder: "cp3".into(),
            waited: Duration::from_secs(s),
        };
        let ms = || g.borrow().lock_wait_ms();
        progress(&g, wait(600));
        assert!((600_000..601_000).contains(&ms()), "{}", ms());
        assert!(!g.borrow().lock_held);
        // The attempt timed out; the next cycle's attempt counts its own wait from zero, but
        // the node has been waiting since the first one.
        progress(&g, wait(1));
        assert!(ms() >= 600_000, "{}", ms());
        progress(&g, Progress::Acquired(Duration::from_secs(1)));
        assert_eq!(ms(), 0);
        assert!(g.borrow().lock_held);
        assert!(g.borrow().wait_started.is_none());
        progress(&g, Progress::Released);
        assert!(!g.borrow().lock_held);
        assert_eq!(ms(), 0);
    }
}
