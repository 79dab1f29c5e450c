//! Whether the kubelet's client certificate needs reviving (issue 13), as a pure function of
//! the scan, `now` and the setting: the daemon, `kubelet-client revive` and check-expiration's
//! kubelet table all ask this one question.
//!
//! The kubelet rotates its client certificate itself, at a jittered 70–90% of its lifetime.
//! A certificate that has expired, or is inside its last 10%, means rotation has failed (most
//! often because the API server was down): the kubelet can no longer authenticate to ask for a
//! new one, and only a node holding the cluster CA's key can issue it one.

use crate::node::NodePaths;
use crate::pki::inspect::CertInfo;
use crate::pki::table::CaId;
use crate::plan::report::format::rfc3339_utc;
use crate::plan::scan::Scan;
use time::OffsetDateTime;

/// The prefix of a node's user name (`CN=system:node:NAME`).
pub const NODE_USER_PREFIX: &str = "system:node:";

/// Why the certificate needs reviving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// NotAfter has passed.
    Expired(OffsetDateTime),
    /// Inside the last 10% of its lifetime: rotation should have happened by now.
    LastTenth {
        /// When the last tenth began.
        since: OffsetDateTime,
        /// NotAfter.
        not_after: OffsetDateTime,
    },
}

impl std::fmt::Display for Due {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Due::Expired(t) => write!(f, "it expired at {}", rfc3339_utc(*t)),
            Due::LastTenth { since, not_after } => write!(
                f,
                "it entered the last 10% of its lifetime at {} (expires {}) and the kubelet has not rotated it",
                rfc3339_utc(*since),
                rfc3339_utc(*not_after)
            ),
        }
    }
}

/// The verdict on the kubelet client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No kubelet-client-current.pem on this node: nothing to judge.
    Absent,
    /// It exists but could not be read; the reason.
    Unreadable(String),
    /// Valid, before its last tenth: the kubelet rotates it. When it becomes revivable.
    Rotating {
        /// Start of the last tenth.
        revivable_from: OffsetDateTime,
    },
    /// Due, and this node can revive it.
    Revive {
        /// Why.
        due: Due,
        /// The node name (from the certificate's CN).
        node: Option<String>,
    },
    /// Due, but `kubelet.reviveClientCert` is false.
    Disabled(Due),
    /// Due, but this node cannot issue it one (the reason: no CA key, CA expired...).
    NotHere {
        /// Why it is due.
        due: Due,
        /// Why this node cannot revive it.
        reason: String,
    },
}

impl Verdict {
    /// One line for check-expiration's kubelet table.
    pub fn note(&self) -> String {
        match self {
            Verdict::Absent => String::new(),
            Verdict::Unreadable(why) => why.clone(),
            Verdict::Rotating { revivable_from } => format!(
                "the kubelet rotates it; not rotated by {} (its last 10%), it needs reviving",
                rfc3339_utc(*revivable_from)
            ),
            Verdict::Revive { due, .. } => format!(
                "revivable: {due}; this node holds ca.key (the daemon revives it, or run `kubeadm-certd kubelet-client revive`)"
            ),
            Verdict::Disabled(due) => format!(
                "revivable: {due}; but kubelet.reviveClientCert is false (run `kubeadm-certd kubelet-client revive`)"
            ),
            Verdict::NotHere { due, reason } => {
                format!("not revivable here: {due}; {reason}")
            }
        }
    }
}

/// When the last tenth of a certificate's lifetime begins.
pub fn last_tenth(c: &CertInfo) -> OffsetDateTime {
    c.not_after - (c.not_after - c.not_before) / 10
}

/// Whether `c` is due at `now`, and why.
pub fn due(c: &CertInfo, now: OffsetDateTime) -> Option<Due> {
    if c.not_after <= now {
        return Some(Due::Expired(c.not_after));
    }
    let since = last_tenth(c);
    (since <= now).then_some(Due::LastTenth {
        since,
        not_after: c.not_after,
    })
}

/// The node name in a `system:node:NAME` user or CN.
pub fn node_of(user: &str) -> Option<&str> {
    user.strip_prefix(NODE_USER_PREFIX)
        .filter(|n| !n.is_empty())
}

/// This node's name, as the kubelet-client revival and the CSR approver's own-node check
/// both find it: the kubelet client certificate's CN (`system:node:NAME`), else the user of
/// kubelet.conf's current context, else the hostname (lower-cased, as the kubelet does).
pub fn node_name(paths: &NodePaths, scan: &Scan) -> Option<String> {
    let from_cert = scan
        .kubelet
        .iter()
        .find(|k| k.name == "kubelet-client")
        .and_then(|k| k.cert.as_ref().ok())
        .and_then(|c| c.cn().and_then(node_of).map(str::to_owned));
    from_cert
        .or_else(|| conf_user(paths).and_then(|u| node_of(&u).map(str::to_owned)))
        .or_else(|| crate::node::kubelet_pki::hostname(paths))
}

/// kubelet.conf's current user.
fn conf_user(paths: &NodePaths) -> Option<String> {
    let text = crate::node::kubelet_edit::read_text(&paths.root, &paths.kubelet_conf()).ok()?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    let s = |v: &serde_yaml::Value, k: &str| v.get(k)?.as_str().map(str::to_owned);
    let ctx = s(&doc, "current-context")?;
    doc.get("contexts")?
        .as_sequence()?
        .iter()
        .find(|c| s(c, "name").as_deref() == Some(ctx.as_str()))
        .and_then(|c| s(c.get("context")?, "user"))
}

/// Decide for the kubelet client certificate of `scan` at `now`; `enabled` is
/// `kubelet.reviveClientCert` (the CLI passes true).
pub fn decide(scan: &Scan, now: OffsetDateTime, enabled: bool) -> Verdict {
    let Some(entry) = scan.kubelet.iter().find(|k| k.name == "kubelet-client") else {
        return Verdict::Absent;
    };
    let cert = match &entry.cert {
        Ok(c) => c,
        Err(p) => return Verdict::Unreadable(p.msg.clone()),
    };
    let Some(due) = due(cert, now) else {
        return Verdict::Rotating {
            revivable_from: last_tenth(cert),
        };
    };
    if let Some(reason) = cannot_issue(scan, now) {
        return Verdict::NotHere { due, reason };
    }
    if !enabled {
        return Verdict::Disabled(due);
    }
    Verdict::Revive {
        due,
        node: cert.cn().and_then(node_of).map(str::to_owned),
    }
}

/// Why this node cannot issue a kubelet client certificate, if it cannot.
pub fn cannot_issue(scan: &Scan, now: OffsetDateTime) -> Option<String> {
    let ca = match scan.cas.get(&CaId::Ca) {
        None => return Some("no cluster CA on this node".into()),
        Some(Err(p)) => return Some(format!("the cluster CA cannot be read: {p}")),
        Some(Ok(ca)) => ca,
    };
    let crt = scan.root.host_path(&ca.cert_path).display().to_string();
    let Some(cert) = &ca.cert else {
        return Some(format!("{crt} does not exist"));
    };
    if !ca.key_present {
        return Some(format!(
            "{} does not exist (a worker node, or an external CA)",
            scan.root.host_path(&ca.key_path).display()
        ));
    }
    if !cert.valid_at(now) {
        return Some(format!(
            "{crt} is not valid now (valid {} to {}): rotate the CA first",
            rfc3339_utc(cert.not_before),
            rfc3339_utc(cert.not_after)
        ));
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn cert(nb: OffsetDateTime, na: OffsetDateTime) -> CertInfo {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
        p.not_before = nb;
        p.not_after = na;
        let c = p.self_signed(&key).unwrap();
        CertInfo::from_der(c.der()).unwrap()
    }

    #[test]
    fn due_in_the_last_tenth_or_expired() {
        let c = cert(
            datetime!(2026-01-01 0:00 UTC),
            datetime!(2026-01-11 0:00 UTC),
        );
        assert_eq!(last_tenth(&c), datetime!(2026-01-10 0:00 UTC));
        assert_eq!(due(&c, datetime!(2026-01-09 23:59 UTC)), None);
        assert_eq!(
            due(&c, datetime!(2026-01-10 0:00 UTC)),
            Some(Due::LastTenth {
                since: datetime!(2026-01-10 0:00 UTC),
                not_after: datetime!(2026-01-11 0:00 UTC)
            })
        );
        assert_eq!(
            due(&c, datetime!(2026-01-12 0:00 UTC)),
            Some(Due::Expired(datetime!(2026-01-11 0:00 UTC)))
        );
        assert!(Due::Expired(datetime!(2026-01-11 0:00 UTC))
            .to_string()
            .contains("2026-01-11T00:00:00Z"));
    }

    #[test]
    fn node_names() {
        assert_eq!(node_of("system:node:cp1"), Some("cp1"));
        assert_eq!(node_of("system:node:"), None);
        assert_eq!(node_of("kubernetes-admin"), None);
    }
}
