//! Whether to approve a kubelet serving CSR (issue 17): a pure function of the CSR, the
//! Nodes, the API server's names, this host (when the CSR is this node's own) and the
//! operator's policy, giving a verdict per rule. The acting code (`kube/`, the daemon, the
//! CLI) only carries it out.
//!
//! Why these rules (README, "Approving kubelet serving certificates: the rules"): on kubeadm
//! a kubelet writes its own `Node.status.addresses`, so "the SANs match the Node" only proves
//! the kubelet agrees with itself. What can be checked for real is that no SAN belongs to
//! **another Node** or to **the API server**, and, on the node itself, that the SANs are the
//! host's real addresses and names.
//!
//! | rule | checks |
//! |---|---|
//! | (a) signer | `kubernetes.io/kubelet-serving`; not Approved, Denied or Failed; no certificate |
//! | (b) requestor | username `system:node:NAME`, groups include `system:nodes`; subject CN = username (one CN), O exactly `system:nodes`; the request's self-signature verifies |
//! | (c) usages | exactly what the signer accepts: {digital signature, server auth}, plus key encipherment optionally |
//! | (d) sans | at least one DNS or IP SAN; no email, URI or other kind |
//! | (e) node-exists | the Node NAME exists |
//! | (f) ip-sans | each IP SAN: no other Node's (any address type); not the API server's unless this Node's own and the Node is a kubeadm control-plane node or attested here; one of the Node's InternalIP/ExternalIP; within `approver.ipPrefixes` |
//! | (g) dns-sans | each DNS SAN: no wildcard, a valid name; no other Node's name or address; not the API server's unless NAME; NAME or the Node's Hostname/InternalDNS/ExternalDNS; matches `approver.dnsPattern` |
//! | (h) attested | only for this node's own CSR: IP SANs on this host's interfaces, DNS SANs its node name, hostname or FQDN |

mod names;
mod rules;
mod verdict;

#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod tests;

pub use crate::node::host::HostView;
pub use names::{api_server_names, dns_norm, endpoint_host, ApiServerNames, Host};
pub use verdict::{Outcome, Rule, Verdict};

use crate::config::{ApproverSettings, DnsPattern};
use crate::pki::csr_request;
use ipnet::IpNet;
use serde::Serialize;

/// The signer of kubelet serving certificates.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// `reason` of the Approved condition kubeadm-certd writes.
pub const APPROVE_REASON: &str = "KubeadmCertdApprove";
/// `reason` of the Denied condition kubeadm-certd writes (with `approver.deny: true`).
pub const DENY_REASON: &str = "KubeadmCertdDeny";
/// Node labels that mark a kubeadm control-plane node. kubeadm sets them with admin
/// credentials; a kubelet cannot set or change them under the NodeRestriction admission
/// plugin, which kubeadm enables (kubernetes `plugin/pkg/admission/noderestriction/
/// admission.go`, `getForbiddenLabels`: no kubelet may set `*.kubernetes.io` labels other
/// than the kubelet's own). `master` is the name before kubeadm 1.20.
pub const CONTROL_PLANE_LABELS: [&str; 2] = [
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
];

/// One CertificateSigningRequest, as the rules see it (mapped from the API object by `kube/`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrView {
    /// metadata.name
    pub name: String,
    /// spec.signerName
    pub signer_name: String,
    /// spec.username (set by the API server from the requester's credentials)
    pub username: String,
    /// spec.groups (likewise)
    pub groups: Vec<String>,
    /// spec.usages, as the API spells them (`digital signature`, `server auth`, ...)
    pub usages: Vec<String>,
    /// spec.request: the PEM, base64-decoded
    pub request_pem: Vec<u8>,
    /// An Approved condition is present.
    pub approved: bool,
    /// A Denied condition is present.
    pub denied: bool,
    /// A Failed condition is present.
    pub failed: bool,
    /// status.certificate is set.
    pub has_certificate: bool,
    /// metadata.creationTimestamp
    pub created: Option<time::OffsetDateTime>,
}

/// One Node, as the rules see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// metadata.name
    pub name: String,
    /// status.addresses as (type, address): `InternalIP`, `ExternalIP`, `Hostname`,
    /// `InternalDNS`, `ExternalDNS`.
    pub addresses: Vec<(String, String)>,
    /// The Node carries one of [`CONTROL_PLANE_LABELS`] (see [`is_control_plane`]).
    pub control_plane: bool,
}

/// Whether a Node with these label keys is a kubeadm control-plane node.
pub fn is_control_plane<'a>(label_keys: impl IntoIterator<Item = &'a str>) -> bool {
    label_keys
        .into_iter()
        .any(|k| CONTROL_PLANE_LABELS.contains(&k))
}

/// The operator's extra limits (`approver.ipPrefixes`, `approver.dnsPattern`).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// When not empty, every IP SAN must lie in one of these.
    pub ip_prefixes: Vec<IpNet>,
    /// When set, every DNS SAN must match it as a whole (see [`DnsPattern`]).
    pub dns_pattern: Option<DnsPattern>,
}

impl Policy {
    /// The policy of `approver:`.
    pub fn from_settings(a: &ApproverSettings) -> Policy {
        Policy {
            ip_prefixes: a.ip_prefixes.clone(),
            dns_pattern: a.dns_pattern.clone(),
        }
    }
}

/// What every rule says about `csr`. `host` is this node as it attests itself; rule (h)
/// applies when the CSR is for `host.node_name`, and does not when `host` is `None` or names
/// another node, so every other rule is decidable anywhere.
pub fn evaluate(
    csr: &CsrView,
    nodes: &[NodeView],
    api: &ApiServerNames,
    host: Option<&HostView>,
    policy: &Policy,
) -> Verdict {
    let parsed = csr_request::parse(&csr.request_pem);
    let name = crate::plan::kubelet_client::node_of(&csr.username);
    let ctx = rules::Ctx {
        csr,
        request: parsed.as_ref().map_err(|e| e.to_string()),
        name,
        node: name.and_then(|n| nodes.iter().find(|x| x.name == n)),
        nodes,
        api,
        host,
        policy,
    };
    let checks = Rule::ALL.iter().map(|r| (*r, ctx.check(*r))).collect();
    Verdict {
        checks,
        node: name.map(str::to_owned),
        request: parsed.ok(),
    }
}

/// The flood guard: with more kubelet-serving CSRs pending than 100 + the number of Nodes,
/// approve nothing (OpenShift's cluster-machine-approver has the same bound with Machines,
/// `pkg/controller/controller.go`, `getMaxPending`): something is creating CSRs in a loop, or someone is trying
/// to get one through in the crowd.
pub fn flood(pending: usize, nodes: usize) -> bool {
    pending > nodes.saturating_add(100)
}
