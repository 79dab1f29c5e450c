//! The guard rails the daemon cycle calls (issue 12): the decisions are pure
//! (`plan::guard`); this reads and writes their state in stateDir and
//! reports each refusal as a [`Notice`] (a standing condition with its MESSAGE_ID). Order in a
//! cycle: [`clock_allows`] before renewing, [`hold`] on the plan, [`remember`] after a
//! renewal, [`budget`] / [`record_restarts`] around restarts, and [`after_cycle`] (pruning)
//! after a cycle without failures.

use crate::act::clock::TimeSource;
use crate::act::metrics::Counters;
use crate::act::renew::Outcome;
use crate::act::store::{prune, stamps};
use crate::config::Settings;
use crate::logging::{self, human_duration, rfc3339};
use crate::node::NodePaths;
use crate::plan::guard::{self, ClockVerdict, Hold};
use crate::plan::scan::Scan;
use crate::plan::{Decision, Plan, Skip};
use time::OffsetDateTime;

/// A duration for people: whole days as `400d`, else humantime.
pub fn days_or_human(d: std::time::Duration) -> String {
    if d.as_secs().is_multiple_of(86_400) && d.as_secs() > 0 {
        format!("{}d", d.as_secs() / 86_400)
    } else {
        human_duration(d)
    }
}

/// Which guard speaks (its level and MESSAGE_ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// Renewals deferred: the clock is unsynchronised (warning).
    ClockDeferred,
    /// Renewing on an unsynchronised clock after `auto`'s wait (warning).
    ClockUnsyncedGo,
    /// Renewals refused: the clock is behind the newest NotBefore (warning).
    ClockBehind,
    /// A due certificate blocked by its CA's runway (warning).
    BlockedByCa,
    /// A due certificate renewed by the daemon within a day (warning).
    RecentlyRenewed,
    /// Such a certificate renewed anyway: it would expire before the hold ends (warning).
    RecentlyRenewedExpiring,
    /// A component's restart budget is spent (error).
    RestartBudget,
}

/// A standing condition a guard reports: the daemon logs it through its conditions (once,
/// then daily while it lasts, and when it clears); `run --once` logs it once.
#[derive(Debug, Clone)]
pub struct Notice {
    /// What speaks.
    pub kind: NoticeKind,
    /// The condition's key (stable while the condition lasts).
    pub key: String,
    /// The message.
    pub text: String,
    /// The certificate or component it is about, if any.
    pub subject: String,
}

impl Notice {
    fn new(kind: NoticeKind, key: String, subject: &str, text: String) -> Notice {
        Notice {
            kind,
            key,
            text,
            subject: subject.to_string(),
        }
    }

    /// Log it, with its level, MESSAGE_ID and fields.
    pub fn log(&self) {
        let (t, s) = (self.text.as_str(), self.subject.as_str());
        match self.kind {
            NoticeKind::ClockDeferred => tracing::warn!(
                MESSAGE_ID = logging::MSG_CLOCK_UNSYNCED,
                ACTION = "renew",
                RESULT = "deferred",
                "{t}"
            ),
            NoticeKind::ClockUnsyncedGo => tracing::warn!(
                MESSAGE_ID = logging::MSG_CLOCK_UNSYNCED,
                ACTION = "renew",
                RESULT = "unsynced",
                "{t}"
            ),
            NoticeKind::ClockBehind => tracing::warn!(
                MESSAGE_ID = logging::MSG_CLOCK_BEHIND,
                ACTION = "renew",
                RESULT = "refused",
                CERT_NAME = s,
                "{t}"
            ),
            NoticeKind::BlockedByCa => tracing::warn!(
                MESSAGE_ID = logging::MSG_BLOCKED_BY_CA,
                ACTION = "renew",
                RESULT = "blocked",
                CERT_NAME = s,
                "{t}"
            ),
            NoticeKind::RecentlyRenewed | NoticeKind::RecentlyRenewedExpiring => tracing::warn!(
                MESSAGE_ID = logging::MSG_RECENTLY_RENEWED,
                ACTION = "renew",
                RESULT = if self.kind == NoticeKind::RecentlyRenewed {
                    "held"
                } else {
                    "expiring"
                },
                CERT_NAME = s,
                "{t}"
            ),
            NoticeKind::RestartBudget => tracing::error!(
                MESSAGE_ID = logging::MSG_RESTART_BUDGET,
                ACTION = "restart",
                RESULT = "budget-exhausted",
                COMPONENT = s,
                "{t}"
            ),
        }
    }
}

/// Whether the clock allows renewing this cycle, and the condition to report if it does not
/// (or if it goes on unsynchronised).
pub fn clock_allows(
    scan: &Scan,
    settings: &Settings,
    now: OffsetDateTime,
    src: &dyn TimeSource,
    counters: &mut Counters,
) -> (bool, Option<Notice>) {
    let v = guard::clock_verdict(
        &src.sync_status(),
        src.since_boot(),
        settings.require_time_sync,
        now,
        guard::newest_not_before(scan),
    );
    counters.guard.clock_deferred = !matches!(v, ClockVerdict::Go | ClockVerdict::GoUnsynced);
    match v {
        ClockVerdict::Go => (true, None),
        ClockVerdict::GoUnsynced => (
            true,
            Some(Notice::new(
                NoticeKind::ClockUnsyncedGo,
                "clock:unsynced".into(),
                "",
                format!(
                    "the kernel still reports the clock unsynchronised {} after boot; renewing anyway (requireTimeSync: auto; set it to true to wait for NTP, false to silence this)",
                    human_duration(crate::config::TIME_SYNC_GRACE)
                ),
            )),
        ),
        ClockVerdict::Defer { why } => (
            false,
            Some(Notice::new(
                NoticeKind::ClockDeferred,
                "clock:deferred".into(),
                "",
                format!("not renewing: {why}; renewals resume once the clock is synchronised"),
            )),
        ),
        ClockVerdict::Behind { name, not_before } => (
            false,
            Some(Notice::new(
                NoticeKind::ClockBehind,
                "clock:behind".into(),
                &name,
                format!(
                    "not renewing: the clock is earlier than {name}'s NotBefore {} minus {}; it went backwards (check NTP, the RTC, a restored VM); renewals resume once it is past that",
                    rfc3339(not_before),
                    human_duration(guard::CLOCK_SKEW)
                ),
            )),
        ),
    }
}

/// Apply the renewal memory to a daemon plan; report what the guards hold back (and set the
/// blocked-by-CA metric).
pub fn hold(
    paths: &NodePaths,
    plan: &mut Plan,
    now: OffsetDateTime,
    check_interval: std::time::Duration,
    counters: &mut Counters,
) -> Vec<Notice> {
    force_due_hook(plan, now);
    let mut out = Vec::new();
    let memory = stamps::read_renewed(paths);
    for r in guard::hold_recent(plan, &memory, now, check_interval) {
        let (name, at) = (r.name, rfc3339(r.at));
        let memory = human_duration(guard::RENEWAL_MEMORY);
        out.push(if r.held {
            Notice::new(
                NoticeKind::RecentlyRenewed,
                format!("recently-renewed:{name}"),
                name,
                format!(
                    "{name} is due again, but the daemon renewed it at {at}, less than {memory} ago; not renewing it again (a loop breaker: check renewBefore, certificateValidity and the CA's end date)"
                ),
            )
        } else {
            let ends = r.not_after.map(rfc3339).unwrap_or_default();
            Notice::new(
                NoticeKind::RecentlyRenewedExpiring,
                format!("recently-renewed-expiring:{name}"),
                name,
                format!(
                    "{name} was renewed by the daemon at {at}, but the certificate on disk now ends at {ends}, before the {memory} loop breaker would let it go (put back by hand or from a backup?); renewing it anyway rather than letting it expire"
                ),
            )
        });
    }
    counters.guard.blocked_by_ca.clear();
    for i in &plan.items {
        let Decision::Skip(Skip::Held(Hold::NoGain { ca, ca_not_after })) = &i.decision else {
            continue;
        };
        let name = i.handler.name;
        counters
            .guard
            .blocked_by_ca
            .insert(name.to_string(), ca.name().to_string());
        out.push(Notice::new(
            NoticeKind::BlockedByCa,
            format!("blocked-by-ca:{name}"),
            name,
            format!(
                "{name} is due but blocked by CA runway: the {} CA ends at {}, so a renewal cannot extend it; not renewing and not restarting. Rotate the {} CA",
                ca.name(),
                rfc3339(*ca_not_after),
                ca.name()
            ),
        ));
    }
    out
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

/// Of `components` (to restart now), those within `restart.maxPerDay`; the rest stay owed
/// and are reported, naming the loop.
pub fn budget(
    paths: &NodePaths,
    settings: &Settings,
    components: &[String],
    now: OffsetDateTime,
    counters: &mut Counters,
) -> (Vec<String>, Vec<Notice>) {
    let history = stamps::read_restarts(paths);
    let max = settings.restart.max_per_day;
    let (allowed, over) = guard::split_budget(components, &history, max, now);
    counters.guard.restart_budget_spent = over.iter().map(|(c, _)| c.clone()).collect();
    let notices = over
        .iter()
        .map(|(c, n)| {
            Notice::new(
                NoticeKind::RestartBudget,
                format!("restart-budget:{c}"),
                c,
                format!(
                    "not restarting {c}: the daemon restarted it {n} times in the last {} (restart.maxPerDay: {max}); something makes it renew again and again, a loop: find it (journalctl -u kubeadm-certd). The restart stays owed: `kubeadm-certd recover` or `kubeadm-certd restart {c}` does it by hand",
                    human_duration(guard::RESTART_WINDOW)
                ),
            )
        })
        .collect();
    (allowed, notices)
}

/// Count restarts (attempts: a failed one disrupts the component too).
pub fn record_restarts(paths: &NodePaths, components: &[String], now: OffsetDateTime) {
    if let Err(e) = stamps::record_restarts(paths, components, now) {
        tracing::warn!("restart history: {e:#}");
    }
}

/// Restarts owed by an earlier cycle (kept back by the budget), split by the budget.
pub fn owed_within_budget(
    paths: &NodePaths,
    settings: &Settings,
    now: OffsetDateTime,
    counters: &mut Counters,
) -> (Vec<String>, Vec<Notice>) {
    let owed = crate::act::store::owed::read(paths);
    if owed.is_empty() || !settings.restart.enabled {
        counters.guard.restart_budget_spent.clear();
        return (Vec::new(), Vec::new());
    }
    // A CA rotation step in flight owns them: it restarts them itself, with its rollback and
    // its halt, first in the cycle (issue 20).
    if crate::act::rotate::inflight::stands(paths).is_some() {
        return (Vec::new(), Vec::new());
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

/// What the guards hold back, for the daemon's STATUS line ("" when nothing).
pub fn status_suffix(c: &Counters) -> String {
    let g = &c.guard;
    let mut s = String::new();
    if g.clock_deferred {
        s.push_str("; renewals deferred: clock, see the journal");
    }
    if !g.blocked_by_ca.is_empty() {
        s.push_str(&format!("; {} blocked by CA runway", g.blocked_by_ca.len()));
    }
    if !g.restart_budget_spent.is_empty() {
        let names: Vec<&str> = g.restart_budget_spent.iter().map(String::as_str).collect();
        s.push_str(&format!("; restart budget spent: {}", names.join(", ")));
    }
    s
}
