//! Carrying out a verdict: the condition written through `/approval` (Approved or Denied,
//! status "True", our reason, a message naming the checks), retried on transient errors with
//! bounded backoff, re-read and retried on 409, and idempotent: a CSR already decided, or
//! gone, is not an error.

use crate::kube::client::{sleep, Backoff, Csr, Kube};
use crate::kube::views::{csr_view, from_time, is_pending, state};
use crate::kube::KubeError;
use crate::plan::approve::{Outcome, Rule, Verdict, APPROVE_REASON, DENY_REASON};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use std::time::Duration;
use time::OffsetDateTime;

/// Attempts at writing one decision before the pass gives up (the next pass tries again).
const WRITE_ATTEMPTS: usize = 5;

/// Approved or Denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// type Approved.
    Approve,
    /// type Denied.
    Deny,
}

impl Kind {
    fn condition_type(self) -> &'static str {
        match self {
            Kind::Approve => "Approved",
            Kind::Deny => "Denied",
        }
    }
    fn reason(self) -> &'static str {
        match self {
            Kind::Approve => APPROVE_REASON,
            Kind::Deny => DENY_REASON,
        }
    }
}

/// What writing a decision came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Our condition is on the CSR.
    Done,
    /// Someone decided it first (another control-plane daemon, an operator): its state now.
    AlreadyDecided(String),
    /// The CSR no longer exists.
    Gone,
}

/// "rule (f) ip-sans: 10.0.0.9 is Node w2's InternalIP" — the first failure, with its value.
pub fn failure_line(rule: Rule, value: &str) -> String {
    format!("rule ({}) {rule}: {value}", rule.letter())
}

/// The Approved message: who approved, and every check with its outcome.
pub fn approve_message(v: &Verdict, by: &str) -> String {
    let checks: Vec<String> = v
        .checks
        .iter()
        .map(|(r, o)| match o {
            Outcome::Pass(_) => format!("({}) {r} ok", r.letter()),
            Outcome::NotApplicable(_) => format!("({}) {r} n/a", r.letter()),
            Outcome::Fail(s) => format!("({}) {r} FAILED: {s}", r.letter()),
        })
        .collect();
    format!("approved by kubeadm-certd on {by}: {}", checks.join(", "))
}

/// The Denied message: the first failed rule and the offending value.
pub fn deny_message(rule: Rule, value: &str, by: &str) -> String {
    format!(
        "denied by kubeadm-certd on {by}: {}",
        failure_line(rule, value)
    )
}

/// `csr` with our condition added (the approval strategy takes only `status.conditions`).
pub fn with_condition(csr: &Csr, kind: Kind, message: &str, now: OffsetDateTime) -> Csr {
    let mut c = csr.clone();
    let status = c
        .status
        .get_or_insert_with(CertificateSigningRequestStatus::default);
    let conds = status.conditions.get_or_insert_with(Vec::new);
    conds.retain(|x| x.type_ != kind.condition_type());
    conds.push(CertificateSigningRequestCondition {
        type_: kind.condition_type().into(),
        status: "True".into(),
        reason: Some(kind.reason().into()),
        message: Some(message.into()),
        last_update_time: from_time(now),
        last_transition_time: from_time(now),
    });
    c
}

/// Write `kind` on `csr` through `/approval`. The write carries the resourceVersion read, so
/// a CSR decided meanwhile gives 409: re-read, and stop if it is decided. Transient errors
/// (no connection, 429, 5xx) are retried with backoff, [`WRITE_ATTEMPTS`] times.
pub async fn write(
    kube: &Kube,
    csr: &Csr,
    kind: Kind,
    message: &str,
    now: &(dyn Fn() -> OffsetDateTime + Sync),
) -> Result<Written, KubeError> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let mut cur = csr.clone();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(3));
    let mut attempt = 0;
    loop {
        let v = csr_view(&cur);
        if !is_pending(&v) {
            return Ok(Written::AlreadyDecided(state(&v)));
        }
        attempt += 1;
        let err = match kube
            .put_approval(&with_condition(&cur, kind, message, now()))
            .await
        {
            Ok(_) => return Ok(Written::Done),
            Err(e) if e.not_found() => return Ok(Written::Gone),
            Err(e) => e,
        };
        if attempt >= WRITE_ATTEMPTS || !(err.conflict() || err.transient()) {
            return Err(err);
        }
        if err.transient() {
            tracing::debug!("{err}; retrying");
            if !sleep(backoff.next_delay(), kube.cancel()).await {
                return Err(KubeError::Cancelled);
            }
        }
        // Re-read after a conflict (and after a transient error: it may have landed).
        cur = match kube.get_csr(&name).await {
            Ok(c) => c,
            Err(e) if e.not_found() => return Ok(Written::Gone),
            Err(e) if e.transient() && attempt < WRITE_ATTEMPTS => continue,
            Err(e) => return Err(e),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_and_messages() {
        let t = time::macros::datetime!(2026-12-01 10:00 UTC);
        let c = with_condition(&Csr::default(), Kind::Approve, "m", t);
        let conds = c.status.unwrap().conditions.unwrap();
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].type_, "Approved");
        assert_eq!(conds[0].status, "True");
        assert_eq!(conds[0].reason.as_deref(), Some(APPROVE_REASON));
        assert_eq!(
            failure_line(Rule::IpSans, "10.0.0.9"),
            "rule (f) ip-sans: 10.0.0.9"
        );
        let v = Verdict {
            checks: vec![
                (Rule::Signer, Outcome::Pass("x".into())),
                (Rule::Attested, Outcome::NotApplicable("y".into())),
            ],
            node: None,
            request: None,
        };
        assert_eq!(
            approve_message(&v, "cp-1"),
            "approved by kubeadm-certd on cp-1: (a) signer ok, (h) attested n/a"
        );
        assert_eq!(
            deny_message(Rule::DnsSans, "*.x", "cp-1"),
            "denied by kubeadm-certd on cp-1: rule (g) dns-sans: *.x"
        );
    }
}
