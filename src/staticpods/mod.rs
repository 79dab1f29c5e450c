//! Restarting control-plane static pods.

/// Find a process by command line in /proc; its start time.
pub mod process;
/// HTTP(S) health probes.
pub mod probe;
/// Park / unpark / recover: the parking dir is the journal.
pub mod park;
/// The per-component procedure, ordering, rollback.
pub mod restart;
