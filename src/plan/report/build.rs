//! Build a [`Report`] from a [`Scan`]: the pure bridge between reading the node and printing.

use super::{CaRow, CertRow, KubeletRow, Report, RowStatus};
use crate::pki::inspect::CertInfo;
use crate::pki::material::FileProblem;
use crate::plan::scan::Scan;
use std::time::Duration;
use time::OffsetDateTime;

/// The status of a certificate at `now`.
pub fn status(c: &CertInfo, now: OffsetDateTime, renew_before: Duration) -> RowStatus {
    if c.not_after < now {
        RowStatus::Expired
    } else if now < c.not_before {
        RowStatus::Invalid
    } else if crate::plan::is_due(c.not_after, now, renew_before) {
        RowStatus::Due
    } else {
        RowStatus::Ok
    }
}

/// Build the report. Fails on the first unreadable file, as kubeadm does: every problem is
/// returned so the caller can print one line for each.
pub fn build(
    scan: &Scan,
    now: OffsetDateTime,
    renew_before: Duration,
) -> Result<Report, Vec<&FileProblem>> {
    let problems = scan.problems();
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut r = Report::default();
    for e in &scan.certs {
        let h = e.handler;
        let loaded = e.state.as_ref().ok().and_then(|l| l.as_ref());
        let external = scan.ca(h.ca).is_some_and(|c| c.external());
        let path = crate::pki::material::cert_file_name(h);
        r.certs.push(CertRow {
            name: h.name.into(),
            path,
            not_before: loaded.map(|l| l.leaf.not_before),
            not_after: loaded.map(|l| l.leaf.not_after),
            ca_name: h.ca.name().into(),
            external,
            status: loaded.map_or(RowStatus::Missing, |l| status(&l.leaf, now, renew_before)),
        });
    }
    for (id, ca) in &scan.cas {
        let Ok(ca) = ca else { continue };
        r.cas.push(CaRow {
            name: id.name().into(),
            path: format!("{}.crt", id.base()),
            not_before: ca.cert.as_ref().map(|c| c.not_before),
            not_after: ca.cert.as_ref().map(|c| c.not_after),
            external: ca.external(),
            status: ca
                .cert
                .as_ref()
                .map_or(RowStatus::Missing, |c| status(c, now, Duration::ZERO)),
        });
    }
    for k in &scan.kubelet {
        let Ok(c) = &k.cert else { continue };
        r.kubelet.push(KubeletRow {
            name: k.name.into(),
            path: k
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            not_before: Some(c.not_before),
            not_after: Some(c.not_after),
            status: status(c, now, Duration::ZERO),
        });
    }
    Ok(r)
}
