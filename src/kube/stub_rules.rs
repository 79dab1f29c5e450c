//! STUB (kube17 branch only, replaced by rules17's `plan::approve`, `node::host` and
//! `Settings.approver` once merged): the contract's interface, so that the acting code
//! compiles and its unit tests run. Nothing here is a rule of the product.
#![allow(missing_docs, dead_code)]

use std::net::IpAddr;
use time::OffsetDateTime;

#[derive(Debug, Clone, Default)]
pub struct CsrView {
    pub name: String,
    pub signer_name: String,
    pub username: String,
    pub groups: Vec<String>,
    pub usages: Vec<String>,
    pub request_pem: Vec<u8>,
    pub approved: bool,
    pub denied: bool,
    pub failed: bool,
    pub has_certificate: bool,
    pub created: Option<OffsetDateTime>,
}
#[derive(Debug, Clone, Default)]
pub struct NodeView {
    pub name: String,
    pub addresses: Vec<(String, String)>,
}
#[derive(Debug, Clone, Default)]
pub struct ApiServerNames {
    pub ips: Vec<IpAddr>,
    pub dns: Vec<String>,
}
#[derive(Debug, Clone, Default)]
pub struct HostView {
    pub node_name: String,
    pub hostname: String,
    pub fqdn: Option<String>,
    pub addrs: Vec<IpAddr>,
}
#[derive(Debug, Clone, Default)]
pub struct Policy;
impl Policy {
    pub fn from_settings(_s: &crate::config::Settings) -> Policy {
        Policy
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Signer,
    Requestor,
    Usages,
    Sans,
    NodeExists,
    IpSans,
    DnsSans,
    Attested,
}
impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rule::Signer => "signer",
            Rule::Requestor => "requestor",
            Rule::Usages => "usages",
            Rule::Sans => "sans",
            Rule::NodeExists => "node-exists",
            Rule::IpSans => "ip-sans",
            Rule::DnsSans => "dns-sans",
            Rule::Attested => "attested",
        })
    }
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    Fail(String),
    NotApplicable(String),
}
#[derive(Debug, Clone)]
pub struct Verdict {
    pub checks: Vec<(Rule, Outcome)>,
}
impl Verdict {
    pub fn approvable(&self) -> bool {
        self.first_failure().is_none()
    }
    pub fn first_failure(&self) -> Option<(Rule, &str)> {
        self.checks.iter().find_map(|(r, o)| match o {
            Outcome::Fail(s) => Some((*r, s.as_str())),
            _ => None,
        })
    }
}
/// STUB: signer, requestor and node existence only.
pub fn evaluate(
    csr: &CsrView,
    nodes: &[NodeView],
    _api: &ApiServerNames,
    _host: Option<&HostView>,
    _policy: &Policy,
) -> Verdict {
    let mut checks = Vec::new();
    let signer = if csr.signer_name == "kubernetes.io/kubelet-serving" {
        Outcome::Pass("kubelet-serving".into())
    } else {
        Outcome::Fail(csr.signer_name.clone())
    };
    checks.push((Rule::Signer, signer));
    let name = csr.username.strip_prefix("system:node:").unwrap_or("");
    checks.push((
        Rule::Requestor,
        if name.is_empty() {
            Outcome::Fail(csr.username.clone())
        } else {
            Outcome::Pass(csr.username.clone())
        },
    ));
    checks.push((
        Rule::NodeExists,
        if nodes.iter().any(|n| n.name == name) {
            Outcome::Pass(name.into())
        } else {
            Outcome::Fail(format!("no Node {name}"))
        },
    ));
    Verdict { checks }
}
pub fn flood(pending: usize, nodes: usize) -> bool {
    pending > 100 + nodes
}
pub fn api_server_names(
    sans: (&[String], &[IpAddr]),
    service_ip: Option<IpAddr>,
    endpoint: Option<&str>,
) -> ApiServerNames {
    let mut a = ApiServerNames {
        ips: sans.1.to_vec(),
        dns: sans.0.to_vec(),
    };
    a.ips.extend(service_ip);
    if let Some(e) = endpoint {
        match e.parse::<IpAddr>() {
            Ok(ip) => a.ips.push(ip),
            Err(_) => a.dns.push(e.to_string()),
        }
    }
    a
}

// ---- config STUB (Settings.approver) ----
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApproverMode {
    Auto,
    On,
    Off,
}
#[derive(Debug, Clone)]
pub struct ApproverSettings {
    pub mode: ApproverMode,
    pub kubeconfig: String,
    pub deny: bool,
}
pub fn approver_settings(_s: &crate::config::Settings) -> ApproverSettings {
    ApproverSettings {
        mode: ApproverMode::Auto,
        kubeconfig: "/etc/kubernetes/admin.conf".into(),
        deny: false,
    }
}

// ---- host seam STUB ----
pub trait HostInterfaces {
    fn addrs(&self) -> std::io::Result<Vec<IpAddr>>;
}
pub struct RealInterfaces;
impl HostInterfaces for RealInterfaces {
    fn addrs(&self) -> std::io::Result<Vec<IpAddr>> {
        Ok(Vec::new())
    }
}
pub fn host_view(
    _paths: &crate::node::NodePaths,
    _i: &dyn HostInterfaces,
    node_name: &str,
) -> HostView {
    HostView {
        node_name: node_name.into(),
        ..Default::default()
    }
}

// ---- pki::csr_request STUB ----
pub fn csr_sans(_pem: &[u8]) -> (Vec<String>, Vec<IpAddr>) {
    (Vec::new(), Vec::new())
}
