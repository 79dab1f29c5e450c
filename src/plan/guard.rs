//! Guard rails (issue 12), as pure decisions: an unattended daemon must never loop, flood the
//! disk, or sign with a wrong clock. The state they read (renewal memory, restart history,
//! backup sets, the kernel's sync status) is gathered by `act::guard` and passed in.

use crate::config::TimeSync;
use crate::pki::table::CaId;
use crate::plan::scan::Scan;
use crate::plan::{Decision, Plan, Skip};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

/// The daemon does not renew a certificate again within this long of renewing it.
pub const RENEWAL_MEMORY: Duration = Duration::from_secs(86_400);
/// Restarts are counted over this window.
pub const RESTART_WINDOW: Duration = Duration::from_secs(86_400);
/// kubeadm backdates NotBefore by this much; a clock earlier than the newest NotBefore minus
/// this has gone backwards.
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Why a due certificate is held back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Renewing would not move NotAfter by at least checkInterval: the CA's NotAfter clamps it.
    NoGain {
        /// The CA whose end blocks it.
        ca: CaId,
        /// That CA's NotAfter.
        ca_not_after: OffsetDateTime,
    },
    /// The daemon renewed it less than [`RENEWAL_MEMORY`] ago.
    RecentlyRenewed {
        /// When.
        at: OffsetDateTime,
    },
}

/// Whether a renewal from `old` to `new` NotAfter gains at least one `check_interval`.
pub fn gains(old: OffsetDateTime, new: OffsetDateTime, check_interval: Duration) -> bool {
    new - old >= check_interval
}

/// The no-gain rule for a due certificate; `None` when renewing gains enough.
pub fn no_gain(
    old: OffsetDateTime,
    new: OffsetDateTime,
    ca: CaId,
    ca_not_after: OffsetDateTime,
    check_interval: Duration,
) -> Option<Hold> {
    (!gains(old, new, check_interval)).then_some(Hold::NoGain { ca, ca_not_after })
}

/// When `last` (the daemon's last renewal) is too recent to renew again. A time in the
/// future also holds: the clock went backwards, and the clock check reports that.
pub fn recently_renewed(last: Option<OffsetDateTime>, now: OffsetDateTime) -> Option<Hold> {
    let at = last?;
    (now - at < RENEWAL_MEMORY).then_some(Hold::RecentlyRenewed { at })
}

/// A due certificate the daemon renewed less than [`RENEWAL_MEMORY`] ago.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recent {
    /// The certificate.
    pub name: &'static str,
    /// When the daemon renewed it.
    pub at: OffsetDateTime,
    /// The NotAfter of the certificate on disk now.
    pub not_after: Option<OffsetDateTime>,
    /// Held back (a loop), or renewed anyway because it would expire before the hold ends.
    pub held: bool,
}

/// Turn renewals of recently renewed certificates into holds. The loop breaker must not cause
/// the outage it guards against: a certificate that would expire before the hold ends (plus
/// `margin`, one check interval) is renewed anyway. The daemon's own renewals never end that
/// soon (the config and no-gain guards refuse it), so that is a certificate put back by
/// hand or by a restored backup, not a loop.
pub fn hold_recent(
    plan: &mut Plan,
    memory: &BTreeMap<String, OffsetDateTime>,
    now: OffsetDateTime,
    margin: Duration,
) -> Vec<Recent> {
    let mut out = Vec::new();
    for i in &mut plan.items {
        if !matches!(i.decision, Decision::Renew { .. }) {
            continue;
        }
        let Some(Hold::RecentlyRenewed { at }) =
            recently_renewed(memory.get(i.handler.name).copied(), now)
        else {
            continue;
        };
        let expires_while_held = i
            .old_not_after
            .is_some_and(|t| t <= at + RENEWAL_MEMORY + margin);
        let held = !expires_while_held;
        if held {
            i.decision = Decision::Skip(Skip::Held(Hold::RecentlyRenewed { at }));
        }
        out.push(Recent {
            name: i.handler.name,
            at,
            not_after: i.old_not_after,
            held,
        });
    }
    out
}

/// Restarts inside the window ending at `now`.
pub fn recent_restarts(history: &[OffsetDateTime], now: OffsetDateTime) -> usize {
    history
        .iter()
        .filter(|t| now - **t < RESTART_WINDOW && **t <= now + RESTART_WINDOW)
        .count()
}

/// Split the components to restart into those within the budget and those past it (with
/// how many restarts they had in the window).
pub fn split_budget(
    components: &[String],
    history: &BTreeMap<String, Vec<OffsetDateTime>>,
    max_per_day: u32,
    now: OffsetDateTime,
) -> (Vec<String>, Vec<(String, usize)>) {
    let mut allowed = Vec::new();
    let mut over = Vec::new();
    for c in components {
        let n = history.get(c).map(|h| recent_restarts(h, now)).unwrap_or(0);
        if n < max_per_day as usize {
            allowed.push(c.clone());
        } else {
            over.push((c.clone(), n));
        }
    }
    (allowed, over)
}

/// What the kernel says about the clock (`adjtimex`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStatus {
    /// Synchronised (no STA_UNSYNC, not TIME_ERROR).
    Synced,
    /// STA_UNSYNC set or TIME_ERROR returned.
    Unsynced,
    /// adjtimex failed; the reason.
    Unknown(String),
}

/// Whether the daemon may renew now, as far as the clock goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockVerdict {
    /// Go on.
    Go,
    /// Unsynchronised, but `auto` has waited long enough after boot: go on, with a warning.
    GoUnsynced,
    /// Unsynchronised: do not renew this cycle.
    Defer {
        /// Why, for the log.
        why: String,
    },
    /// The clock reads earlier than the newest NotBefore minus [`CLOCK_SKEW`].
    Behind {
        /// The certificate with the newest NotBefore.
        name: String,
        /// Its NotBefore.
        not_before: OffsetDateTime,
    },
}

/// The newest NotBefore among the node's own certificates (kubeadm's leaves and the CAs).
pub fn newest_not_before(scan: &Scan) -> Option<(String, OffsetDateTime)> {
    let leaves = scan.certs.iter().filter_map(|e| {
        let l = e.state.as_ref().ok()?.as_ref()?;
        Some((e.handler.name.to_string(), l.leaf.not_before))
    });
    let cas = scan.cas.iter().filter_map(|(id, ca)| {
        let c = ca.as_ref().ok()?.cert.as_ref()?;
        Some((id.name().to_string(), c.not_before))
    });
    leaves.chain(cas).max_by_key(|(_, t)| *t)
}

/// The clock rules: never renew with the clock behind the newest NotBefore (it went
/// backwards); while unsynchronised, wait (`true`), wait up to [`crate::config::TIME_SYNC_GRACE`]
/// after boot (`auto`), or go on (`false`).
pub fn clock_verdict(
    status: &SyncStatus,
    since_boot: Option<Duration>,
    mode: TimeSync,
    now: OffsetDateTime,
    newest: Option<(String, OffsetDateTime)>,
) -> ClockVerdict {
    if let Some((name, nb)) = newest {
        if now < nb - CLOCK_SKEW {
            return ClockVerdict::Behind {
                name,
                not_before: nb,
            };
        }
    }
    let unsynced = match status {
        SyncStatus::Synced => return ClockVerdict::Go,
        SyncStatus::Unsynced => "the kernel reports the clock unsynchronised (adjtimex)".into(),
        SyncStatus::Unknown(e) => format!("cannot read the clock's sync status ({e})"),
    };
    match mode {
        TimeSync::Off => ClockVerdict::Go,
        TimeSync::Required => ClockVerdict::Defer {
            why: format!("{unsynced}; requireTimeSync is true"),
        },
        TimeSync::Auto => match since_boot {
            Some(b) if b < crate::config::TIME_SYNC_GRACE => ClockVerdict::Defer {
                why: format!(
                    "{unsynced}, {} after boot; waiting up to {} for time sync (requireTimeSync: auto)",
                    crate::logging::human_duration(Duration::from_secs(b.as_secs())),
                    crate::logging::human_duration(crate::config::TIME_SYNC_GRACE)
                ),
            },
            _ => ClockVerdict::GoUnsynced,
        },
    }
}

/// One backup set, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSet {
    /// Directory name (`20261129T104237Z` or with a `-N` suffix).
    pub name: String,
    /// When it was made, from its name; `None` for a name kubeadm-certd does not write.
    pub made: Option<OffsetDateTime>,
}

/// Why a backup set is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    /// The newest set, kept whatever its age.
    Newest,
    /// Among the newest `backups.keep` and younger than `backups.maxAge`.
    Retained,
    /// Something recovery may still need (a journal, a key matching a current certificate).
    Needed(String),
    /// Not a name kubeadm-certd writes: never touched.
    Foreign,
}

/// Parse a backup directory name (`YYYYMMDDTHHMMSSZ`, optionally `-N`).
pub fn backup_time(name: &str) -> Option<OffsetDateTime> {
    let stamp = name.split('-').next()?;
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(stamp, &fmt)
        .ok()
        .map(|t| t.assume_utc())
}

/// Decide which sets to keep: `sets` newest first; `needed` maps set names to the reason
/// recovery may need them. `None` means the set may be deleted.
pub fn retention(
    sets: &[BackupSet],
    keep: usize,
    max_age: Duration,
    now: OffsetDateTime,
    needed: &BTreeMap<String, String>,
) -> Vec<Option<Keep>> {
    let mut ours = 0usize;
    sets.iter()
        .map(|s| {
            let Some(made) = s.made else {
                return Some(Keep::Foreign);
            };
            ours += 1;
            if ours == 1 {
                Some(Keep::Newest)
            } else if let Some(why) = needed.get(&s.name) {
                Some(Keep::Needed(why.clone()))
            } else {
                (ours <= keep && now - made <= max_age).then_some(Keep::Retained)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
