//! The standing conditions a cycle finds, each logged through [`Conditions`]: once when it
//! appears or changes, once a day while it lasts, once when it clears. One problem gives one
//! message: a file problem that refuses certificates is reported once, naming them all.

use super::conditions::Conditions;
use crate::config::Settings;
use crate::logging::{self, rfc3339};
use crate::node::NodePaths;
use crate::plan::scan::Scan;
use crate::plan::{self, Decision, Plan, Skip};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// Log refusals (grouped by reason) and scan problems no refusal already names. Returns the
/// names of the refused certificates (for the refusal gauge).
pub fn refusals(
    scan: &Scan,
    plan: &Plan,
    conditions: &mut Conditions,
    now: OffsetDateTime,
) -> Vec<String> {
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for i in &plan.items {
        if let Decision::Refuse(why) = &i.decision {
            by_reason.entry(why).or_default().push(i.handler.name);
        }
    }
    for (why, names) in &by_reason {
        let text = format!("not renewing {}: {why}", names.join(", "));
        if conditions.holds(&format!("refused:{why}"), &text, now) {
            tracing::error!(
                MESSAGE_ID = logging::MSG_RENEW_FAILED,
                CERT_NAME = names.join(" "),
                ACTION = "renew",
                RESULT = "refused",
                "{text}"
            );
        }
    }
    for p in scan.problems() {
        let text = p.to_string();
        if by_reason.keys().any(|why| why.contains(text.as_str())) {
            continue;
        }
        if conditions.holds(&format!("unreadable:{}", p.path), &text, now) {
            tracing::error!(
                MESSAGE_ID = logging::MSG_RENEW_FAILED,
                CERT_PATH = %p.path,
                RESULT = "invalid",
                "{text}"
            );
        }
    }
    by_reason
        .into_values()
        .flatten()
        .map(str::to_string)
        .collect()
}

/// Certificates that are due but that this daemon does not renew here (external CA,
/// excluded, not signed by the node's CA). A missing one (`Skip::Missing`) is never a
/// condition: kubeadm's `!MISSING!` rows are normal layouts, e.g. super-admin.conf on a
/// control-plane node that joined (since v1.29 only `kubeadm init` writes it, KEP-4214; before
/// v1.29 it did not exist at all) or the etcd certificates with external etcd (issue 18 item 5,
/// tests/node_layout.rs).
pub fn skipped_but_due(
    plan: &Plan,
    settings: &Settings,
    conditions: &mut Conditions,
    now: OffsetDateTime,
) {
    for i in &plan.items {
        let why = match &i.decision {
            Decision::Skip(Skip::ExternalCa(ca)) => format!("its {} CA is external", ca.name()),
            Decision::Skip(Skip::Excluded) => "it is listed in exclude".to_string(),
            Decision::Skip(Skip::NotSignedByCa(ca)) => {
                format!("it is not signed by the {} CA (user-provided)", ca.name())
            }
            _ => continue,
        };
        let Some(t) = i
            .old_not_after
            .filter(|t| plan::is_due(*t, now, settings.renew_before))
        else {
            continue;
        };
        let text = format!(
            "{} expires at {} and kubeadm-certd does not renew it here: {why}",
            i.handler.name,
            rfc3339(t)
        );
        if conditions.holds(&format!("skipped-due:{}", i.handler.name), &text, now) {
            tracing::warn!(
                MESSAGE_ID = logging::MSG_EXPIRING_SOON,
                CERT_NAME = i.handler.name,
                NOT_AFTER = rfc3339(t),
                ACTION = "skip",
                "{text}"
            );
        }
    }
}

/// CAs with less than caWarnBefore left, CAs that clamp renewals, and kubelet certificates
/// close to expiry.
pub fn runway(scan: &Scan, settings: &Settings, conditions: &mut Conditions, now: OffsetDateTime) {
    for ca in scan.cas.values().flatten() {
        let Some(c) = &ca.cert else { continue };
        let name = ca.id.name();
        let path = scan.root.host_path(&ca.cert_path).display().to_string();
        if c.not_after - now < settings.ca_warn_before {
            // Phase 1 of CA rotation (issue 20) covers the etcd CA.
            let how = if ca.id == crate::pki::table::CaId::EtcdCa {
                "rotate it with `kubeadm-certd ca rotate etcd-ca` on one control-plane node (no downtime; see the README, Rotating a CA)"
            } else {
                "plan a CA rotation (kubeadm-certd rotates only the etcd CA so far; see the README, Rotating a CA)"
            };
            let text = format!(
                "the {name} CA expires at {}; leaves cannot outlive it: {how}",
                rfc3339(c.not_after)
            );
            if conditions.holds(&format!("ca-runway:{name}"), &text, now) {
                tracing::warn!(
                    MESSAGE_ID = logging::MSG_CA_EXPIRING,
                    CERT_NAME = name,
                    CERT_PATH = path.as_str(),
                    NOT_AFTER = rfc3339(c.not_after),
                    "{text}"
                );
            }
        }
        if settings.certificate_validity > (c.not_after - now).unsigned_abs() {
            let text = format!(
                "certificateValidity exceeds the {name} CA's remaining life; renewed certificates will be clamped to {}",
                rfc3339(c.not_after)
            );
            if conditions.holds(&format!("ca-validity:{name}"), &text, now) {
                tracing::warn!(
                    MESSAGE_ID = logging::MSG_CA_EXPIRING,
                    CERT_NAME = name,
                    "{text}"
                );
            }
        }
    }
    for k in &scan.kubelet {
        let Ok(c) = &k.cert else { continue };
        if !plan::is_due(c.not_after, now, settings.renew_before) {
            continue;
        }
        let text = format!(
            "{} expires at {}; the kubelet rotates it itself: check that rotation works (kubelet logs, pending CSRs)",
            k.name,
            rfc3339(c.not_after)
        );
        if conditions.holds(&format!("kubelet:{}", k.name), &text, now) {
            tracing::warn!(
                MESSAGE_ID = logging::MSG_EXPIRING_SOON,
                CERT_NAME = k.name,
                CERT_PATH = %scan.root.host_path(&k.path).display(),
                NOT_AFTER = rfc3339(c.not_after),
                "{text}"
            );
        }
    }
}

/// kubelet.conf embedding a client certificate instead of the rotated file (pre-1.17).
pub fn kubelet_conf(paths: &NodePaths, conditions: &mut Conditions, now: OffsetDateTime) {
    let Some(t) = crate::act::kubelet::conf::detect(paths) else {
        return;
    };
    let text = t.to_string();
    if conditions.holds("kubelet-conf-embedded", &text, now) {
        tracing::warn!(
            MESSAGE_ID = logging::MSG_EXPIRING_SOON,
            CERT_PATH = %paths.show(&paths.kubeconfigs.join("kubelet.conf")),
            "{text}"
        );
    }
}
