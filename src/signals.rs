//! SIGTERM/SIGINT for the synchronous commands: a flag that long waits poll, so a hold can
//! put its manifest back before the process exits (bootupd's deferred-termination idea).

use std::sync::atomic::{AtomicBool, Ordering};

static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
}

/// Install the handlers. Until then the default action (exit) applies.
pub fn install() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        if let Err(e) = unsafe { sigaction(s, &act) } {
            tracing::warn!("cannot install a handler for {s}: {e}");
        }
    }
}

/// Whether a termination signal arrived.
pub fn terminating() -> bool {
    TERMINATE.load(Ordering::SeqCst)
}

/// Ask the current work to stop (used by the daemon's own signal handling).
pub fn request_termination() {
    TERMINATE.store(true, Ordering::SeqCst);
}

static PROGRESS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Note that long-running work is still making progress (fed to the watchdog).
pub fn heartbeat() {
    PROGRESS.fetch_add(1, Ordering::Relaxed);
}

/// The progress counter.
pub fn progress() -> u64 {
    PROGRESS.load(Ordering::Relaxed)
}
