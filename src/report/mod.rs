//! `check-expiration`.

/// Go-compatible formatting: tabwriter, ShortHumanDuration, dates.
pub mod format;
