//! The node: where its files are and how its kubelet and static pods are configured.

/// Bounded, symlink-aware reads of node files.
pub mod fsread;
/// The kubelet config: reading it, and the single-key edit.
pub mod kubelet;
/// The kubelet config's `serverTLSBootstrap` edit, and applying the setting.
pub mod kubelet_edit;
/// Static pod manifests: files each component uses, its probe, its command line.
pub mod manifests;
/// Every path of one node, resolved under a root.
pub mod paths;
/// Byte-preserving single-value edits of YAML documents, computed as text.
pub mod yamledit;
/// Guards node YAML against pathological nesting before parsing.
pub mod yamlguard;

pub use paths::NodePaths;
