//! The Kubernetes API, for what only the cluster can do (issue 17): approving the kubelets'
//! serving CSRs, and `serverTLSBootstrap` in kube-system's kubelet-config ConfigMap.
//!
//! It sits beside `cluster/` and knows nothing of the daemon or the CLI. The client works
//! from kubeadm's admin.conf under `--root`, so it exists on control-plane nodes only. The
//! API is a guest: every call is bounded and cancellable, errors come by kind, and nothing
//! that renews or restarts ever waits for it. The approval rules are a pure function in
//! `plan::approve`; this folder only carries out their verdicts.

/// The approver: list, watch, decide, write through `/approval`.
pub mod approver;
/// The kube-rs client: bounded, cancellable calls.
pub mod client;
/// The cluster's ClusterConfiguration (`kube-system/kubeadm-config`).
pub mod cluster_config;
/// Errors by kind.
pub mod error;
/// `serverTLSBootstrap` in the kubelet-config ConfigMap.
pub mod kubelet_config;
/// What the approver counts and whether the API answers (shared with the metrics), and the
/// API-unreachable condition, logged once.
pub mod stats;
/// k8s-openapi objects -> the rules' views.
pub mod views;

pub use client::Kube;
pub use error::KubeError;
