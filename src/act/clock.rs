//! The kernel's view of the clock, behind a seam: whether NTP (or chrony, or
//! systemd-timesyncd) has synchronised it (`adjtimex`), and how long ago the machine booted.

use crate::plan::guard::SyncStatus;
use std::time::Duration;

/// Where the clock's sync status and the time since boot come from.
pub trait TimeSource {
    /// `adjtimex` status.
    fn sync_status(&self) -> SyncStatus;
    /// Time since boot (CLOCK_BOOTTIME), if readable.
    fn since_boot(&self) -> Option<Duration>;
}

/// The running kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Kernel;

impl TimeSource for Kernel {
    fn sync_status(&self) -> SyncStatus {
        // Tests of the binary set FAILPOINTS=clock::adjtimex=return(unsync) (or sync).
        fail::fail_point!("clock::adjtimex", |arg| match arg.as_deref() {
            Some("sync") => SyncStatus::Synced,
            Some("unsync") => SyncStatus::Unsynced,
            other => SyncStatus::Unknown(format!("failpoint {other:?}")),
        });
        adjtimex_status()
    }

    fn since_boot(&self) -> Option<Duration> {
        fail::fail_point!("clock::since-boot", |arg| arg
            .and_then(|s| humantime::parse_duration(&s).ok()));
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own and pass by pointer.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        if rc != 0 {
            return None;
        }
        Some(Duration::new(
            u64::try_from(ts.tv_sec).ok()?,
            u32::try_from(ts.tv_nsec).ok()?,
        ))
    }
}

/// Read (never set: `modes` is 0) the kernel's time status.
fn adjtimex_status() -> SyncStatus {
    // SAFETY: an all-zero timex is a valid argument; modes = 0 only reads.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: adjtimex fills the struct we own.
    let rc = unsafe { libc::adjtimex(&mut tx) };
    if rc < 0 {
        return SyncStatus::Unknown(std::io::Error::last_os_error().to_string());
    }
    if rc == libc::TIME_ERROR || tx.status & libc::STA_UNSYNC != 0 {
        SyncStatus::Unsynced
    } else {
        SyncStatus::Synced
    }
}

/// A fixed answer, for tests and the demo.
#[derive(Debug, Clone)]
pub struct Fixed {
    /// What `sync_status` returns.
    pub status: SyncStatus,
    /// What `since_boot` returns.
    pub since_boot: Option<Duration>,
}

impl TimeSource for Fixed {
    fn sync_status(&self) -> SyncStatus {
        self.status.clone()
    }
    fn since_boot(&self) -> Option<Duration> {
        self.since_boot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_answers() {
        // Whatever the host's state, adjtimex in read mode works without privileges.
        let s = Kernel.sync_status();
        assert!(
            matches!(s, SyncStatus::Synced | SyncStatus::Unsynced),
            "{s:?}"
        );
        assert!(Kernel.since_boot().is_some_and(|d| d > Duration::ZERO));
    }
}
