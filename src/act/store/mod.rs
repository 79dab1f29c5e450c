//! Writing to the node safely: atomic replacement, backups, the lock, and the commit journal
//! that `recover` reads after a crash.

/// Temp file in the same directory, fsync, rename, fsync the directory.
pub mod atomic;
/// Copies of old material under `<stateDir>/backups/<UTC timestamp>/`.
pub mod backup;
/// The journal of an in-flight commit, and recovery from it.
pub mod journal;
/// The node lock that keeps two runs apart while one changes the node, and waiting for it.
pub mod lock;
/// Restarts owed by a commit that a crash may have interrupted.
pub mod owed;
/// Which backup sets are kept, and pruning the rest.
pub mod prune;
/// Timestamps for the guard rails: renewal memory and restart history.
pub mod stamps;
