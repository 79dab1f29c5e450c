//! kubeadm-certd: keeps a kubeadm node's certificates from ever expiring.
//!
//! Layers, from the bottom up: reading the node (`node`, `pki`), pure planning
//! (`plan`, `report`), and acting on it (`store`, `renew`, `csr`, `staticpods`, `daemon`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)]

/// The version and git revision, as `--version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("KUBEADM_CERTD_GIT_REV"),
    ")"
);

/// Man pages and shell completions generated from the CLI (packaging).
pub mod assets;
/// Command-line definitions (also feed the man page and completions).
pub mod cli;
/// HA coordination through the cluster's etcd: restart lock, quorum guard, halt.
pub mod cluster;
/// Command dispatch: each subcommand's run function.
pub mod commands;
/// Config file fragments -> defaults -> validated settings.
pub mod config;
/// External-CA flow: `--csr-only` and `install-signed`.
pub mod csr;
/// The daemon: the run loop, sd_notify, watches.
pub mod daemon;
/// The `demo` command.
pub mod demo;
/// Stable errors that callers branch on.
pub mod error;
/// kubelet.conf's pre-1.17 embedded client certificate: detection and repair.
pub mod kubelet_conf;
/// tracing setup, journald fields and MESSAGE_IDs.
pub mod logging;
/// The node_exporter textfile: x509 and kubeadm-certd metrics.
pub mod metrics;
/// Paths, static pod manifests and kubelet config of one node.
pub mod node;
/// Builds kubeadm-shaped nodes in a directory (demo and tests).
pub mod nodebuilder;
/// Certificates: kubeadm's table, parsing, keys, issuing, file and kubeconfig material.
pub mod pki;
/// Pure planning: what is due, refused, and which static pods restart.
pub mod plan;
/// Finishing or undoing an interrupted run.
pub mod recover;
/// Applying a renewal plan: stage, verify, back up, commit.
pub mod renew;
/// `check-expiration`: kubeadm's tables and JSON.
pub mod report;
/// Which static pods a renewal affects.
pub mod restart_plan;
/// Reading the node's certificates into one snapshot.
pub mod scan;
/// SIGTERM/SIGINT as a flag that long waits poll.
pub mod signals;
/// Stand-in control-plane components for `demo`.
pub mod standin;
/// Restarting static pods by parking their manifests.
pub mod staticpods;
/// Atomic writes, backups, the lock and the commit journal.
pub mod store;
/// `systemctl` on PATH, and waiting for the kubelet to be healthy.
pub mod systemd;
/// Byte-preserving single-value edits of YAML documents.
pub mod yamledit;

/// Hook for `generate-assets` (man page and completions); see the packaging.
pub fn assets_hook(dir: &std::path::Path) -> anyhow::Result<()> {
    assets::generate_assets(dir)
}
