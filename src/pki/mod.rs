//! Certificates and keys, as kubeadm lays them out.

/// A new CA for a rotation, as kubeadm makes one; checks of an operator's own CA.
pub mod ca;
/// PKCS#10 requests of CertificateSigningRequests: subject, SANs, key, self-signature.
pub mod csr_request;
/// External-CA detection, as kubeadm does it.
pub mod external;
/// Parse and check X.509 certificates.
pub mod inspect;
/// Build a renewed certificate from the old one's profile.
pub mod issue;
/// Private keys: generate, parse, and encode in kubeadm's PEM forms.
pub mod keys;
/// Kubeconfig files: read the embedded client credentials, replace them in place.
pub mod kubeconfig;
/// The kubelet's client certificate issued with the cluster CA; kubelet.conf for a node.
pub mod kubelet_client;
/// One read/write interface over PKI files and kubeconfigs.
pub mod material;
/// The public half of a private key, read from its DER (no key-pair validation).
pub mod pubkey;
/// Sealing a new CA key with a key derived from the old one (its trip through etcd).
pub mod seal;
/// kubeadm's certificate handlers.
pub mod table;
