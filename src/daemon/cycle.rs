//! One cycle of the daemon: scan, plan what is due, renew, restart, report. Synchronous; the
//! loop runs it on a blocking thread. The cycle is three steps, each in its own function:
//! standing conditions (logged once, see [`super::conditions`]), renewal and restarts, and
//! the metrics textfile.

use super::conditions::Conditions;
use super::standing;
use crate::act::cancel::Cancel;
use crate::act::clock::Kernel;
use crate::act::guard;
use crate::act::metrics::{Counters, TextfileError};
use crate::config::Settings;
use crate::logging;
use crate::node::NodePaths;
use crate::plan::scan::Scan;
use crate::plan::{self, Decision, Plan, Selection};
use std::path::Path;
use time::OffsetDateTime;

/// What the daemon keeps from one cycle to the next (cloned into each cycle, so that a cycle
/// that panics loses nothing).
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Metrics counters.
    pub counters: Counters,
    /// Standing conditions and when they were last logged.
    pub conditions: Conditions,
}

/// What a cycle did.
#[derive(Debug, Default)]
pub struct CycleReport {
    /// One-line summary for sd_notify STATUS.
    pub status: String,
    /// Host paths written by the cycle (their watch events are our own).
    pub written: Vec<String>,
    /// The same, with each file's identity taken under the lock (see `nodelock::stamp`).
    pub own: Vec<(String, super::nodelock::FileId)>,
    /// Certificates renewed.
    pub renewed: usize,
    /// Failures (renewal or restart attempts, not standing refusals).
    pub failures: usize,
    /// Whether the kubelet's client certificate was revived.
    pub revived: bool,
    /// Restarts left owed this cycle, and why (HA coordination).
    pub owed: Option<String>,
    /// A CA rotation is under way: look again this soon (issue 20).
    pub rotation_poll: Option<std::time::Duration>,
    /// A CA rotation under way, for the STATUS= line.
    pub rotation_status: Option<String>,
}

impl CycleReport {
    /// Whether the cycle changed anything or failed (worth an info line).
    pub fn acted(&self) -> bool {
        self.renewed > 0 || self.failures > 0 || self.revived
    }
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

/// Run one cycle, started by `trigger` (start, timer, change). The caller has begun the
/// conditions round ([`Conditions::begin`]); the cycle ends it.
pub fn run(
    paths: &NodePaths,
    settings: &Settings,
    state: &mut State,
    trigger: &str,
    now: OffsetDateTime,
    cancel: &Cancel,
) -> CycleReport {
    let mut rep = CycleReport::default();
    state.counters.cycle(trigger);
    if let Some(pid) = kubeadm_running(Path::new(crate::act::staticpods::process::PROC_ROOT)) {
        let text = format!("kubeadm (pid {pid}) is running, probably an upgrade, which renews certificates itself; deferring until it has finished");
        if state.conditions.holds("kubeadm-running", &text, now) {
            tracing::info!(ACTION = "defer", "{text}");
        }
        rep.status = format!("deferred: kubeadm (pid {pid}) is running");
        // Nothing else was looked at: what stood before still stands.
        return rep;
    }
    // The kept ClusterConfiguration's validity, key algorithm and certificatesDir, where the
    // config file sets none (issue 18); the API task keeps it fresh, the cycle never waits.
    let (paths, settings) =
        &super::cluster_config::for_cycle(paths, settings, &mut state.conditions, now);
    // The lock is free between cycles: a command may have died mid-write since the last one.
    super::nodelock::recover_left(paths, settings, &mut state.conditions, now, cancel);
    // Before the scan: a rotation step changes etcd files that the renewal plan then sees.
    super::rotation::run(paths, settings, state, now, cancel, &mut rep);
    // An upgrade may have rewritten the kubelet config without kubelet.serverTLSBootstrap.
    super::kubelet_drift::reapply(
        paths,
        settings,
        &mut state.conditions,
        now,
        cancel,
        &mut rep,
    );
    let scan = crate::plan::scan::scan(paths);
    let mut plan = plan::plan(&scan, &Selection::Due, settings, now);
    // Guard rails (issue 12): the clock, the renewal memory, no gain, the restart budget.
    let (clock_ok, clock) = guard::clock_allows(&scan, settings, now, &Kernel, &mut state.counters);
    let mut notices = guard::hold(
        paths,
        &mut plan,
        now,
        settings.check_interval,
        &mut state.counters,
    );
    notices.extend(clock);
    state.counters.refused = standing::refusals(&scan, &plan, &mut state.conditions, now);
    standing::skipped_but_due(&plan, settings, &mut state.conditions, now);
    if clock_ok {
        renew_and_restart(
            paths,
            settings,
            &scan,
            &plan,
            now,
            cancel,
            state,
            &mut rep,
            &mut notices,
        );
    }
    if plan.renewing().next().is_none() || !clock_ok {
        let (owed, held) = guard::owed_within_budget(paths, settings, now, &mut state.counters);
        notices.extend(held);
        let none = crate::act::renew::Outcome::default();
        restart(paths, settings, &none, &owed, now, cancel, state, &mut rep);
    }
    for n in &notices {
        if state.conditions.holds(&n.key, &n.text, now) {
            n.log();
        }
    }
    if clock_ok {
        revive_kubelet_client(paths, settings, &scan, now, cancel, state, &mut rep);
    }
    if rep.failures == 0 {
        guard::after_cycle(paths, settings, now);
    }
    let scan = if rep.renewed > 0 || rep.revived {
        crate::plan::scan::scan(paths)
    } else {
        scan
    };
    standing::runway(&scan, settings, &mut state.conditions, now);
    standing::kubelet_conf(paths, &mut state.conditions, now);
    if settings.metrics_textfile.is_some() {
        super::coordinate::refresh_gauges(paths, settings, &mut state.counters, cancel);
    }
    write_metrics(paths, settings, &scan, state, now, &mut rep);
    for (key, text) in state.conditions.end() {
        tracing::info!(
            ACTION = "resolved",
            CONDITION = key.as_str(),
            "resolved: {text}"
        );
    }
    rep.status = status_line(&scan, &plan, settings, now, &rep);
    rep.status.push_str(&guard::status_suffix(&state.counters));
    if let Some(r) = &rep.rotation_status {
        rep.status.push_str(r);
    }
    rep
}

/// Renew what the plan says and restart the static pods that use the renewed files, counting
/// each attempt with its own result.
#[allow(clippy::too_many_arguments)]
fn renew_and_restart(
    paths: &NodePaths,
    settings: &Settings,
    scan: &Scan,
    plan: &Plan,
    now: OffsetDateTime,
    cancel: &Cancel,
    state: &mut State,
    rep: &mut CycleReport,
    notices: &mut Vec<guard::Notice>,
) {
    if plan.renewing().next().is_none() {
        return;
    }
    let outcome = match crate::act::renew::apply(
        paths,
        scan,
        plan,
        settings,
        now,
        settings.restart.enabled,
    ) {
        Ok(o) => o,
        Err(e) => {
            rep.failures += 1;
            state.counters.renewal_failed();
            tracing::error!(
                MESSAGE_ID = logging::MSG_RENEW_FAILED,
                ACTION = "renew",
                RESULT = "failed",
                "{e:#}"
            );
            return;
        }
    };
    rep.renewed = outcome.renewed.len();
    guard::remember(paths, &outcome, now);
    for r in &outcome.renewed {
        state.counters.renewal_ok(now);
        rep.written.extend(r.files.iter().cloned());
    }
    let restarts = crate::plan::restarts::for_plan(paths, plan);
    if !settings.restart.enabled || restarts.is_empty() {
        return;
    }
    // Past restart.maxPerDay a component is not restarted; its restart stays owed.
    let (restarts, held) = guard::budget(paths, settings, &restarts, now, &mut state.counters);
    notices.extend(held);
    restart(
        paths, settings, &outcome, &restarts, now, cancel, state, rep,
    );
}

/// Restart `restarts` (within the budget), counting each attempt with its own result.
#[allow(clippy::too_many_arguments)]
fn restart(
    paths: &NodePaths,
    settings: &Settings,
    outcome: &crate::act::renew::Outcome,
    restarts: &[String],
    now: OffsetDateTime,
    cancel: &Cancel,
    state: &mut State,
    rep: &mut CycleReport,
) {
    if restarts.is_empty() {
        return;
    }
    // On an HA control plane the sequence runs under the cluster-wide lock (issue 11). Only
    // restarts carried out count against the budget: one put off (lock, halt, quorum guard)
    // is retried every cycle and must not use it up.
    let gauges = std::cell::RefCell::new(state.counters.cluster.clone().unwrap_or_default());
    // The textfile is rewritten as the lock is waited for, taken and released, so that
    // kubeadm_certd_lock_held reads 1 while this node restarts, not only between cycles.
    let before = state.counters.clone();
    let textfile = crate::act::metrics::textfile_path(&paths.root, settings);
    let progress = |p| {
        super::coordinate::progress(&gauges, p);
        if let Some(t) = &textfile {
            let mut c = before.clone();
            c.cluster = Some(gauges.borrow().clone());
            let scan = crate::plan::scan::scan(paths);
            let text = crate::act::metrics::render(&scan, &c, crate::context::now());
            if let Err(e) = crate::act::metrics::write_textfile(t, &text) {
                tracing::debug!("metrics textfile during the restart sequence: {e}");
            }
        }
    };
    let r = crate::act::restart::restart_after(
        paths,
        settings,
        Some(outcome),
        restarts,
        cancel,
        &crate::context::now,
        &progress,
    );
    state.counters.cluster = Some(gauges.into_inner());
    match r {
        Ok(crate::act::restart::Sequence::Done(done)) => {
            let names: Vec<String> = done.iter().map(|d| d.component.name().into()).collect();
            guard::record_restarts(paths, &names, now);
            done.iter()
                .for_each(|d| state.counters.restart(d.component.name(), true));
            let left = crate::act::store::owed::read(paths);
            if !left.is_empty() {
                rep.owed = Some(left.join(", "));
            }
        }
        Ok(crate::act::restart::Sequence::Owed(why)) => {
            rep.owed = Some(format!("{} ({why})", restarts.join(", ")));
        }
        Err(e) if e.failed.is_none() && cancel.is_cancelled() => {
            // A stop request during a hold: the manifest is back, nothing failed, the
            // restarts stay owed for the next start.
            let done: Vec<String> = e.done.iter().map(|c| c.name().into()).collect();
            guard::record_restarts(paths, &done, now);
            e.done
                .iter()
                .for_each(|c| state.counters.restart(c.name(), true));
            tracing::info!(ACTION = "restart", RESULT = "interrupted", "{e}");
        }
        Err(e) => {
            rep.failures += 1;
            let tried: Vec<String> = e
                .done
                .iter()
                .chain(&e.failed)
                .map(|c| c.name().into())
                .collect();
            guard::record_restarts(paths, &tried, now);
            e.done
                .iter()
                .for_each(|c| state.counters.restart(c.name(), true));
            if let Some(c) = e.failed {
                state.counters.restart(c.name(), false);
            }
            tracing::error!(
                MESSAGE_ID = logging::MSG_RESTART_FAILED,
                ACTION = "restart",
                RESULT = "failed",
                "{e}"
            );
        }
    }
}

/// Revive the kubelet's client certificate when it is due and this node holds ca.key
/// (issue 13); otherwise warn, as a standing condition, with the manual steps.
fn revive_kubelet_client(
    paths: &NodePaths,
    settings: &Settings,
    scan: &Scan,
    now: OffsetDateTime,
    cancel: &Cancel,
    state: &mut State,
    rep: &mut CycleReport,
) {
    use crate::act::kubelet::revive::{run_with_scan, Outcome};
    // Renewals change no kubelet file: the cycle's scan still holds for the kubelet.
    match run_with_scan(paths, settings, scan, now, cancel) {
        Ok(Outcome::NotNeeded(_)) => {}
        Ok(Outcome::NotRevived { warning, .. }) => {
            if state
                .conditions
                .holds("kubelet-client-revive", &warning, now)
            {
                tracing::warn!(
                    MESSAGE_ID = logging::MSG_KUBELET_CLIENT_STUCK,
                    ACTION = "kubelet-client-revive",
                    "{warning}"
                );
            }
        }
        Ok(Outcome::Revived(r)) => {
            rep.revived = true;
            rep.written.extend(r.written);
        }
        Err(e) => {
            rep.failures += 1;
            let text = format!("reviving the kubelet's client certificate failed: {e:#}");
            if state.conditions.holds("kubelet-client-revive", &text, now) {
                tracing::error!(
                    MESSAGE_ID = logging::MSG_KUBELET_CLIENT_STUCK,
                    ACTION = "kubelet-client-revive",
                    RESULT = "failed",
                    "{text}"
                );
            }
        }
    }
}

/// Write the metrics textfile, if configured and its directory exists.
fn write_metrics(
    paths: &NodePaths,
    settings: &Settings,
    scan: &Scan,
    state: &mut State,
    now: OffsetDateTime,
    rep: &mut CycleReport,
) {
    let (Some(file), Some(target)) = (
        &settings.metrics_textfile,
        crate::act::metrics::textfile_path(&paths.root, settings),
    ) else {
        return;
    };
    let text = crate::act::metrics::render(scan, &state.counters, now);
    match crate::act::metrics::write_textfile(&target, &text) {
        Ok(()) => rep.written.push(file.clone()),
        Err(e @ TextfileError::NoDirectory(_)) => {
            let text = format!("metrics textfile {file} not written: {e}");
            if state.conditions.holds("metrics-dir", &text, now) {
                tracing::warn!(ACTION = "metrics", "{text}");
            }
        }
        Err(e) => {
            let text = format!("metrics textfile {file}: {e:#}");
            if state.conditions.holds("metrics-write", &text, now) {
                tracing::warn!(ACTION = "metrics", "{text}");
            }
        }
    }
}

/// "11 certificates ok; next: apiserver renews in 23d". Only certificates this daemon
/// renews count for "next": excluded, external-CA and user-provided ones never renew here.
fn status_line(
    scan: &Scan,
    plan: &Plan,
    settings: &Settings,
    now: OffsetDateTime,
    rep: &CycleReport,
) -> String {
    let loaded: Vec<_> = scan
        .certs
        .iter()
        .filter_map(|e| e.state.as_ref().ok().and_then(|l| l.as_ref()))
        .collect();
    let ok = loaded.iter().filter(|l| l.leaf.not_after > now).count();
    let mut s = format!("{ok} certificates ok");
    let renewable = |name: &str| {
        plan.items.iter().any(|i| {
            i.handler.name == name
                && matches!(
                    i.decision,
                    Decision::Renew { .. } | Decision::Skip(plan::Skip::NotDue)
                )
        })
    };
    if let Some(next) = loaded
        .iter()
        .filter(|l| renewable(l.handler.name))
        .min_by_key(|l| l.leaf.not_after)
    {
        let at = next.leaf.not_after - settings.renew_before;
        let left =
            crate::plan::report::format::short_human_duration((at - now).whole_seconds().max(0));
        s.push_str(&format!("; next: {} renews in {left}", next.handler.name));
    }
    if rep.renewed > 0 {
        s.push_str(&format!("; renewed {} this cycle", rep.renewed));
    }
    if rep.revived {
        s.push_str("; revived the kubelet's client certificate");
    }
    if rep.failures > 0 {
        s.push_str(&format!("; {} failure(s), see the journal", rep.failures));
    }
    if let Some(o) = &rep.owed {
        s.push_str(&format!("; restarts owed: {o}"));
    }
    let refused = plan
        .items
        .iter()
        .filter(|i| matches!(i.decision, Decision::Refuse(_)))
        .count();
    if refused > 0 {
        s.push_str(&format!("; {refused} refused, see the journal"));
    }
    s
}
