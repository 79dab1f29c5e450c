//! Pure planning: from a scan, the settings and `now`, decide what renews, what is skipped or
//! refused and why, and which static pods must restart in which order. No side effects, so
//! `--dry-run` and the tests need none.

/// Whether to approve a kubelet serving CSR: the rules (a)-(h), a verdict per rule.
pub mod approve;
/// The cluster's ClusterConfiguration over the config file: validity, key algorithm, dir.
pub mod cluster_inputs;
/// Guard rails: the no-gain rule, renewal memory, restart budget, clock sanity, retention.
pub mod guard;
/// Whether the kubelet's client certificate needs reviving, and whether this node can.
pub mod kubelet_client;
/// check-expiration: kubeadm's tables and JSON.
pub mod report;
/// Which static pods a renewal affects, read from the manifests.
pub mod restarts;
/// CA rotation: the record, its phases, what each phase asks of a node.
pub mod rotation;
/// Reading the node's certificates into one snapshot.
pub mod scan;

use crate::config::Settings;
use crate::pki::table::{CaId, Component, Handler};
use crate::plan::scan::Scan;
use time::OffsetDateTime;

/// Which certificates a command selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every one that is present.
    All,
    /// Those with less than `renewBefore` left.
    Due,
    /// These kubeadm names.
    Names(Vec<String>),
}

/// What happens to one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Renew it; the new NotAfter, and whether it was clamped to the CA's.
    Renew {
        /// Predicted NotAfter of the new certificate.
        new_not_after: OffsetDateTime,
        /// Clamped to the CA's NotAfter.
        clamped: bool,
    },
    /// Not renewed, and that is fine.
    Skip(Skip),
    /// Not renewed because something is wrong; the command fails.
    Refuse(String),
}

/// Why a certificate is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Its file is missing (kubeadm's `MISSING!`).
    Missing,
    /// Its CA is externally managed.
    ExternalCa(CaId),
    /// Listed in `exclude`.
    Excluded,
    /// More than `renewBefore` left.
    NotDue,
    /// Not signed by its CA: a user-provided certificate, never overwritten.
    NotSignedByCa(CaId),
    /// Due, but a guard rail holds it back (see [`guard`]).
    Held(guard::Hold),
}

/// The decision for one certificate.
#[derive(Debug, Clone)]
pub struct Item {
    /// The handler.
    pub handler: &'static Handler,
    /// Current NotAfter, when known.
    pub old_not_after: Option<OffsetDateTime>,
    /// The decision.
    pub decision: Decision,
}

/// The plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One item per selected certificate, in kubeadm's name order.
    pub items: Vec<Item>,
    /// Names that matched no handler on this node.
    pub unknown: Vec<String>,
}

impl Plan {
    /// Items that renew.
    pub fn renewing(&self) -> impl Iterator<Item = &Item> {
        self.items
            .iter()
            .filter(|i| matches!(i.decision, Decision::Renew { .. }))
    }
}

/// Which certificates are due: less than `renew_before` left at `now`.
pub fn is_due(
    not_after: OffsetDateTime,
    now: OffsetDateTime,
    renew_before: std::time::Duration,
) -> bool {
    not_after - now < renew_before
}

/// Build the plan.
pub fn plan(scan: &Scan, sel: &Selection, settings: &Settings, now: OffsetDateTime) -> Plan {
    let mut unknown = Vec::new();
    if let Selection::Names(names) = sel {
        for n in names {
            if scan.cert(n).is_none() {
                unknown.push(n.clone());
            }
        }
    }
    let items = scan
        .certs
        .iter()
        .filter(|e| match sel {
            Selection::Names(n) => n.iter().any(|x| x == e.handler.name),
            _ => true,
        })
        .map(|e| {
            let h = e.handler;
            let old_not_after = e
                .state
                .as_ref()
                .ok()
                .and_then(|l| l.as_ref())
                .map(|l| l.leaf.not_after);
            Item {
                handler: h,
                old_not_after,
                decision: decide(scan, e, sel, settings, now),
            }
        })
        .collect();
    Plan { items, unknown }
}

fn decide(
    scan: &Scan,
    e: &crate::plan::scan::CertEntry,
    sel: &Selection,
    settings: &Settings,
    now: OffsetDateTime,
) -> Decision {
    let h = e.handler;
    let loaded = match &e.state {
        Err(p) => return Decision::Refuse(p.to_string()),
        Ok(None) => return Decision::Skip(Skip::Missing),
        Ok(Some(l)) => l,
    };
    if loaded.key_matches() == Some(false) {
        return Decision::Refuse(format!(
            "{}: private key does not match its certificate",
            loaded
                .files()
                .first()
                .map(|p| scan.root.host_path(p).display().to_string())
                .unwrap_or_default()
        ));
    }
    if settings.exclude.iter().any(|x| x == h.name) {
        return Decision::Skip(Skip::Excluded);
    }
    let ca = match scan.cas.get(&h.ca) {
        Some(Err(p)) => return Decision::Refuse(p.to_string()),
        Some(Ok(ca)) => ca,
        None => return Decision::Refuse(format!("{}: no {} on this node", h.name, h.ca.name())),
    };
    let Some(ca_cert) = &ca.cert else {
        return Decision::Refuse(format!(
            "{}: CA certificate is missing",
            scan.root.host_path(&ca.cert_path).display()
        ));
    };
    if ca.external() {
        return Decision::Skip(Skip::ExternalCa(h.ca));
    }
    if !loaded.leaf.signed_by(ca_cert) {
        return Decision::Skip(Skip::NotSignedByCa(h.ca));
    }
    if sel == &Selection::Due && !is_due(loaded.leaf.not_after, now, settings.renew_before) {
        return Decision::Skip(Skip::NotDue);
    }
    if !ca_cert.valid_at(now) {
        let why = if now < ca_cert.not_before {
            "is not yet valid"
        } else {
            "has expired"
        };
        return Decision::Refuse(format!(
            "{}: the {} CA {why} (NotBefore {}, NotAfter {}); refusing to issue certificates it cannot vouch for. Rotate the CA first",
            h.name,
            h.ca.name(),
            crate::logging::rfc3339(ca_cert.not_before),
            crate::logging::rfc3339(ca_cert.not_after)
        ));
    }
    // With an algorithm set (the cluster's or the config's) the old key's does not matter.
    if loaded.leaf.key_alg.is_none() && settings.encryption_algorithm.is_none() {
        let cert = loaded
            .files()
            .last()
            .map(|p| scan.root.host_path(p).display().to_string())
            .unwrap_or_default();
        return Decision::Refuse(format!(
            "{cert}: unsupported key algorithm for {} (kubeadm uses RSA-2048/3072/4096 or ECDSA P-256; Ed25519 and others cannot be renewed here)",
            h.name
        ));
    }
    let (new_not_after, clamped) = new_validity(ca_cert, settings, now);
    // Only for `due` (the daemon, `renew due`): naming a certificate still forces it.
    if sel == &Selection::Due {
        if let Some(hold) = guard::no_gain(
            loaded.leaf.not_after,
            new_not_after,
            h.ca,
            ca_cert.not_after,
            settings.check_interval,
        ) {
            return Decision::Skip(Skip::Held(hold));
        }
    }
    Decision::Renew {
        new_not_after,
        clamped,
    }
}

/// When a certificate issued at `now` would end, and whether the CA's end clamped it.
fn new_validity(
    ca_cert: &crate::pki::inspect::CertInfo,
    settings: &Settings,
    now: OffsetDateTime,
) -> (OffsetDateTime, bool) {
    let wanted = now + settings.certificate_validity;
    let clamped = wanted > ca_cert.not_after;
    (if clamped { ca_cert.not_after } else { wanted }, clamped)
}

/// Whether `e` is due and its CA's runway is too short for a renewal to gain anything: the
/// cheap precondition of [`Hold::NoGain`](guard::Hold::NoGain), without the signature checks
/// of a full [`plan`].
pub fn due_without_gain(
    scan: &Scan,
    e: &crate::plan::scan::CertEntry,
    settings: &Settings,
    now: OffsetDateTime,
) -> bool {
    let (Ok(Some(l)), Some(ca_cert)) = (
        &e.state,
        scan.ca(e.handler.ca).and_then(|c| c.cert.as_ref()),
    ) else {
        return false;
    };
    if !is_due(l.leaf.not_after, now, settings.renew_before) {
        return false;
    }
    let (new_not_after, _) = new_validity(ca_cert, settings, now);
    guard::no_gain(
        l.leaf.not_after,
        new_not_after,
        e.handler.ca,
        ca_cert.not_after,
        settings.check_interval,
    )
    .is_some()
}

/// Who uses which host file, as far as the manifests say.
pub trait Consumers {
    /// `Some(true)` if `c`'s manifest names `host_path`, `Some(false)` if its manifest does not,
    /// `None` if there is no readable manifest for `c` (use kubeadm's table).
    fn uses(&self, c: Component, host_path: &str) -> Option<bool>;
    /// Whether `c` has a manifest at all on this node.
    fn present(&self, c: Component) -> bool;
}

/// The components to restart after `changed` handlers' files (host paths) changed: each once,
/// in etcd → apiserver → controller-manager → scheduler order.
pub fn restart_set(
    changed: &[(&Handler, Vec<String>)],
    consumers: &dyn Consumers,
) -> Vec<Component> {
    Component::ORDER
        .into_iter()
        .filter(|c| consumers.present(*c))
        .filter(|c| {
            changed.iter().any(|(h, files)| {
                files.iter().any(|f| match consumers.uses(*c, f) {
                    Some(u) => u,
                    None => h.consumers.contains(c),
                })
            })
        })
        .collect()
}
