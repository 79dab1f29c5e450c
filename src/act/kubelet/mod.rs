//! The kubelet's own files: applying `serverTLSBootstrap`, repairing kubelet.conf.

/// kubelet.conf's pre-1.17 embedded client certificate: detection and repair.
pub mod conf;
/// The cluster-wide part of `serverTLSBootstrap` left for when the API answers (issue 17).
pub mod pending;
/// Reviving an expired kubelet client certificate with the cluster CA (issue 13).
pub mod revive;
/// Applying the `serverTLSBootstrap` edit: back up, replace, restart the kubelet.
pub mod serving;
