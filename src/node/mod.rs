//! The node: where its files are and how its kubelet and static pods are configured.

/// The cluster's ClusterConfiguration: parsing it, its endpoint, the copy in `<stateDir>`.
pub mod cluster_config;
/// Bounded, symlink-aware reads of node files.
pub mod fsread;
/// This host for the CSR approver's own-node check: interfaces (a seam), hostname, FQDN.
pub mod host;
/// The kubelet config: reading it, and the single-key edit.
pub mod kubelet;
/// The kubelet config's `serverTLSBootstrap` edit, and applying the setting.
pub mod kubelet_edit;
/// The kubelet's certificate store layout: dated client pems and the current link.
pub mod kubelet_pki;
/// Static pod manifests: files each component uses, its probe, its command line.
pub mod manifests;
/// Every path of one node, resolved under a root.
pub mod paths;
/// Kubernetes release numbers, and the one the kube-apiserver manifest's image names.
pub mod version;
/// Byte-preserving single-value edits of YAML documents, computed as text.
pub mod yamledit;
/// Guards node YAML against pathological nesting before parsing.
pub mod yamlguard;

pub use paths::NodePaths;
