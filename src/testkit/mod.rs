//! The test kit: kubeadm-shaped nodes in a directory, and stand-in control-plane components
//! that answer like the real ones. Used by `demo` and the tests; never by the daemon.

/// Builds kubeadm-shaped nodes in a directory.
pub mod nodebuilder;
/// Stand-in control-plane components (HTTP(S) servers that load the node's certificates).
pub mod standin;
