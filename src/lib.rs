//! kubeadm-certd: keeps a kubeadm node's certificates from ever expiring.
//!
//! Layers, from the bottom up: reading the node (`node`, `pki`), pure planning
//! (`plan`, `report`), and acting on it (`store`, `renew`, `csr`, `staticpods`, `daemon`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)]

/// The version and git revision, as `--version` prints them.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("KUBEADM_CERTD_GIT_REV"), ")");


/// Command-line definitions (also feed the man page and completions).
pub mod cli;
/// Config file fragments -> defaults -> validated settings.
pub mod config;
/// Stable errors that callers branch on.
pub mod error;
/// Paths, static pod manifests and kubelet config of one node.
pub mod node;
/// Certificates: kubeadm's table, parsing, keys, issuing, file and kubeconfig material.
pub mod pki;
/// `check-expiration`: kubeadm's tables and JSON.
pub mod report;
/// Reading the node's certificates into one snapshot.
pub mod scan;
/// Pure planning: what is due, refused, and which static pods restart.
pub mod plan;
/// Atomic writes, backups, the lock and the commit journal.
pub mod store;
/// Applying a renewal plan: stage, verify, back up, commit.
pub mod renew;
/// Finishing or undoing an interrupted run.
pub mod recover;
/// External-CA flow: `--csr-only` and `install-signed`.
pub mod csr;
/// Restarting static pods by parking their manifests.
pub mod staticpods;
/// Byte-preserving single-value edits of YAML documents.
pub mod yamledit;
/// tracing setup, journald fields and MESSAGE_IDs.
pub mod logging;
/// Builds kubeadm-shaped nodes in a directory (demo and tests).
pub mod nodebuilder;
/// The `demo` command.
pub mod demo;
/// Command dispatch: each subcommand's run function.
pub mod commands;
/// Man pages and shell completions generated from the CLI (packaging).
pub mod assets;
