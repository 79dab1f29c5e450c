//! `controlPlaneEndpoint` -> the server URL kubeadm writes into kubeconfigs.
//!
//! kubernetes/kubernetes `cmd/kubeadm/app/util/endpoint.go` @553515b8 (`GetMasterEndpoint`,
//! later `GetControlPlaneEndpoint`; `ParseHostPort`, `ParsePort`): the endpoint is `host` or
//! `host:port` (`[ipv6]:port`); a host must be an IP address or an RFC 1123 DNS subdomain, a
//! port 1-65535; without a port the API server's bind port is used (v1beta4 `APIEndpoint.BindPort`,
//! "Defaults to 6443"); the URL is `https://` + `net.JoinHostPort(host, port)`, which brackets
//! an IPv6 address.

use std::net::IpAddr;

/// kubeadm's default API server bind port (`constants.KubeAPIServerPort`).
pub const DEFAULT_BIND_PORT: u16 = 6443;

/// Split `host[:port]` as kubeadm's `ParseHostPort` does: `(host, port)`.
pub fn split_host_port(endpoint: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = match go_split_host_port(endpoint) {
        Some((h, p)) => (h, Some(p)),
        // Go: when SplitHostPort fails, the whole string is the host.
        None => (endpoint, None),
    };
    let port = match port {
        // Go: `host:` splits into an empty port, which kubeadm treats as none.
        Some("") | None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or("port must be a valid number between 1 and 65535, inclusive")?,
        ),
    };
    if host.parse::<IpAddr>().is_ok() || is_dns1123_subdomain(host) {
        Ok((host.to_string(), port))
    } else {
        Err("host must be a valid IP address or a valid RFC-1123 DNS subdomain".into())
    }
}

/// The server URL for `endpoint`, with `bind_port` when it names none.
pub fn server_url(endpoint: &str, bind_port: u16) -> Result<String, String> {
    let (host, port) = split_host_port(endpoint)?;
    let port = port.unwrap_or(bind_port);
    Ok(if host.contains(':') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    })
}

/// Go's `net.SplitHostPort`, as far as kubeadm relies on it: `host:port` or `[host]:port`,
/// `None` when the string has no port (or too many colons without brackets).
fn go_split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

/// apimachinery's `IsDNS1123Subdomain`: at most 253 characters, dot-separated labels of
/// lower-case alphanumerics and '-', each starting and ending with an alphanumeric.
fn is_dns1123_subdomain(s: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !s.is_empty() && s.len() <= 253 && s.split('.').all(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_kubeadm_writes_them() {
        let u = |e: &str| server_url(e, DEFAULT_BIND_PORT);
        assert_eq!(u("cp.example.com").unwrap(), "https://cp.example.com:6443");
        assert_eq!(
            u("cp.example.com:443").unwrap(),
            "https://cp.example.com:443"
        );
        assert_eq!(u("10.0.0.10").unwrap(), "https://10.0.0.10:6443");
        assert_eq!(u("10.0.0.10:8443").unwrap(), "https://10.0.0.10:8443");
        assert_eq!(u("fd00::10").unwrap(), "https://[fd00::10]:6443");
        assert_eq!(u("[fd00::10]:7443").unwrap(), "https://[fd00::10]:7443");
        assert_eq!(server_url("lb", 7443).unwrap(), "https://lb:7443");
        for bad in [
            "[fd00::10]",
            "cp:0",
            "cp:65536",
            "cp:x",
            "Upper.example",
            "a_b",
            "-a",
            "",
        ] {
            assert!(u(bad).is_err(), "{bad}");
        }
    }
}
