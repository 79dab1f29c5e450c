//! k8s-openapi objects -> the rules' views (`plan::approve`), and a CSR's state as kubectl
//! shows it.

use super::client::Csr;
use crate::plan::approve::{is_control_plane, CsrView, NodeView};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use time::OffsetDateTime;

/// A Kubernetes timestamp as `time`'s.
pub fn to_time(t: &Time) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.0.as_second()).ok()
}

/// `time`'s instant as a Kubernetes timestamp (whole seconds, as the API stores them).
pub fn from_time(t: OffsetDateTime) -> Option<Time> {
    k8s_openapi::jiff::Timestamp::from_second(t.unix_timestamp())
        .ok()
        .map(Time)
}

/// Whether a condition of `kind` with status "True" is present.
fn has_condition(c: &Csr, kind: &str) -> bool {
    c.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|x| x.type_ == kind && x.status == "True"))
}

/// The rules' view of a CSR.
pub fn csr_view(c: &Csr) -> CsrView {
    CsrView {
        name: c.metadata.name.clone().unwrap_or_default(),
        signer_name: c.spec.signer_name.clone(),
        username: c.spec.username.clone().unwrap_or_default(),
        groups: c.spec.groups.clone().unwrap_or_default(),
        usages: c.spec.usages.clone().unwrap_or_default(),
        request_pem: c.spec.request.0.clone(),
        approved: has_condition(c, "Approved"),
        denied: has_condition(c, "Denied"),
        failed: has_condition(c, "Failed"),
        has_certificate: c
            .status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .is_some_and(|b| !b.0.is_empty()),
        created: c.metadata.creation_timestamp.as_ref().and_then(to_time),
    }
}

/// Whether a CSR still waits for a decision (not Approved, Denied or Failed, no certificate).
pub fn is_pending(v: &CsrView) -> bool {
    !(v.approved || v.denied || v.failed || v.has_certificate)
}

/// How a decided CSR was decided, from its conditions with status "True" and their reasons:
/// `Approved by KubectlApprove, certificate issued`, `Denied by KubeadmCertdDeny`.
pub fn decision(c: &Csr) -> String {
    let mut parts: Vec<String> = c
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|x| x.status == "True")
        .map(|x| match x.reason.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => format!("{} by {r}", x.type_),
            None => x.type_.clone(),
        })
        .collect();
    if csr_view(c).has_certificate {
        parts.push("certificate issued".into());
    }
    parts.join(", ")
}

/// The CONDITION column of `kubectl get csr`: Pending, Approved, Approved,Issued, Denied,
/// Approved,Failed.
pub fn state(v: &CsrView) -> String {
    let mut parts = Vec::new();
    if v.approved {
        parts.push("Approved");
    }
    if v.denied {
        parts.push("Denied");
    }
    if v.failed {
        parts.push("Failed");
    }
    if v.has_certificate {
        parts.push("Issued");
    }
    if parts.is_empty() {
        "Pending".into()
    } else {
        parts.join(",")
    }
}

/// The rules' view of a Node: its name and status.addresses as (type, address).
pub fn node_view(n: &Node) -> NodeView {
    NodeView {
        name: n.metadata.name.clone().unwrap_or_default(),
        addresses: n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(|a| {
                a.iter()
                    .map(|x| (x.type_.clone(), x.address.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        control_plane: is_control_plane(
            n.metadata
                .labels
                .iter()
                .flat_map(|l| l.keys().map(String::as_str)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::{
        CertificateSigningRequestCondition as Cond, CertificateSigningRequestSpec,
        CertificateSigningRequestStatus,
    };

    fn csr(conds: &[&str], cert: bool) -> Csr {
        Csr {
            metadata: kube::api::ObjectMeta {
                name: Some("csr-1".into()),
                creation_timestamp: from_time(time::macros::datetime!(2026-12-01 10:00 UTC)),
                ..Default::default()
            },
            spec: CertificateSigningRequestSpec {
                signer_name: "kubernetes.io/kubelet-serving".into(),
                username: Some("system:node:w1".into()),
                groups: Some(vec!["system:nodes".into()]),
                request: k8s_openapi::ByteString(b"PEM".to_vec()),
                ..Default::default()
            },
            status: Some(CertificateSigningRequestStatus {
                certificate: cert.then(|| k8s_openapi::ByteString(b"C".to_vec())),
                conditions: Some(
                    conds
                        .iter()
                        .map(|t| Cond {
                            type_: t.to_string(),
                            status: "True".into(),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
        }
    }

    #[test]
    fn states_as_kubectl_shows_them() {
        let v = csr_view(&csr(&[], false));
        assert!(is_pending(&v));
        assert_eq!(state(&v), "Pending");
        assert_eq!(v.username, "system:node:w1");
        assert_eq!(v.request_pem, b"PEM");
        assert_eq!(
            v.created,
            Some(time::macros::datetime!(2026-12-01 10:00 UTC))
        );
        let v = csr_view(&csr(&["Approved"], true));
        assert!(!is_pending(&v));
        assert_eq!(state(&v), "Approved,Issued");
        assert_eq!(state(&csr_view(&csr(&["Denied"], false))), "Denied");
        assert_eq!(
            state(&csr_view(&csr(&["Approved", "Failed"], false))),
            "Approved,Failed"
        );
        let mut done = csr(&["Approved"], true);
        if let Some(c) = done
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
            .and_then(|c| c.first_mut())
        {
            c.reason = Some("KubectlApprove".into());
        }
        assert_eq!(
            decision(&done),
            "Approved by KubectlApprove, certificate issued"
        );
        assert_eq!(decision(&csr(&["Denied"], false)), "Denied");
    }
}
