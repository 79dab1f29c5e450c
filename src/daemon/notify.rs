//! sd_notify, logging failures instead of propagating them (zincati's `utils.rs` idea): a
//! lost notification must never stop the daemon.

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

/// READY=1 with a STATUS line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// STATUS=...
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// RELOADING=1
pub fn reloading() {
    send(&[
        NotifyState::Reloading,
        NotifyState::Status("reloading the configuration"),
    ]);
}

/// WATCHDOG=1
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// STOPPING=1
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Half of WATCHDOG_USEC, when the watchdog is on.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}
