//! Names and addresses as the rules compare them, and the API server's.
//!
//! - IP addresses are compared parsed and canonical: an IPv4-mapped IPv6 address
//!   (`::ffff:10.0.0.5`) is the IPv4 address it maps (Go's `net.IP.Equal` agrees, so a
//!   certificate for one is good for the other), and `fd00:0::1` is `fd00::1`.
//! - DNS names are compared case-insensitively and without one trailing dot.

use serde::Serialize;
use std::net::IpAddr;

/// The API server's names and addresses: any of them in a kubelet's serving certificate
/// (signed by the cluster CA, with server auth) would let that kubelet pose as the API server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApiServerNames {
    /// The IP SANs of apiserver.crt, the `kubernetes` Service ClusterIP(s), and the
    /// controlPlaneEndpoint host when it is an address; canonical, without duplicates.
    pub ips: Vec<IpAddr>,
    /// The DNS SANs of apiserver.crt and the controlPlaneEndpoint host when it is a name;
    /// lower-case, without a trailing dot, without duplicates.
    pub dns: Vec<String>,
}

/// Names of the `kubernetes` Service that are the API server's on every cluster, whatever
/// apiserver.crt says (kubeadm puts them in it; they are refused even if it could not be read).
const SERVICE_NAMES: [&str; 3] = ["kubernetes", "kubernetes.default", "kubernetes.default.svc"];

impl ApiServerNames {
    /// Whether `ip` is one of the API server's addresses.
    pub fn has_ip(&self, ip: IpAddr) -> bool {
        self.ips.contains(&ip.to_canonical())
    }

    /// Whether `name` is one of the API server's names: listed, or a name of the
    /// `kubernetes` Service in any cluster domain (`kubernetes.default.svc.<domain>`).
    pub fn has_dns(&self, name: &str) -> bool {
        let n = dns_norm(name);
        self.dns.contains(&n)
            || SERVICE_NAMES.contains(&n.as_str())
            || n.starts_with("kubernetes.default.svc.")
    }
}

/// The API server's names from what a control-plane node knows: apiserver.crt's IP and DNS
/// SANs, the `kubernetes` Service's ClusterIP(s) (`spec.clusterIPs`, two on a dual-stack
/// cluster), and kubeadm's controlPlaneEndpoint (`host`, `host:port`, `[v6]:port` or a URL
/// such as admin.conf's server). Callers should not evaluate CSRs without apiserver.crt:
/// only the `kubernetes` Service names are known without it.
pub fn api_server_names(
    crt_ips: &[IpAddr],
    crt_dns: &[String],
    service_cluster_ips: &[IpAddr],
    control_plane_endpoint: Option<&str>,
) -> ApiServerNames {
    let mut ips: Vec<IpAddr> = crt_ips
        .iter()
        .chain(service_cluster_ips)
        .map(|i| i.to_canonical())
        .collect();
    let mut dns: Vec<String> = crt_dns.iter().map(|d| dns_norm(d)).collect();
    match control_plane_endpoint.and_then(endpoint_host) {
        Some(Host::Ip(i)) => ips.push(i.to_canonical()),
        Some(Host::Name(n)) => dns.push(n),
        None => {}
    }
    ips.sort();
    ips.dedup();
    dns.retain(|d| !d.is_empty());
    dns.sort();
    dns.dedup();
    ApiServerNames { ips, dns }
}

/// The host part of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An address.
    Ip(IpAddr),
    /// A DNS name, normalised.
    Name(String),
}

/// The host of `host`, `host:port`, `[v6]`, `[v6]:port`, a bare IPv6 address, or any of
/// these behind `scheme://` and before a `/path`.
pub fn endpoint_host(endpoint: &str) -> Option<Host> {
    let s = endpoint.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let s = s.split('/').next().unwrap_or_default();
    let host = if let Some(rest) = s.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else if s.matches(':').count() == 1 {
        s.split(':').next().unwrap_or_default()
    } else {
        s // a bare name, or a bare IPv6 address
    };
    if host.is_empty() {
        return None;
    }
    Some(match host.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(dns_norm(host)),
    })
}

/// A DNS name as compared: lower-case, without one trailing dot.
pub fn dns_norm(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Whether a normalised DNS SAN is a plausible host name: labels of letters, digits, `-` and
/// `_` (seen in the wild), none empty, at most 253 characters. This also keeps control
/// characters and spaces out of logs and messages.
pub fn dns_syntax_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A DNS SAN for a message: as written when printable ASCII, else with escapes.
pub fn shown(name: &str) -> String {
    if name.bytes().all(|b| b.is_ascii_graphic()) {
        name.to_string()
    } else {
        name.escape_default().to_string()
    }
}

/// An IP SAN for a message: as encoded, with the address it stands for when that differs
/// (`::ffff:10.0.0.5 (10.0.0.5)`).
pub fn shown_ip(ip: IpAddr) -> String {
    let c = ip.to_canonical();
    if c == ip {
        ip.to_string()
    } else {
        format!("{ip} ({c})")
    }
}
