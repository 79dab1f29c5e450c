//! The rules (a) to (h), one function each. Every failure names the rule's subject and the
//! offending value; see the table in `mod.rs` and the README for why each exists.

use super::names::{dns_norm, dns_syntax_ok, shown, shown_ip, ApiServerNames};
use super::{CsrView, HostView, NodeView, Outcome, Policy, Rule, KUBELET_SERVING_SIGNER};
use crate::pki::csr_request::CsrRequest;
use crate::plan::kubelet_client::NODE_USER_PREFIX;
use std::net::IpAddr;

/// The group every node's credentials carry.
const NODES_GROUP: &str = "system:nodes";
/// What kube-controller-manager's kubelet-serving signer accepts: exactly {digital
/// signature, key encipherment, server auth} or {digital signature, server auth} (kubernetes
/// `pkg/apis/certificates/helpers.go`, `ValidateKubeletServingCSR`; the signer calls it
/// before signing and marks the CSR Failed otherwise, `pkg/controller/certificates/signer/
/// signer.go`). Checked against kubernetes master, December 2026.
const USAGES: [&str; 3] = ["digital signature", "key encipherment", "server auth"];

/// Everything one evaluation looks at.
pub(super) struct Ctx<'a> {
    pub csr: &'a CsrView,
    /// The decoded request, or why it does not decode.
    pub request: Result<&'a CsrRequest, String>,
    /// NAME of `system:node:NAME`.
    pub name: Option<&'a str>,
    /// The Node NAME.
    pub node: Option<&'a NodeView>,
    pub nodes: &'a [NodeView],
    pub api: &'a ApiServerNames,
    pub host: Option<&'a HostView>,
    pub policy: &'a Policy,
}

use Outcome::{Fail, NotApplicable as Na, Pass};

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    if v.is_empty() {
        return "(none)".into();
    }
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted(v: &[String]) -> String {
    list(&v.iter().map(|s| shown(s)).collect::<Vec<_>>())
}

/// The addresses of `n` of the given types.
fn addresses<'n>(n: &'n NodeView, types: &'n [&str]) -> impl Iterator<Item = &'n str> + 'n {
    n.addresses
        .iter()
        .filter(move |(t, _)| types.contains(&t.as_str()))
        .map(|(_, a)| a.as_str())
}

/// An address string as an IP, canonical; `None` if it is not one.
fn as_ip(a: &str) -> Option<IpAddr> {
    a.trim().parse::<IpAddr>().ok().map(|i| i.to_canonical())
}

const ALL_TYPES: [&str; 5] = [
    "InternalIP",
    "ExternalIP",
    "Hostname",
    "InternalDNS",
    "ExternalDNS",
];
const IP_TYPES: [&str; 2] = ["InternalIP", "ExternalIP"];
const DNS_TYPES: [&str; 3] = ["Hostname", "InternalDNS", "ExternalDNS"];

impl Ctx<'_> {
    pub fn check(&self, rule: Rule) -> Outcome {
        match rule {
            Rule::Signer => self.signer(),
            Rule::Requestor => self.requestor(),
            Rule::Usages => self.usages(),
            Rule::Sans => self.with_request(|r| self.sans(r)),
            Rule::NodeExists => self.node_exists(),
            Rule::IpSans => self.with_request(|r| self.ip_sans(r)),
            Rule::DnsSans => self.with_request(|r| self.dns_sans(r)),
            Rule::Attested => self.with_request(|r| self.attested(r)),
        }
    }

    fn with_request(&self, f: impl FnOnce(&CsrRequest) -> Outcome) -> Outcome {
        match self.request {
            Ok(r) => f(r),
            Err(_) => Na("the request does not decode (rule b)".into()),
        }
    }

    /// (a)
    fn signer(&self) -> Outcome {
        let c = self.csr;
        if c.signer_name != KUBELET_SERVING_SIGNER {
            return Fail(format!(
                "signer {} is not {KUBELET_SERVING_SIGNER}",
                shown(&c.signer_name)
            ));
        }
        for (set, what) in [
            (c.approved, "already Approved"),
            (c.denied, "already Denied"),
            (c.failed, "already Failed (the signer refused it)"),
            (c.has_certificate, "already has a certificate"),
        ] {
            if set {
                return Fail(format!("the CSR is {what}"));
            }
        }
        Pass(format!(
            "signer {KUBELET_SERVING_SIGNER}; not yet approved, denied or issued"
        ))
    }

    /// (b)
    fn requestor(&self) -> Outcome {
        let c = self.csr;
        if self.name.is_none() {
            return Fail(format!(
                "username {} is not {NODE_USER_PREFIX}NAME",
                shown(&c.username)
            ));
        }
        if !c.groups.iter().any(|g| g == NODES_GROUP) {
            return Fail(format!(
                "groups {} do not include {NODES_GROUP}",
                quoted(&c.groups)
            ));
        }
        let r = match self.request {
            Ok(r) => r,
            Err(ref e) => return Fail(format!("the request does not decode: {e}")),
        };
        if let Some(e) = &r.signature_error {
            return Fail(format!(
                "the request's self-signature does not verify ({e}): whoever sent it does not hold its key"
            ));
        }
        match r.common_names.as_slice() {
            [cn] if *cn == c.username => {}
            [cn] => {
                return Fail(format!(
                    "subject CN {} is not the requester {}",
                    shown(cn),
                    shown(&c.username)
                ))
            }
            cns => {
                return Fail(format!(
                    "subject has {} CNs ({}), not one",
                    cns.len(),
                    quoted(cns)
                ))
            }
        }
        if r.organizations != [NODES_GROUP] {
            return Fail(format!(
                "subject O {} is not exactly {NODES_GROUP}",
                quoted(&r.organizations)
            ));
        }
        Pass(format!(
            "requested by {} (group {NODES_GROUP}) for CN={}, O={NODES_GROUP}, self-signed with its {} key",
            shown(&c.username),
            shown(&c.username),
            r.key_algorithm
        ))
    }

    /// (c)
    fn usages(&self) -> Outcome {
        let u = &self.csr.usages;
        if let Some(bad) = u.iter().find(|x| !USAGES.contains(&x.as_str())) {
            return Fail(format!(
                "usage {} is not one the kubelet-serving signer accepts ({})",
                shown(bad),
                USAGES.join(", ")
            ));
        }
        for need in ["server auth", "digital signature"] {
            if !u.iter().any(|x| x == need) {
                return Fail(format!(
                    "usages {} lack {need} (the signer accepts digital signature + server auth, with or without key encipherment)",
                    quoted(u)
                ));
            }
        }
        Pass(format!("usages {}", quoted(u)))
    }

    /// (d)
    fn sans(&self, r: &CsrRequest) -> Outcome {
        if let Some(e) = r.emails.first() {
            return Fail(format!("email SAN {} is not allowed", shown(e)));
        }
        if let Some(u) = r.uris.first() {
            return Fail(format!("URI SAN {} is not allowed", shown(u)));
        }
        if let Some(o) = r.other_sans.first() {
            return Fail(format!("SAN {o} is not allowed (only DNS and IP)"));
        }
        if r.dns.is_empty() && r.ips.is_empty() {
            return Fail("no DNS or IP SAN".into());
        }
        Pass(format!(
            "{} DNS and {} IP SANs; no email, URI or other SAN",
            r.dns.len(),
            r.ips.len()
        ))
    }

    /// (e)
    fn node_exists(&self) -> Outcome {
        match (self.name, self.node) {
            (None, _) => Na("no node name in the username (rule b)".into()),
            (Some(n), None) => Fail(format!("Node {} does not exist", shown(n))),
            (Some(n), Some(_)) => Pass(format!("Node {n} exists")),
        }
    }

    /// Another Node listing `ip` among its addresses (any type).
    fn ip_owner(&self, ip: IpAddr) -> Option<&str> {
        self.others()
            .find(|n| addresses(n, &ALL_TYPES).any(|a| as_ip(a) == Some(ip)))
            .map(|n| n.name.as_str())
    }

    /// Another Node named `n` or listing it among its addresses (any type).
    fn dns_owner(&self, n: &str) -> Option<&str> {
        self.others()
            .find(|o| dns_norm(&o.name) == n || addresses(o, &ALL_TYPES).any(|a| dns_norm(a) == n))
            .map(|o| o.name.as_str())
    }

    fn others(&self) -> impl Iterator<Item = &NodeView> {
        self.nodes
            .iter()
            .filter(move |n| Some(n.name.as_str()) != self.name)
    }

    /// The host attests `ip` for this very node (rule h's view).
    fn attested_here(&self, ip: IpAddr) -> bool {
        self.host.is_some_and(|h| {
            Some(h.node_name.as_str()) == self.name
                && h.addrs.iter().any(|a| a.to_canonical() == ip)
        })
    }

    /// (f)
    fn ip_sans(&self, r: &CsrRequest) -> Outcome {
        if r.ips.is_empty() {
            return Pass("no IP SANs".into());
        }
        let (Some(name), Some(node)) = (self.name, self.node) else {
            return Na("no Node to compare with (rule e)".into());
        };
        let own: Vec<IpAddr> = addresses(node, &IP_TYPES).filter_map(as_ip).collect();
        // API server addresses allowed as this control-plane node's own: the pass message
        // says so rather than "not the API server's".
        let mut api_own = Vec::new();
        for &raw in &r.ips {
            let ip = raw.to_canonical();
            let s = shown_ip(raw);
            if self.api.has_ip(ip) {
                api_own.push(s.clone());
            }
            if let Some(other) = self.ip_owner(ip) {
                return Fail(format!("IP SAN {s} belongs to node {other}"));
            }
            // "Own" is what the Node says, and the kubelet writes that itself: an API server
            // address also needs a source the kubelet cannot forge.
            if self.api.has_ip(ip)
                && !(own.contains(&ip) && (node.control_plane || self.attested_here(ip)))
            {
                return Fail(format!(
                    "IP SAN {s} is an address of the API server (apiserver.crt, the kubernetes Service or controlPlaneEndpoint), and Node {name} is not a control-plane node holding it"
                ));
            }
            if !own.contains(&ip) {
                return Fail(format!(
                    "IP SAN {s} is not an InternalIP or ExternalIP of Node {name}"
                ));
            }
            let p = &self.policy.ip_prefixes;
            if !p.is_empty() && !p.iter().any(|n| n.contains(&ip)) {
                return Fail(format!(
                    "IP SAN {s} is outside approver.ipPrefixes ({})",
                    list(p)
                ));
            }
        }
        let shown: Vec<String> = r.ips.iter().map(|i| shown_ip(*i)).collect();
        let api = if api_own.is_empty() {
            ", not the API server's".to_string()
        } else {
            format!(
                "; {} {} also the API server's, allowed as this control-plane node's own",
                list(&api_own),
                if api_own.len() == 1 { "is" } else { "are" }
            )
        };
        Pass(format!(
            "IP SANs {}: Node {name}'s own, no other Node's{api}{}",
            list(&shown),
            if self.policy.ip_prefixes.is_empty() {
                ""
            } else {
                ", within approver.ipPrefixes"
            }
        ))
    }

    /// (g)
    fn dns_sans(&self, r: &CsrRequest) -> Outcome {
        if r.dns.is_empty() {
            return Pass("no DNS SANs".into());
        }
        let (Some(name), Some(node)) = (self.name, self.node) else {
            return Na("no Node to compare with (rule e)".into());
        };
        let me = dns_norm(name);
        let mut api_own = Vec::new();
        for raw in &r.dns {
            let n = dns_norm(raw);
            let s = shown(raw);
            if n == me && self.api.has_dns(&n) {
                api_own.push(s.clone());
            }
            if n.contains('*') {
                return Fail(format!("DNS SAN {s} is a wildcard"));
            }
            if !dns_syntax_ok(&n) {
                return Fail(format!("DNS SAN {s} is not a valid DNS name"));
            }
            // NAME itself comes from the requester's credentials, not from a Node's claims.
            if n != me {
                if let Some(other) = self.dns_owner(&n) {
                    return Fail(format!("DNS SAN {s} belongs to node {other}"));
                }
                if self.api.has_dns(&n) {
                    return Fail(format!(
                        "DNS SAN {s} is a name of the API server (apiserver.crt, controlPlaneEndpoint or the kubernetes Service)"
                    ));
                }
                if !addresses(node, &DNS_TYPES).any(|a| dns_norm(a) == n) {
                    return Fail(format!(
                        "DNS SAN {s} is not the name, or a Hostname, InternalDNS or ExternalDNS address, of Node {name}"
                    ));
                }
            }
            if let Some(p) = &self.policy.dns_pattern {
                if !p.is_match(&n) {
                    return Fail(format!(
                        "DNS SAN {s} does not match approver.dnsPattern {}",
                        p.as_str()
                    ));
                }
            }
        }
        let api = if api_own.is_empty() {
            ", not the API server's".to_string()
        } else {
            format!(
                "; {} {} also the API server's, allowed as the node's own name",
                list(&api_own),
                if api_own.len() == 1 { "is" } else { "are" }
            )
        };
        Pass(format!(
            "DNS SANs {}: Node {name}'s own, no other Node's{api}{}",
            quoted(&r.dns),
            if self.policy.dns_pattern.is_some() {
                ", matching approver.dnsPattern"
            } else {
                ""
            }
        ))
    }

    /// (h)
    fn attested(&self, r: &CsrRequest) -> Outcome {
        let Some(h) = self.host else {
            return Na("no host view: only the node's own daemon attests its CSR".into());
        };
        let Some(name) = self.name else {
            return Na("no node name in the username (rule b)".into());
        };
        if h.node_name != name {
            return Na(format!(
                "the CSR is for node {}, not this node ({})",
                shown(name),
                h.node_name
            ));
        }
        for &ip in &r.ips {
            if !self.attested_here(ip.to_canonical()) {
                return Fail(format!(
                    "IP SAN {} is not assigned to any interface of this host",
                    shown_ip(ip)
                ));
            }
        }
        let mut mine = vec![dns_norm(&h.node_name)];
        if !h.hostname.is_empty() {
            mine.push(dns_norm(&h.hostname));
        }
        if let Some(f) = &h.fqdn {
            mine.push(dns_norm(f));
        }
        for raw in &r.dns {
            if !mine.contains(&dns_norm(raw)) {
                return Fail(format!(
                    "DNS SAN {} is not this host's node name, hostname or FQDN ({})",
                    shown(raw),
                    list(&mine)
                ));
            }
        }
        Pass(format!(
            "this node's own CSR: IP SANs on this host's interfaces, DNS SANs among {}",
            list(&mine)
        ))
    }
}
