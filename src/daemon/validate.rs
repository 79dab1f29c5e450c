//! Daemon-only validation: the renewal window must be wide enough that a renewal can never be
//! missed between two scans (kubekey#1506 broke on exactly this).

use crate::config::Settings;
use anyhow::{bail, Result};
use std::time::Duration;

/// The longest a full restart pass can take: four components, each a hold and a wait.
pub fn longest_restart(s: &Settings) -> Duration {
    s.restart.timeout * 8
}

/// Refuse settings where `renewBefore` does not exceed checkInterval + jitter + the longest
/// restart, with a margin of the same again.
pub fn validate(s: &Settings) -> Result<()> {
    let needed = s.check_interval + s.jitter + longest_restart(s);
    if s.renew_before < needed * 2 {
        bail!(
            "renewBefore ({}) must be at least twice checkInterval ({}) + jitter ({}) + the longest restart ({}), i.e. {}; otherwise a certificate could expire between two scans",
            humantime::format_duration(s.renew_before),
            humantime::format_duration(s.check_interval),
            humantime::format_duration(s.jitter),
            humantime::format_duration(longest_restart(s)),
            humantime::format_duration(needed * 2)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_narrow_window_fails() {
        let mut s = Settings::default();
        validate(&s).unwrap();
        s.renew_before = Duration::from_secs(3600);
        let e = validate(&s).unwrap_err().to_string();
        assert!(e.contains("renewBefore"), "{e}");
    }
}
