//! One cycle of the daemon: scan, plan what is due, renew, restart, report. Synchronous; the
//! loop runs it on a blocking thread.

use crate::config::Settings;
use crate::logging;
use crate::node::NodePaths;
use crate::plan::scan::Scan;
use crate::plan::{self, Decision, Selection, Skip};
use std::path::Path;
use time::OffsetDateTime;

/// What a cycle did.
#[derive(Debug, Default)]
pub struct CycleReport {
    /// One-line summary for sd_notify STATUS.
    pub status: String,
    /// Host paths written by the cycle (their watch events are our own).
    pub written: Vec<String>,
    /// Whether the cycle renewed anything.
    pub renewed: usize,
    /// Failures (renewal or restart).
    pub failures: usize,
    /// Restarts left owed this cycle, and why (HA coordination).
    pub owed: Option<String>,
}

/// The pid of a running `kubeadm` process, if any (an upgrade renews certificates itself).
pub fn kubeadm_running(proc_root: &Path) -> Option<i32> {
    let rd = std::fs::read_dir(proc_root).ok()?;
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) {
            if comm.trim() == "kubeadm" {
                return Some(pid);
            }
        }
    }
    None
}

/// Run one cycle.
pub fn run(
    paths: &NodePaths,
    settings: &Settings,
    counters: &mut crate::act::metrics::Counters,
    now: OffsetDateTime,
    cancel: &crate::act::cancel::Cancel,
) -> CycleReport {
    let mut rep = CycleReport::default();
    if let Some(pid) = kubeadm_running(Path::new(crate::act::staticpods::process::PROC_ROOT)) {
        tracing::info!(ACTION = "defer", "kubeadm (pid {pid}) is running, probably an upgrade, which renews certificates itself; deferring until it has finished");
        rep.status = format!("deferred: kubeadm (pid {pid}) is running");
        return rep;
    }
    let scan = crate::plan::scan::scan(paths);
    for p in scan.problems() {
        tracing::error!(MESSAGE_ID = logging::MSG_RENEW_FAILED, CERT_PATH = %p.path, RESULT = "invalid", "{p}");
    }
    let plan = plan::plan(&scan, &Selection::Due, settings, now);
    for i in &plan.items {
        match &i.decision {
            Decision::Refuse(why) => {
                rep.failures += 1;
                counters.renewal_failed();
                tracing::error!(
                    MESSAGE_ID = logging::MSG_RENEW_FAILED,
                    CERT_NAME = i.handler.name,
                    ACTION = "renew",
                    RESULT = "refused",
                    "{why}"
                );
            }
            Decision::Skip(Skip::ExternalCa(_) | Skip::Excluded | Skip::NotSignedByCa(_)) => {
                if let Some(t) = i.old_not_after.filter(|t| {
                    plan::is_due(*t, now, settings.renew_before)
                        && logging::once_a_day(i.handler.name)
                }) {
                    tracing::warn!(MESSAGE_ID = logging::MSG_EXPIRING_SOON, CERT_NAME = i.handler.name, NOT_AFTER = %t, ACTION = "skip", "{} expires at {t} and kubeadm-certd does not renew it here ({:?})", i.handler.name, i.decision);
                }
            }
            _ => {}
        }
    }
    let mut outcome = None;
    if plan.renewing().next().is_some() {
        match crate::act::renew::apply(paths, &scan, &plan, settings, now, settings.restart.enabled)
        {
            Ok(o) => {
                rep.renewed = o.renewed.len();
                for r in &o.renewed {
                    counters.renewal_ok(now);
                    rep.written.extend(r.files.iter().cloned());
                }
                outcome = Some(o);
            }
            Err(e) => {
                rep.failures += 1;
                counters.renewal_failed();
                tracing::error!(
                    MESSAGE_ID = logging::MSG_RENEW_FAILED,
                    ACTION = "renew",
                    RESULT = "failed",
                    "{e:#}"
                );
            }
        }
    }
    if settings.restart.enabled {
        // This cycle's restarts, and any still owed (the lock was not won, etcd was deferred,
        // a halt stood): retried every cycle until done.
        let mut restarts = if outcome.is_some() {
            crate::plan::restarts::for_plan(paths, &plan)
        } else {
            Vec::new()
        };
        for c in crate::act::store::owed::read(paths) {
            if !restarts.contains(&c) {
                restarts.push(c);
            }
        }
        if !restarts.is_empty() {
            let job = super::coordinate::Job {
                paths,
                settings,
                outcome: outcome.as_ref(),
                scan: &scan,
                now,
            };
            super::coordinate::restart(&job, &restarts, counters, cancel, &mut rep);
        }
    }
    let scan = if rep.renewed > 0 {
        crate::plan::scan::scan(paths)
    } else {
        scan
    };
    warn_runway(&scan, settings, now);
    if let Some(t) =
        crate::act::kubelet::conf::detect(paths).filter(|_| logging::once_a_day("kubelet.conf"))
    {
        tracing::warn!(MESSAGE_ID = logging::MSG_EXPIRING_SOON, CERT_PATH = %paths.show(&paths.kubeconfigs.join("kubelet.conf")), "{t}");
    }
    if settings.metrics_textfile.is_some() {
        super::coordinate::refresh_gauges(paths, settings, counters);
    }
    if let Some(file) = write_metrics(paths, settings, &scan, counters, now) {
        rep.written.push(file);
    }
    rep.status = status_line(&scan, settings, now, &rep);
    rep
}

/// Write the metrics textfile (when on); the host path written.
pub fn write_metrics(
    paths: &NodePaths,
    settings: &Settings,
    scan: &Scan,
    counters: &crate::act::metrics::Counters,
    now: OffsetDateTime,
) -> Option<String> {
    let file = settings.metrics_textfile.as_ref()?;
    let target = paths.root.resolve(file);
    let text = crate::act::metrics::render(scan, counters, now);
    match crate::act::metrics::write_textfile(&target, &text) {
        Ok(()) => Some(file.clone()),
        Err(e) => {
            tracing::warn!("metrics textfile {file}: {e:#}");
            None
        }
    }
}

/// Warn about CAs with less than caWarnBefore left, and kubelet certificates close to expiry.
fn warn_runway(scan: &Scan, settings: &Settings, now: OffsetDateTime) {
    for ca in scan.cas.values().flatten() {
        let Some(c) = &ca.cert else { continue };
        if c.not_after - now < settings.ca_warn_before
            && logging::once_a_day(&format!("ca-runway-{}", ca.id.name()))
        {
            tracing::warn!(MESSAGE_ID = logging::MSG_CA_EXPIRING, CERT_NAME = ca.id.name(), CERT_PATH = %scan.root.host_path(&ca.cert_path).display(), NOT_AFTER = %c.not_after, "the {} CA expires at {}; leaves cannot outlive it: plan a CA rotation", ca.id.name(), c.not_after);
        }
        if settings.certificate_validity > (c.not_after - now).unsigned_abs()
            && logging::once_a_day(&format!("ca-validity-{}", ca.id.name()))
        {
            tracing::warn!(CERT_NAME = ca.id.name(), "certificateValidity exceeds the {} CA's remaining life; renewed certificates will be clamped to {}", ca.id.name(), c.not_after);
        }
    }
    for k in &scan.kubelet {
        let Ok(c) = &k.cert else { continue };
        if plan::is_due(c.not_after, now, settings.renew_before)
            && logging::once_a_day(&format!("kubelet-{}", k.name))
        {
            tracing::warn!(MESSAGE_ID = logging::MSG_EXPIRING_SOON, CERT_NAME = k.name, CERT_PATH = %scan.root.host_path(&k.path).display(), NOT_AFTER = %c.not_after, "{} expires at {}; the kubelet rotates it itself — check that rotation works (kubelet logs, pending CSRs)", k.name, c.not_after);
        }
    }
}

/// "11 certificates ok; next: apiserver renews in 23d".
fn status_line(scan: &Scan, settings: &Settings, now: OffsetDateTime, rep: &CycleReport) -> String {
    let loaded: Vec<_> = scan
        .certs
        .iter()
        .filter_map(|e| e.state.as_ref().ok().and_then(|l| l.as_ref()))
        .collect();
    let ok = loaded.iter().filter(|l| l.leaf.not_after > now).count();
    let mut s = format!("{ok} certificates ok");
    if let Some(next) = loaded.iter().min_by_key(|l| l.leaf.not_after) {
        let at = next.leaf.not_after - settings.renew_before;
        let left =
            crate::plan::report::format::short_human_duration((at - now).whole_seconds().max(0));
        s.push_str(&format!("; next: {} renews in {left}", next.handler.name));
    }
    if rep.renewed > 0 {
        s.push_str(&format!("; renewed {} this cycle", rep.renewed));
    }
    if rep.failures > 0 {
        s.push_str(&format!("; {} failure(s), see the journal", rep.failures));
    }
    if let Some(o) = &rep.owed {
        s.push_str(&format!("; restarts owed: {o}"));
    }
    s
}
