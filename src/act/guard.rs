//! The guard rails the daemon cycle calls (issue 12): the decisions are pure
//! (`plan::guard`); this reads and writes their state in stateDir and logs each refusal with
//! its MESSAGE_ID. Order in a cycle: [`clock_allows`] before renewing, [`hold`] on the plan,
//! [`remember`] after a renewal, [`budget`] / [`record_restarts`] around restarts, and
//! [`after_cycle`] (pruning) after a cycle without failures.

use crate::act::clock::TimeSource;
use crate::act::metrics::Counters;
use crate::act::renew::Outcome;
use crate::act::store::{prune, stamps};
use crate::config::Settings;
use crate::logging::{self, human_duration};
use crate::node::NodePaths;
use crate::plan::guard::{self, ClockVerdict, Hold};
use crate::plan::scan::Scan;
use crate::plan::{Decision, Plan, Skip};
use time::OffsetDateTime;

/// An instant as RFC 3339 UTC, for log lines.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A duration for people: whole days as `400d`, else humantime.
pub fn days_or_human(d: std::time::Duration) -> String {
    if d.as_secs().is_multiple_of(86_400) && d.as_secs() > 0 {
        format!("{}d", d.as_secs() / 86_400)
    } else {
        human_duration(d)
    }
}

/// Whether the clock allows renewing this cycle; logs why not (a warning with a MESSAGE_ID).
pub fn clock_allows(
    scan: &Scan,
    settings: &Settings,
    now: OffsetDateTime,
    src: &dyn TimeSource,
    counters: &mut Counters,
) -> bool {
    let v = guard::clock_verdict(
        &src.sync_status(),
        src.since_boot(),
        settings.require_time_sync,
        now,
        guard::newest_not_before(scan),
    );
    counters.guard.clock_deferred = !matches!(v, ClockVerdict::Go | ClockVerdict::GoUnsynced);
    match v {
        ClockVerdict::Go => true,
        ClockVerdict::GoUnsynced => {
            if logging::once_a_day("clock-unsynced-go") {
                tracing::warn!(
                    MESSAGE_ID = logging::MSG_CLOCK_UNSYNCED,
                    ACTION = "renew",
                    RESULT = "unsynced",
                    "the kernel still reports the clock unsynchronised {} after boot; renewing anyway (requireTimeSync: auto; set it to true to wait for NTP, false to silence this)",
                    human_duration(crate::config::TIME_SYNC_GRACE)
                );
            }
            true
        }
        ClockVerdict::Defer { why } => {
            tracing::warn!(
                MESSAGE_ID = logging::MSG_CLOCK_UNSYNCED,
                ACTION = "renew",
                RESULT = "deferred",
                "not renewing this cycle: {why}; renewals resume once the clock is synchronised"
            );
            false
        }
        ClockVerdict::Behind { name, not_before } => {
            tracing::warn!(
                MESSAGE_ID = logging::MSG_CLOCK_BEHIND,
                ACTION = "renew",
                RESULT = "refused",
                CERT_NAME = name.as_str(),
                "not renewing: the clock reads {}, earlier than {name}'s NotBefore {} minus {}; the clock went backwards (check NTP, the RTC, a restored VM); renewals resume once it is past that",
                rfc3339(now),
                rfc3339(not_before),
                human_duration(guard::CLOCK_SKEW)
            );
            false
        }
    }
}

/// Apply the renewal memory to a daemon plan and report what the guards hold back: a
/// warning per held certificate (blocked-by-CA ones once a day), and the metric.
pub fn hold(paths: &NodePaths, plan: &mut Plan, now: OffsetDateTime, counters: &mut Counters) {
    force_due_hook(plan, now);
    let memory = stamps::read_renewed(paths);
    for (name, at) in guard::hold_recent(plan, &memory, now) {
        tracing::warn!(
            MESSAGE_ID = logging::MSG_RECENTLY_RENEWED,
            CERT_NAME = name,
            ACTION = "renew",
            RESULT = "held",
            "{name} is due again, but the daemon renewed it at {}, less than {} ago; not renewing it again (a loop breaker: check renewBefore, certificateValidity and the CA's end date)",
            rfc3339(at),
            human_duration(guard::RENEWAL_MEMORY)
        );
    }
    counters.guard.blocked_by_ca.clear();
    for i in &plan.items {
        let Decision::Skip(Skip::Held(Hold::NoGain { ca, ca_not_after })) = &i.decision else {
            continue;
        };
        counters
            .guard
            .blocked_by_ca
            .insert(i.handler.name.to_string(), ca.name().to_string());
        if logging::once_a_day(&format!("blocked-by-ca-{}", i.handler.name)) {
            tracing::warn!(
                MESSAGE_ID = logging::MSG_BLOCKED_BY_CA,
                CERT_NAME = i.handler.name,
                NOT_AFTER = rfc3339(*ca_not_after),
                ACTION = "renew",
                RESULT = "blocked",
                "{} is due but blocked by CA runway: the {} CA ends at {}, so a renewal cannot extend it; not renewing and not restarting. Rotate the {} CA",
                i.handler.name,
                ca.name(),
                rfc3339(*ca_not_after),
                ca.name()
            );
        }
    }
}

/// Test hook (failpoints builds): `guard::force-due=return(NAME)` makes NAME look due, and
/// past every guard but the restart budget, on every cycle: a loop nobody foresaw.
fn force_due_hook(plan: &mut Plan, now: OffsetDateTime) {
    let Some(name) = forced() else { return };
    for i in &mut plan.items {
        if i.handler.name == name && matches!(i.decision, Decision::Skip(Skip::NotDue)) {
            i.decision = Decision::Renew {
                new_not_after: now,
                clamped: false,
            };
            return;
        }
    }
}

fn forced() -> Option<String> {
    fail::fail_point!("guard::force-due", |a| a);
    None
}

/// Remember what the daemon renewed (the loop breaker reads it).
pub fn remember(paths: &NodePaths, outcome: &Outcome, now: OffsetDateTime) {
    let mut names: Vec<&str> = outcome.renewed.iter().map(|r| r.handler.name).collect();
    if forced().is_some() {
        names.clear(); // the forced loop must get past the memory
    }
    if let Err(e) = stamps::record_renewed(paths, &names, now) {
        tracing::warn!("renewal memory: {e:#}");
    }
}

/// Of `components` (to restart now), those within `restart.maxPerDay`. The rest stay owed
/// and are named in an error (MESSAGE_ID restart-budget).
pub fn budget(
    paths: &NodePaths,
    settings: &Settings,
    components: &[String],
    now: OffsetDateTime,
    counters: &mut Counters,
) -> Vec<String> {
    let history = stamps::read_restarts(paths);
    let (allowed, over) =
        guard::split_budget(components, &history, settings.restart.max_per_day, now);
    counters.guard.restart_budget_spent = over.iter().map(|(c, _)| c.clone()).collect();
    for (c, n) in &over {
        tracing::error!(
            MESSAGE_ID = logging::MSG_RESTART_BUDGET,
            COMPONENT = c.as_str(),
            ACTION = "restart",
            RESULT = "budget-exhausted",
            "not restarting {c}: the daemon restarted it {n} times in the last {} (restart.maxPerDay: {}); something makes it renew again and again, a loop: find it (journalctl -u kubeadm-certd). The restart stays owed: `kubeadm-certd recover` or `kubeadm-certd restart {c}` does it by hand",
            human_duration(guard::RESTART_WINDOW),
            settings.restart.max_per_day
        );
    }
    allowed
}

/// Count restarts (attempts: a failed one disrupts the component too).
pub fn record_restarts(paths: &NodePaths, components: &[String], now: OffsetDateTime) {
    if let Err(e) = stamps::record_restarts(paths, components, now) {
        tracing::warn!("restart history: {e:#}");
    }
}

/// Restarts owed by an earlier cycle (kept back by the budget) that the budget now allows.
pub fn owed_within_budget(
    paths: &NodePaths,
    settings: &Settings,
    now: OffsetDateTime,
    counters: &mut Counters,
) -> Vec<String> {
    let owed = crate::act::store::owed::read(paths);
    if owed.is_empty() || !settings.restart.enabled {
        return Vec::new();
    }
    budget(paths, settings, &owed, now, counters)
}

/// After a cycle without failures: prune backups past `backups.keep` / `backups.maxAge`.
pub fn after_cycle(paths: &NodePaths, settings: &Settings, now: OffsetDateTime) -> Vec<String> {
    match prune::prune(paths, &settings.backups, now) {
        Ok(gone) => {
            let shown: Vec<String> = gone.iter().map(|d| paths.show(d)).collect();
            if !shown.is_empty() {
                tracing::info!(
                    MESSAGE_ID = logging::MSG_BACKUPS_PRUNED,
                    ACTION = "prune",
                    RESULT = "ok",
                    "removed {} old backup set(s) (backups.keep: {}, backups.maxAge: {}): {}",
                    shown.len(),
                    settings.backups.keep,
                    days_or_human(settings.backups.max_age),
                    shown.join(", ")
                );
            }
            shown
        }
        Err(e) => {
            tracing::warn!(
                ACTION = "prune",
                RESULT = "failed",
                "pruning backups: {e:#}"
            );
            Vec::new()
        }
    }
}
