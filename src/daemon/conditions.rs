//! Standing conditions (a refused certificate, an unreadable file, a CA near its end, a
//! missing metrics directory, ...): each is logged when it first appears or changes, then at
//! most once a day while it lasts, and once when it clears. A daemon that repeats itself every
//! cycle buries the one line that matters.

use std::collections::{BTreeMap, BTreeSet};
use time::{Duration, OffsetDateTime};

/// How often a condition that lasts is logged again.
pub const REMINDER: Duration = Duration::days(1);

#[derive(Debug, Clone)]
struct Entry {
    text: String,
    logged_at: OffsetDateTime,
}

/// The conditions seen in the current cycle and the ones still standing from earlier cycles.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    active: BTreeMap<String, Entry>,
    seen: BTreeSet<String>,
}

impl Conditions {
    /// Start a cycle: every condition must be reported again to stay standing.
    pub fn begin(&mut self) {
        self.seen.clear();
    }

    /// Condition `key` holds with `text`: whether to log it now (new, changed, or a day since
    /// it was last logged).
    pub fn holds(&mut self, key: &str, text: &str, now: OffsetDateTime) -> bool {
        self.seen.insert(key.to_string());
        match self.active.get_mut(key) {
            Some(e) if e.text == text && now - e.logged_at < REMINDER => false,
            Some(e) => {
                e.text = text.to_string();
                e.logged_at = now;
                true
            }
            None => {
                self.active.insert(
                    key.to_string(),
                    Entry {
                        text: text.to_string(),
                        logged_at: now,
                    },
                );
                true
            }
        }
    }

    /// Mark `key` as still standing without re-evaluating it (a cycle that could not look).
    pub fn keep(&mut self, key: &str) {
        if self.active.contains_key(key) {
            self.seen.insert(key.to_string());
        }
    }

    /// End a cycle: the conditions not reported since [`Conditions::begin`] have cleared.
    /// Returns their keys and last texts, to be logged once.
    pub fn end(&mut self) -> Vec<(String, String)> {
        let gone: Vec<String> = self
            .active
            .keys()
            .filter(|k| !self.seen.contains(*k))
            .cloned()
            .collect();
        gone.into_iter()
            .filter_map(|k| self.active.remove(&k).map(|e| (k, e.text)))
            .collect()
    }

    /// Whether `key` currently stands.
    pub fn standing(&self, key: &str) -> bool {
        self.active.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn logged_on_appearance_change_reminder_and_clear() {
        let t0 = datetime!(2026-11-29 10:00 UTC);
        let mut c = Conditions::default();
        c.begin();
        assert!(c.holds("a", "x", t0));
        assert!(c.end().is_empty());
        // Same text within a day: silent.
        for h in 1..24 {
            c.begin();
            assert!(!c.holds("a", "x", t0 + Duration::hours(h)));
            assert!(c.end().is_empty());
        }
        // A day later: once more.
        c.begin();
        assert!(c.holds("a", "x", t0 + Duration::hours(24)));
        c.end();
        // Changed text: at once.
        c.begin();
        assert!(c.holds("a", "y", t0 + Duration::hours(25)));
        c.end();
        // Gone: reported cleared, once.
        c.begin();
        assert_eq!(c.end(), vec![("a".to_string(), "y".to_string())]);
        c.begin();
        assert!(c.end().is_empty());
        assert!(!c.standing("a"));
    }

    #[test]
    fn kept_conditions_do_not_clear() {
        let t0 = datetime!(2026-11-29 10:00 UTC);
        let mut c = Conditions::default();
        c.begin();
        c.holds("a", "x", t0);
        c.end();
        c.begin();
        c.keep("a");
        assert!(c.end().is_empty());
        assert!(c.standing("a"));
    }
}
