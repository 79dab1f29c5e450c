//! This host as the CSR approver's own-node check (rule h) sees it: the addresses assigned to
//! its interfaces, its hostname and FQDN, and the node name the kubelet uses.
//!
//! The interface list sits behind [`HostInterfaces`] so tests can give a node any addresses.
//! Nothing here touches the network: the FQDN comes from the root's `/etc/hosts`, never from
//! DNS (`getaddrinfo` with `AI_CANONNAME` may ask a DNS server, which a daemon deciding on
//! certificates must not depend on or be steered by).

use crate::node::fsread::read_node_file_chroot;
use crate::node::NodePaths;
use serde::Serialize;
use std::io;
use std::net::IpAddr;

/// The addresses assigned to this host's interfaces.
pub trait HostInterfaces {
    /// Every address of every interface, IPv4 and IPv6, without duplicates.
    fn addrs(&self) -> io::Result<Vec<IpAddr>>;
}

/// The real interfaces, through `getifaddrs(3)` (`nix::ifaddrs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RealInterfaces;

impl HostInterfaces for RealInterfaces {
    fn addrs(&self) -> io::Result<Vec<IpAddr>> {
        let list = nix::ifaddrs::getifaddrs().map_err(io::Error::from)?;
        let mut out: Vec<IpAddr> = list
            .filter_map(|ifa| {
                let a = ifa.address?;
                a.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// A fixed list of addresses (tests, the demo).
#[derive(Debug, Clone, Default)]
pub struct StaticInterfaces(pub Vec<IpAddr>);

impl HostInterfaces for StaticInterfaces {
    fn addrs(&self) -> io::Result<Vec<IpAddr>> {
        Ok(self.0.clone())
    }
}

/// This node, as attested by the host itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    /// The node name (`plan::kubelet_client::node_name`).
    pub node_name: String,
    /// The hostname, lower-cased; empty when it cannot be told.
    pub hostname: String,
    /// The fully qualified name from the root's `/etc/hosts`, lower-cased, if it names one.
    pub fqdn: Option<String>,
    /// Every address assigned to one of this host's interfaces.
    pub addrs: Vec<IpAddr>,
}

/// Look at this host: its interfaces through `ifs`, its hostname (the root's /etc/hostname,
/// else the kernel's, as [`crate::node::kubelet_pki::hostname`] reads it) and its FQDN
/// ([`fqdn_from_hosts`] on the root's /etc/hosts). `node_name` is the caller's
/// (`plan::kubelet_client::node_name`). Fails only when the interfaces cannot be listed.
pub fn host_view(
    paths: &NodePaths,
    ifs: &dyn HostInterfaces,
    node_name: &str,
) -> io::Result<HostView> {
    let hostname = crate::node::kubelet_pki::hostname(paths).unwrap_or_default();
    let fqdn = if hostname.is_empty() {
        None
    } else {
        read_node_file_chroot(&paths.root, &paths.root.resolve("/etc/hosts"))
            .ok()
            .and_then(|(_, b)| String::from_utf8(b).ok())
            .and_then(|text| fqdn_from_hosts(&text, &hostname))
    };
    Ok(HostView {
        node_name: node_name.to_string(),
        hostname,
        fqdn,
        addrs: ifs.addrs()?,
    })
}

/// The FQDN that an `/etc/hosts` file gives `hostname`, the way `hostname --fqdn` finds it
/// through glibc's files backend: the first line listing `hostname` (case-insensitively) as
/// one of its names; its first name, the canonical one, is the FQDN when it has a dot.
/// `127.0.1.1 node1.example.com node1` (Debian's installer writes this) gives
/// `node1.example.com`. A hostname that already has a dot is its own FQDN.
pub fn fqdn_from_hosts(hosts: &str, hostname: &str) -> Option<String> {
    let norm = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
    let host = norm(hostname);
    if host.is_empty() {
        return None;
    }
    if host.contains('.') {
        return Some(host);
    }
    for line in hosts.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        if fields
            .next()
            .and_then(|a| a.parse::<IpAddr>().ok())
            .is_none()
        {
            continue;
        }
        let names: Vec<String> = fields.map(norm).collect();
        if names.contains(&host) {
            return names.first().filter(|c| c.contains('.')).cloned();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::paths::Root;

    #[test]
    fn fqdn_from_the_hosts_line_that_names_the_hostname() {
        let hosts = "# comment node1.example.org node1\n\
                     127.0.0.1 localhost\n\
                     127.0.1.1 Node1.Example.COM. node1 # Debian\n\
                     ::1 localhost ip6-localhost\n";
        assert_eq!(
            fqdn_from_hosts(hosts, "node1").as_deref(),
            Some("node1.example.com")
        );
        assert_eq!(
            fqdn_from_hosts(hosts, "NODE1").as_deref(),
            Some("node1.example.com")
        );
        // Only a short canonical name: no FQDN.
        assert_eq!(fqdn_from_hosts("10.0.0.5 node2 node2.lan\n", "node2"), None);
        // The hostname is not listed (glibc would ask DNS; we do not).
        assert_eq!(
            fqdn_from_hosts("10.0.0.5 node3.example.com\n", "node3"),
            None
        );
        // Not an address in the first field: not a hosts line.
        assert_eq!(
            fqdn_from_hosts("nohost node4.example.com node4\n", "node4"),
            None
        );
        assert_eq!(
            fqdn_from_hosts("", "node5.example.com").as_deref(),
            Some("node5.example.com")
        );
        assert_eq!(fqdn_from_hosts("127.0.0.1 x.y\n", ""), None);
    }

    #[test]
    fn host_view_reads_the_node_under_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("hostname"), "CP1\n").unwrap();
        std::fs::write(etc.join("hosts"), "127.0.1.1 cp1.example.com cp1\n").unwrap();
        let paths = crate::config::Settings::default().paths(&Root::new(dir.path()));
        let ifs = StaticInterfaces(vec!["127.0.0.11".parse().unwrap()]);
        let v = host_view(&paths, &ifs, "cp1").unwrap();
        assert_eq!(
            v,
            HostView {
                node_name: "cp1".into(),
                hostname: "cp1".into(),
                fqdn: Some("cp1.example.com".into()),
                addrs: vec!["127.0.0.11".parse().unwrap()],
            }
        );
        // No /etc/hostname under a root that is not "/": no hostname, no FQDN.
        std::fs::remove_file(etc.join("hostname")).unwrap();
        let v = host_view(&paths, &ifs, "cp1").unwrap();
        assert_eq!((v.hostname.as_str(), v.fqdn), ("", None));
    }

    #[test]
    fn real_interfaces_include_loopback() {
        let a = RealInterfaces.addrs().unwrap();
        assert!(
            a.contains(&"127.0.0.1".parse().unwrap()),
            "getifaddrs lists lo's 127.0.0.1"
        );
        let mut sorted = a.clone();
        sorted.dedup();
        assert_eq!(sorted, a, "no duplicates");
    }
}
