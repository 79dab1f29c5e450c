//! The kubelet's own files: applying `serverTLSBootstrap`, repairing kubelet.conf.

/// kubelet.conf's pre-1.17 embedded client certificate: detection and repair.
pub mod conf;
/// Applying the `serverTLSBootstrap` edit: back up, replace, restart the kubelet.
pub mod serving;
