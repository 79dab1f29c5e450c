//! Finding control-plane processes through procfs, and telling whether a
//! process we saw earlier is still the same process (pids get reused).
//!
//! Hand-written rather than the `procfs` crate: two files per pid (`cmdline`, and `stat`'s
//! start time after the last `)`) under a root that tests point at, where procfs would bring
//! a large API for it; the one subtle parse is unit-tested below.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use nix::unistd::{sysconf, SysconfVar};

/// The default proc root.
pub const PROC_ROOT: &str = "/proc";

/// One process, identified by pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcInfo {
    /// Process id.
    pub pid: i32,
    /// Wall-clock start time: boot time + start ticks (second granularity from `btime`).
    pub start_time: SystemTime,
    /// `/proc/<pid>/stat` field 22, clock ticks after boot. Unlike `start_time` it
    /// does not move when the wall clock is stepped, so identity checks use it.
    pub start_ticks: u64,
}

/// Processes whose `/proc/<pid>/cmdline`, split on NUL, equals `argv` exactly.
/// Processes that exit while being read are skipped.
pub fn find_by_cmdline(proc_root: &Path, argv: &[String]) -> io::Result<Vec<ProcInfo>> {
    let boot = boot_time(proc_root)?;
    let tck = clock_ticks()?;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(proc_root)? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = match std::fs::read(entry.path().join("cmdline")) {
            Ok(c) => c,
            Err(e) if vanished(&e) => continue,
            Err(e) => return Err(e),
        };
        if !cmdline_equals(&cmdline, argv) {
            continue;
        }
        match read_start_ticks(proc_root, pid) {
            Ok((ticks, _)) => found.push(ProcInfo {
                pid,
                start_time: boot + ticks_to_duration(ticks, tck),
                start_ticks: ticks,
            }),
            Err(e) if vanished(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    found.sort_by_key(|p| (p.start_ticks, p.pid));
    Ok(found)
}

/// Reads one process's identity.
pub fn proc_info(proc_root: &Path, pid: i32) -> io::Result<ProcInfo> {
    let (ticks, _) = read_start_ticks(proc_root, pid)?;
    Ok(ProcInfo {
        pid,
        start_time: boot_time(proc_root)? + ticks_to_duration(ticks, clock_ticks()?),
        start_ticks: ticks,
    })
}

/// True if `p.pid` still runs and is the same process (same start ticks).
/// Zombies count as gone: they have exited and only wait to be reaped.
pub fn is_alive(proc_root: &Path, p: &ProcInfo) -> bool {
    match read_start_ticks(proc_root, p.pid) {
        Ok((ticks, state)) => ticks == p.start_ticks && !matches!(state, 'Z' | 'X' | 'x'),
        Err(_) => false,
    }
}

/// The process is gone (or hidden from us); not an error when scanning.
fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.kind() == io::ErrorKind::PermissionDenied
        || e.raw_os_error() == Some(nix::libc::ESRCH)
}

/// cmdline is NUL-terminated arguments; an empty cmdline (kernel thread, zombie) never matches.
fn cmdline_equals(raw: &[u8], argv: &[String]) -> bool {
    if raw.is_empty() {
        return false;
    }
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    let mut parts = raw.split(|b| *b == 0);
    let mut wanted = argv.iter();
    loop {
        match (parts.next(), wanted.next()) {
            (None, None) => return true,
            (Some(got), Some(want)) if got == want.as_bytes() => {}
            _ => return false,
        }
    }
}

/// (starttime, state) from `/proc/<pid>/stat`. The command name may contain spaces
/// and parentheses, so fields are counted after the last ')'.
fn read_start_ticks(proc_root: &Path, pid: i32) -> io::Result<(u64, char)> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat"))?;
    parse_stat(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unparsable /proc/{pid}/stat"),
        )
    })
}

fn parse_stat(stat: &str) -> Option<(u64, char)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    // Field 3 (state) is the first after ')'; field 22 (starttime) is 19 further.
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// `btime` from `<proc_root>/stat`: boot time in seconds since the epoch.
fn boot_time(proc_root: &Path) -> io::Result<SystemTime> {
    let stat = std::fs::read_to_string(proc_root.join("stat"))?;
    let secs = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no btime in /proc/stat"))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

fn clock_ticks() -> io::Result<u64> {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => Ok(t.unsigned_abs()),
        Ok(_) => Err(io::Error::other("sysconf(CLK_TCK) returned no value")),
        Err(e) => Err(io::Error::from(e)),
    }
}

fn ticks_to_duration(ticks: u64, per_sec: u64) -> Duration {
    let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(per_sec.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_awkward_comm() {
        let stat = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
        assert_eq!(parse_stat(stat), Some((98765, 'S')));
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn cmdline_comparison() {
        let argv: Vec<String> = ["sleep", "10", ""].iter().map(|s| s.to_string()).collect();
        assert!(cmdline_equals(b"sleep\x0010\x00\x00", &argv));
        assert!(!cmdline_equals(b"sleep\x0010\x00", &argv));
        assert!(!cmdline_equals(b"sleep\x0010\x00\x00x\x00", &argv));
        assert!(!cmdline_equals(b"", &[]));
        assert!(cmdline_equals(b"sleep\x00", &argv[..1]));
    }

    #[test]
    fn fake_proc_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stat"), "cpu 1 2 3\nbtime 1700000000\n").unwrap();
        std::fs::create_dir(dir.path().join("self")).unwrap();
        for (pid, argv, start) in [
            (10, "etcd\0--a=b\0", 500),
            (11, "etcd\0", 600),
            (12, "etcd\0--a=b\0", 700),
        ] {
            let p = dir.path().join(pid.to_string());
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("cmdline"), argv).unwrap();
            let stat = format!("{pid} (etcd) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0");
            std::fs::write(p.join("stat"), stat).unwrap();
        }
        // A pid directory without files behaves like a process that just exited.
        std::fs::create_dir(dir.path().join("13")).unwrap();
        let argv = vec!["etcd".to_string(), "--a=b".to_string()];
        let found = find_by_cmdline(dir.path(), &argv).unwrap();
        assert_eq!(
            found.iter().map(|p| p.pid).collect::<Vec<_>>(),
            vec![10, 12]
        );
        let tck = clock_ticks().unwrap();
        let expected = SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_700_000_000)
            + ticks_to_duration(500, tck);
        assert_eq!(found[0].start_time, expected);
        assert!(is_alive(dir.path(), &found[0]));
        // Same pid, different start: the pid was reused.
        let reused = ProcInfo {
            start_ticks: 501,
            ..found[0]
        };
        assert!(!is_alive(dir.path(), &reused));
        std::fs::remove_dir_all(dir.path().join("12")).unwrap();
        assert!(!is_alive(dir.path(), &found[1]));
    }

    #[test]
    fn finds_a_real_child_and_sees_it_die() {
        let token = format!(
            "{}.{}",
            std::process::id(),
            rand::random::<u32>() % 100_000 + 1000
        );
        let mut child = std::process::Command::new("sleep")
            .arg(&token)
            .spawn()
            .unwrap();
        let proc_root = Path::new(PROC_ROOT);
        // exec may not have happened yet; the test is bounded by the loop count, not by time.
        let argv = vec!["sleep".to_string(), token.clone()];
        let mut found = Vec::new();
        for _ in 0..500 {
            found = find_by_cmdline(proc_root, &argv).unwrap();
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(found.len(), 1, "{found:?}");
        let info = found[0];
        assert_eq!(info.pid, child.id() as i32);
        assert_eq!(proc_info(proc_root, info.pid).unwrap(), info);
        assert!(is_alive(proc_root, &info));
        let now = SystemTime::now();
        // btime has whole-second granularity, so allow that much slack around now.
        assert!(info.start_time <= now + Duration::from_secs(2));
        assert!(info.start_time + Duration::from_secs(120) >= now);

        child.kill().unwrap();
        // Killed but not yet reaped: a zombie is not alive.
        for _ in 0..500 {
            if !is_alive(proc_root, &info) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!is_alive(proc_root, &info));
        child.wait().unwrap();
        assert!(!is_alive(proc_root, &info));
        assert!(find_by_cmdline(proc_root, &argv).unwrap().is_empty());
    }
}
