//! The daemon's heap between cycles. glibc's malloc gives every thread that allocates an arena
//! of its own (up to 8 per core), and keeps freed memory in them: a cycle's threads (the cycle
//! itself, the scan, key generation, an etcd client) would each leave a partly used arena
//! behind for the daemon's whole life. Two arenas are plenty for a process that is idle nearly
//! all the time (`mallopt(M_ARENA_MAX)`, the knob MALLOC_ARENA_MAX sets), and after each cycle
//! what was freed goes back to the kernel (`malloc_trim`). glibc only: other C libraries (musl)
//! have neither knob nor the per-thread arenas.

/// At most this many malloc arenas.
const ARENAS: i32 = 2;

/// Limit the malloc arenas; call before the first thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of glibc's allocator; it is called while the
    // process has a single thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Give the memory freed by a cycle back to the kernel.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it takes the arenas'
    // locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How long the daemon must have been quiet (no cycle, no call to the API, no watch event)
/// before its executable's pages are released.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(3);

/// How long the runtime's blocking thread (the one a cycle ran on) lingers: less than
/// [`SETTLE`], so that its exit happens before the release.
pub const BLOCKING_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(1);

/// Release the pages of the daemon's own executable once it goes idle.
///
/// Why: measured in BENCHMARKS.md ("Idle footprint"), nearly all of an idle daemon's RSS is
/// its executable's clean file pages (RssFile), not its own memory (RssAnon, ~1.5 MiB). A
/// cycle runs code spread over the whole binary (scan, x509, YAML, TLS, metrics), and the
/// kernel maps file pages around each fault (fault-around, large page-cache folios): after
/// one cycle 14 of the 20 MB executable were resident on Linux 6.18, and stayed so between
/// cycles.
///
/// How: `madvise(MADV_PAGEOUT)` (Linux >= 5.4) on the executable's read-only mappings as
/// /proc/self/smaps lists them, skipping any that hold anonymous pages (the relocated RELRO
/// segment: paging those out would push them to swap). The kernel unmaps the pages from
/// this process and tries to reclaim the clean ones that no other process maps; what it
/// keeps in the page cache costs nothing to map back. The kernel lets a process page out
/// file pages only of files it owns or could write (mm/madvise.c `can_do_file_pageout`): the
/// packaged daemon runs as root on a root-owned /usr/bin/kubeadm-certd. Elsewhere, on older
/// kernels and off Linux, this does nothing (a debug line says why).
///
/// The cost: what runs next maps its code back (minor faults, or reads from disk when the
/// kernel did reclaim the pages): a few milliseconds of CPU per cycle, measured in the
/// benchmark with and without. The config key `idlePageout: false` turns it off.
pub fn release_executable() {
    #[cfg(target_os = "linux")]
    linux::release_executable();
}

#[cfg(target_os = "linux")]
mod linux {
    /// One mapping of /proc/self/smaps: its range, whether it is writable, its backing
    /// path, and its Rss and Anonymous sizes in KiB.
    #[derive(Debug, PartialEq, Eq)]
    pub(super) struct Mapping {
        pub start: usize,
        pub end: usize,
        pub writable: bool,
        pub path: String,
        pub rss_kib: u64,
        pub anon_kib: u64,
    }

    /// Parse smaps: a header line per mapping (`start-end perms offset dev inode [path]`),
    /// then `Key: value kB` lines.
    pub(super) fn parse_smaps(text: &str) -> Vec<Mapping> {
        let mut maps: Vec<Mapping> = Vec::new();
        for line in text.lines() {
            let mut f = line.splitn(6, ' ');
            let first = f.next().unwrap_or("");
            if let Some((a, b)) = first.split_once('-') {
                let (Ok(start), Ok(end)) =
                    (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                else {
                    continue;
                };
                let perms = f.next().unwrap_or("");
                let path = f.nth(3).unwrap_or("").trim_start().to_string();
                maps.push(Mapping {
                    start,
                    end,
                    writable: perms.contains('w'),
                    path,
                    rss_kib: 0,
                    anon_kib: 0,
                });
                continue;
            }
            let kib = || {
                line.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if let Some(m) = maps.last_mut() {
                match first {
                    "Rss:" => m.rss_kib = kib(),
                    "Anonymous:" => m.anon_kib = kib(),
                    _ => {}
                }
            }
        }
        maps
    }

    /// The mappings of `exe` that can be paged out: read-only, file pages only, resident.
    pub(super) fn candidates<'a>(maps: &'a [Mapping], exe: &str) -> Vec<&'a Mapping> {
        maps.iter()
            .filter(|m| m.path == exe && !m.writable && m.anon_kib == 0 && m.rss_kib > 0)
            .collect()
    }

    pub(super) fn release_executable() {
        let (Ok(exe), Ok(smaps)) = (
            std::fs::read_link("/proc/self/exe"),
            std::fs::read_to_string("/proc/self/smaps"),
        ) else {
            return;
        };
        let exe = exe.display().to_string();
        let maps = parse_smaps(&smaps);
        let mut kib = 0;
        for m in candidates(&maps, &exe) {
            // SAFETY: advice on a mapping of this process's own executable, which stays
            // mapped; MADV_PAGEOUT changes no content (clean file pages are read back on
            // the next access).
            let r = unsafe {
                libc::madvise(
                    m.start as *mut libc::c_void,
                    m.end - m.start,
                    libc::MADV_PAGEOUT,
                )
            };
            if r != 0 {
                // EINVAL before Linux 5.4: nothing to do, now or later.
                let e = std::io::Error::last_os_error();
                tracing::debug!("idle: the executable's pages stay mapped (madvise: {e})");
                return;
            }
            kib += m.rss_kib;
        }
        tracing::debug!("idle: released {kib} KiB of the executable's resident pages");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn only_the_executables_clean_read_only_mappings_are_candidates() {
        let smaps = "\
55d0a0000000-55d0a0400000 r--p 00000000 fe:00 42                         /usr/bin/kubeadm certd
Rss:                3624 kB
Anonymous:             0 kB
55d0a0400000-55d0a1200000 r-xp 00400000 fe:00 42                         /usr/bin/kubeadm certd
Rss:               12904 kB
Anonymous:             0 kB
55d0a1200000-55d0a1290000 r--p 01200000 fe:00 42                         /usr/bin/kubeadm certd
Rss:                 600 kB
Anonymous:           600 kB
55d0a1290000-55d0a1295000 rw-p 01290000 fe:00 42                         /usr/bin/kubeadm certd
Rss:                  20 kB
Anonymous:            20 kB
7f00a0000000-7f00a0100000 r-xp 00026000 fe:00 7                          /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 948 kB
Anonymous:             0 kB
7f00a0200000-7f00a0300000 rw-p 00000000 00:00 0 
Rss:                 208 kB
Anonymous:           208 kB
";
        let maps = linux::parse_smaps(smaps);
        assert_eq!(maps.len(), 6);
        assert_eq!(maps[5].path, "");
        let c = linux::candidates(&maps, "/usr/bin/kubeadm certd");
        let ranges: Vec<(usize, u64)> = c.iter().map(|m| (m.start, m.rss_kib)).collect();
        assert_eq!(ranges, [(0x55d0a0000000, 3624), (0x55d0a0400000, 12904)]);
    }
}
