//! kubeadm-certd: keeps a kubeadm node's certificates from ever expiring.
//!
//! The folders are the layers, from the bottom up. A folder imports only from folders above
//! it in this list (`scripts/check-layers` checks the rules with grep):
//!
//! - `node/`: reading the node: paths under `--root`, bounded reads, manifests, kubelet config,
//!   byte-preserving YAML edits computed as text (never written here).
//! - `pki/`: kubeadm's certificate table, x509 inspection, keys, issuing in memory, the
//!   PKI-file / kubeconfig material, external-CA rules.
//! - `plan/`: pure decisions: scan the node into a snapshot, plan what is due or refused,
//!   which static pods restart and in which order, and the check-expiration report.
//! - `act/`: every side effect, each behind a seam: store (atomic writes, backups, journal,
//!   lock), renew, CSRs, recover, static-pod restarts, kubelet edits, systemctl, metrics.
//! - `cluster/`: coordination with the other control-plane nodes through the cluster's etcd
//!   (restart lock, quorum guard, halt record). It sits beside `act/`: it implements the
//!   restart `Gate` that `act::staticpods` defines and writes through `act::store`, and
//!   `act::restart` runs a node's restart sequence under it. It knows nothing of the CLI or
//!   the daemon.
//! - `kube/`: the Kubernetes API (kube-rs, from admin.conf under `--root`): the kubelet serving
//!   CSR approver, which carries out `plan::approve`'s verdicts, and `serverTLSBootstrap` in
//!   the kubelet-config ConfigMap. Beside `cluster/`: it imports reading and planning code,
//!   `config`, `logging` and `act::cancel`, and nothing of the daemon or the CLI.
//! - `daemon/`: the tokio loop: timer, watches, signals, sd_notify.
//! - `cli/`: clap definitions, one file per command, generated assets, the demo.
//! - `testkit/`: kubeadm-shaped nodes and stand-in components (demo and tests).
//!
//! Three root modules serve every layer: `config` (settings), `logging` (journald fields and
//! MESSAGE_IDs) and `context` (what the daemon and the CLI share: settings + paths, the clock,
//! signal handling).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)]

/// The version and git revision, as `--version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("KUBEADM_CERTD_GIT_REV"),
    ")"
);

/// Side effects: writing files, restarting pods and the kubelet, metrics.
pub mod act;
/// Command line: arguments, one module per command, generated assets, the demo.
pub mod cli;
/// HA coordination through the cluster's etcd: restart lock, quorum guard, halt record.
pub mod cluster;
/// Config file fragments -> defaults -> validated settings.
pub mod config;
/// What the daemon and the CLI share: loaded settings and paths, the clock, signals.
pub mod context;
/// The daemon: the run loop, sd_notify, watches.
pub mod daemon;
/// The Kubernetes API: the kubelet serving CSR approver, the kubelet-config ConfigMap.
pub mod kube;
/// tracing setup, journald fields and MESSAGE_IDs.
pub mod logging;
/// Reading the node: paths, manifests, kubelet config, YAML text edits.
pub mod node;
/// Certificates: kubeadm's table, parsing, keys, issuing, file and kubeconfig material.
pub mod pki;
/// Pure planning: scan, what is due or refused, which static pods restart, the report.
pub mod plan;
/// Builds kubeadm-shaped nodes and runs stand-in components (demo and tests).
pub mod testkit;
