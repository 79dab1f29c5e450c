//! The test kit: kubeadm-shaped nodes in a directory, and stand-in control-plane components
//! that answer like the real ones. Used by `demo` and the tests; never by the daemon.

/// A stand-in kube-apiserver (TLS, client-certificate auth, CSRs with /approval, Nodes,
/// ConfigMaps, list/watch) for tests of the API client.
pub mod apiserver;
/// Builds kubeadm-shaped nodes in a directory.
pub mod nodebuilder;
/// Stand-in control-plane components (HTTP(S) servers that load the node's certificates).
pub mod standin;
