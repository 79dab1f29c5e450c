//! The acting layer: everything that changes the node. Each external system sits behind a
//! narrow seam (the root, the clock passed in as `now`, a [`cancel::Cancel`] handle instead
//! of global signal flags, `systemctl` found on PATH).

/// A cancel/progress handle that long waits poll instead of global signal flags.
pub mod cancel;
/// The kernel's clock status (`adjtimex`) and time since boot, behind a seam.
pub mod clock;
/// Keeping the cluster's ClusterConfiguration in the state dir.
pub mod cluster_config;
/// External-CA flow: `--csr-only` and `install-signed`.
pub mod csr;
/// Guard rails the daemon cycle calls: clock, renewal memory, restart budget, pruning.
pub mod guard;
/// Which kubeadm release the node follows: cached ClusterConfiguration, manifest, binary.
pub mod kubeadm_version;
/// kubelet files: the serverTLSBootstrap edit and the kubelet.conf repair.
pub mod kubelet;
/// The node_exporter textfile: x509 and kubeadm-certd metrics.
pub mod metrics;
/// Finishing or undoing an interrupted run.
pub mod recover;
/// Applying a renewal plan: stage, verify, back up, commit.
pub mod renew;
/// Restarting the static pods a renewal affects, with rollback to its backup.
pub mod restart;
/// CA rotation (phase 1: the etcd CA): a node's steps, the record, starting and aborting.
pub mod rotate;
/// Restarting static pods by parking their manifests.
pub mod staticpods;
/// Atomic writes, backups, the lock and the commit journal.
pub mod store;
/// `systemctl` on PATH, and waiting for the kubelet to be healthy.
pub mod systemd;
