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
