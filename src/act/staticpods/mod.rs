//! Restarting control-plane static pods.

/// Park / unpark / recover: the parking dir is the journal.
pub mod park;
/// HTTP(S) health probes.
pub mod probe;
/// Find a process by command line in /proc; its start time.
pub mod process;
/// The per-component procedure, ordering, rollback.
pub mod restart;
