//! The daemon's side of the HA coordination: restarts run under the cluster-wide lock, the
//! STATUS= line says when the daemon waits for it and who holds it, and the textfile carries
//! the lock, halt and etcd-health gauges.

use crate::act::metrics::{ClusterGauges, Counters};
use crate::act::renew::Outcome;
use crate::act::restart::{restart_after, Progress, Sequence};
use crate::config::Settings;
use crate::node::NodePaths;
use crate::plan::scan::Scan;
use std::cell::RefCell;
use time::OffsetDateTime;

/// What a cycle's restart step works on.
pub struct Job<'a> {
    /// The node.
    pub paths: &'a NodePaths,
    /// Settings.
    pub settings: &'a Settings,
    /// This cycle's renewal, for rollback (none for restarts owed from before).
    pub outcome: Option<&'a Outcome>,
    /// The cycle's scan (for rewriting the textfile while the lock is held).
    pub scan: &'a Scan,
    /// The cycle's instant.
    pub now: OffsetDateTime,
}

/// Restart `restarts` (coordinated), counting and reporting.
pub fn restart(
    job: &Job<'_>,
    restarts: &[String],
    counters: &mut Counters,
    cancel: &crate::act::cancel::Cancel,
    rep: &mut super::cycle::CycleReport,
) {
    let shared = RefCell::new(std::mem::take(counters));
    let progress = |p: Progress| {
        let mut c = shared.borrow_mut();
        let g = c.cluster.get_or_insert_with(ClusterGauges::default);
        match p {
            Progress::Waiting(h) => {
                super::notify::status(&format!(
                    "waiting for the cluster-wide restart lock, held by {h}"
                ));
                return;
            }
            Progress::Acquired(w) => {
                g.lock_held = true;
                g.lock_wait_ms = u64::try_from(w.as_millis()).unwrap_or(u64::MAX);
                super::notify::status("holding the cluster-wide restart lock: restarting");
            }
            Progress::Released => g.lock_held = false,
        }
        super::cycle::write_metrics(job.paths, job.settings, job.scan, &c, job.now);
    };
    let r = restart_after(
        job.paths,
        job.settings,
        job.outcome,
        restarts,
        cancel,
        &crate::context::now,
        &progress,
    );
    *counters = shared.into_inner();
    match r {
        Ok(Sequence::Done(done)) => {
            for d in &done {
                counters.restart(d.component.name(), true);
            }
            let left = crate::act::store::owed::read(job.paths);
            if !left.is_empty() {
                rep.owed = Some(left.join(", "));
            }
        }
        Ok(Sequence::Owed(why)) => {
            rep.owed = Some(format!("{} ({why})", restarts.join(", ")));
        }
        Err(e) => {
            rep.failures += 1;
            restarts.iter().for_each(|c| counters.restart(c, false));
            tracing::error!(
                MESSAGE_ID = crate::logging::MSG_RESTART_FAILED,
                ACTION = "restart",
                RESULT = "failed",
                "{e:#}"
            );
        }
    }
}

/// Refresh the halt and etcd-health gauges (coordinated nodes only).
pub fn refresh_gauges(paths: &NodePaths, settings: &Settings, counters: &mut Counters) {
    let coord = match crate::cluster::Coordinator::connect(paths, &settings.coordination) {
        Ok(Some(c)) => c,
        _ => {
            counters.cluster = None;
            return;
        }
    };
    let g = counters.cluster.get_or_insert_with(ClusterGauges::default);
    g.lock_held = false;
    g.halt_present = matches!(coord.halt_record(), Ok(Some(_)));
    g.members_healthy = coord.healthy_members().unwrap_or(0) as u64;
}
