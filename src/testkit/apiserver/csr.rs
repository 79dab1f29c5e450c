//! CertificateSigningRequest rules, from kubernetes `pkg/registry/certificates/certificates/
//! strategy.go` (csrStrategy, csrApprovalStrategy; master, Dec 2026) and
//! `pkg/apis/certificates/validation/validation.go`:
//! - PrepareForCreate: spec.username/uid/groups/extra come from the requester, never the
//!   body; the status is cleared (no pre-approved CSRs).
//! - Create validation: the request is a PEM `CERTIFICATE REQUEST` whose signature checks;
//!   usages non-empty, known, no duplicates; a qualified signerName, not the legacy one;
//!   expirationSeconds ≥ 600.
//! - Approval PrepareForUpdate: only status.conditions is taken from the request
//!   (`populateConditionTimestamps` fills lastUpdateTime, and lastTransitionTime from an old
//!   condition of the same type and status, else now); spec and the rest of status stay.
//! - Update validation (`validateConditions`, `validateCertificateSigningRequestUpdate`):
//!   Approved/Denied/Failed only with status "True"; Approved and Denied exclusive; one
//!   condition per type; no Approved/Denied/Failed condition removed. Tolerances apply when
//!   the stored object already breaks a rule (`getValidationOptions`).

use super::status::{FieldError, FieldErrorKind as K, Status};
use super::store::{now, rfc3339};
use super::tls::User;
use base64::Engine;
use serde_json::{json, Value};
use x509_parser::prelude::FromDer;

const APPROVED: &str = "Approved";
const DENIED: &str = "Denied";
const FAILED: &str = "Failed";

/// `allValidUsages` (pkg/apis/certificates/types.go KeyUsage values), sorted as
/// `sets.List()` prints them.
const USAGES: [&str; 23] = [
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// csrStrategy.PrepareForCreate.
pub(crate) fn prepare_for_create(obj: &mut Value, user: &User) {
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    spec["username"] = json!(user.name);
    spec["groups"] = json!(user.groups);
    if let Some(s) = spec.as_object_mut() {
        // x509 users carry no UID and no extra.
        s.remove("uid");
        s.remove("extra");
    }
    obj["status"] = json!({});
}

/// The PEM text of `spec.request` (JSON `[]byte`, so base64).
pub(crate) fn request_pem(obj: &Value) -> Result<String, String> {
    let b = obj
        .pointer("/spec/request")
        .and_then(Value::as_str)
        .unwrap_or("");
    let raw = b64()
        .decode(b)
        .map_err(|e| format!("spec.request is not base64: {e}"))?;
    String::from_utf8(raw).map_err(|_| "spec.request is not PEM text".to_string())
}

/// certificates.ParseCSR + CheckSignature.
fn check_request(obj: &Value) -> Result<(), String> {
    let text = request_pem(obj)?;
    let block = pem::parse(text.as_bytes())
        .map_err(|_| "PEM block type must be CERTIFICATE REQUEST".to_string())?;
    if block.tag() != "CERTIFICATE REQUEST" {
        return Err("PEM block type must be CERTIFICATE REQUEST".into());
    }
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(block.contents())
            .map_err(|e| format!("x509: malformed certificate request: {e}"))?;
    csr.verify_signature()
        .map_err(|_| "x509: ECDSA/RSA verification failure".to_string())
}

/// ValidateCertificateSigningRequestCreate.
pub(crate) fn validate_create(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Err(e) = check_request(obj) {
        errs.push(FieldError::new(
            "spec.request",
            K::Invalid(e),
            "<request data>",
        ));
    }
    let usages: Vec<String> = obj
        .pointer("/spec/usages")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|u| u.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    if usages.is_empty() {
        errs.push(FieldError::new("spec.usages", K::Required, ""));
    }
    let all: Vec<String> = USAGES.iter().map(|s| s.to_string()).collect();
    for (i, u) in usages.iter().enumerate() {
        if !USAGES.contains(&u.as_str()) {
            errs.push(FieldError::new(
                format!("spec.usages[{i}]"),
                K::NotSupported(all.clone()),
                u,
            ));
        }
        if usages[..i].contains(u) {
            errs.push(FieldError::new(
                format!("spec.usages[{i}]"),
                K::Duplicate,
                u,
            ));
        }
    }
    let signer = obj
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if signer == "kubernetes.io/legacy-unknown" {
        errs.push(FieldError::new(
            "spec.signerName",
            K::Invalid("the legacy signerName is not allowed via this API version".into()),
            signer,
        ));
    } else if signer.is_empty() {
        errs.push(FieldError::new("spec.signerName", K::Required, ""));
    } else if !qualified_signer(signer) {
        errs.push(FieldError::new(
            "spec.signerName",
            K::Invalid(
                "must be a fully qualified domain and path of the form 'example.com/signer-name'"
                    .into(),
            ),
            signer,
        ));
    }
    if let Some(s) = obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
    {
        if s < 600 {
            errs.push(FieldError::new(
                "spec.expirationSeconds",
                K::Invalid("may not specify a duration less than 600 seconds (10 minutes)".into()),
                &s.to_string(),
            ));
        }
    }
    errs
}

/// ValidateSignerName, simplified: a DNS-subdomain domain, a slash, a non-empty path.
fn qualified_signer(s: &str) -> bool {
    let Some((domain, path)) = s.split_once('/') else {
        return false;
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    domain.contains('.') && domain.split('.').all(label_ok) && !path.is_empty()
}

/// One status condition, decoded as the Go type decodes it (unknown fields dropped).
#[derive(Debug, Clone, PartialEq)]
struct Cond {
    ty: String,
    status: String,
    reason: Option<String>,
    message: Option<String>,
    update: Option<String>,
    transition: Option<String>,
}

/// Whether the CSR has a condition of type `t` with status "True".
pub(crate) fn has_true(obj: &Value, t: &str) -> bool {
    conditions(obj)
        .unwrap_or_default()
        .iter()
        .any(|c| c.ty == t && c.status == "True")
}

fn conditions(obj: &Value) -> Result<Vec<Cond>, Status> {
    let bad = |m: &str| {
        Status::bad_request(format!("CertificateSigningRequest in version \"v1\" cannot be handled as a CertificateSigningRequest: {m}"))
    };
    let list = match obj.pointer("/status/conditions") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad("status.conditions: expected an array")),
    };
    let text = |c: &Value, k: &str| -> Result<Option<String>, Status> {
        match c.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(&format!("status.conditions.{k}: expected a string"))),
        }
    };
    let time = |c: &Value, k: &str| -> Result<Option<String>, Status> {
        let t = text(c, k)?;
        if let Some(s) = &t {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    bad(&format!(
                        "status.conditions.{k}: {s:?} is not an RFC 3339 time"
                    ))
                })?;
        }
        Ok(t)
    };
    list.iter()
        .map(|c| {
            if !c.is_object() {
                return Err(bad("status.conditions: expected objects"));
            }
            Ok(Cond {
                ty: text(c, "type")?.unwrap_or_default(),
                status: text(c, "status")?.unwrap_or_default(),
                reason: text(c, "reason")?.filter(|s| !s.is_empty()),
                message: text(c, "message")?.filter(|s| !s.is_empty()),
                update: time(c, "lastUpdateTime")?,
                transition: time(c, "lastTransitionTime")?,
            })
        })
        .collect()
}

fn to_json(cs: &[Cond]) -> Value {
    let items: Vec<Value> = cs
        .iter()
        .map(|c| {
            let mut v = json!({"type": c.ty, "status": c.status});
            for (k, x) in [
                ("reason", &c.reason),
                ("message", &c.message),
                ("lastUpdateTime", &c.update),
                ("lastTransitionTime", &c.transition),
            ] {
                if let Some(x) = x {
                    v[k] = json!(x);
                }
            }
            v
        })
        .collect();
    json!(items)
}

/// The stored object after an approval write: csrApprovalStrategy.PrepareForUpdate, then
/// ValidateCertificateSigningRequestApprovalUpdate. Metadata (labels, annotations) comes
/// from the request, as the generic registry takes it.
pub(crate) fn approval_update(old: &Value, new: &Value) -> Result<Value, Status> {
    let old_c = conditions(old)?;
    let mut new_c = conditions(new)?;
    let stamp = rfc3339(now());
    for c in &mut new_c {
        if c.update.is_none() {
            c.update = Some(stamp.clone());
        }
        if c.transition.is_none() {
            let kept = old_c
                .iter()
                .find(|o| o.ty == c.ty && o.status == c.status && o.transition.is_some())
                .and_then(|o| o.transition.clone());
            c.transition = Some(kept.unwrap_or_else(|| stamp.clone()));
        }
    }
    let errs = validate_conditions(&old_c, &new_c);
    if !errs.is_empty() {
        let name = old
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(Status::invalid(super::store::Kind::Csr, name, &errs));
    }
    let mut out = old.clone();
    out["metadata"] = new.get("metadata").cloned().unwrap_or_else(|| json!({}));
    if !out["status"].is_object() {
        out["status"] = json!({});
    }
    if new_c.is_empty() {
        if let Some(s) = out["status"].as_object_mut() {
            s.remove("conditions");
        }
    } else {
        out["status"]["conditions"] = to_json(&new_c);
    }
    Ok(out)
}

/// csrStrategy.PrepareForUpdate for a write to the object itself: spec and status stay.
pub(crate) fn main_update(old: &Value, new: &Value) -> Value {
    let mut out = old.clone();
    out["metadata"] = new.get("metadata").cloned().unwrap_or_else(|| json!({}));
    out
}

fn count(cs: &[Cond], t: &str) -> usize {
    cs.iter().filter(|c| c.ty == t).count()
}

fn validate_conditions(old: &[Cond], new: &[Cond]) -> Vec<FieldError> {
    // getValidationOptions: what the stored object already breaks stays tolerated.
    let allow_both = count(old, APPROVED) > 0 && count(old, DENIED) > 0;
    let allow_dup = old
        .iter()
        .enumerate()
        .any(|(i, c)| old[..i].iter().any(|o| o.ty == c.ty));
    let allow_empty = old.iter().any(|c| c.ty.is_empty());
    let mut errs = Vec::new();
    let (mut approved, mut denied) = (false, false);
    for (i, c) in new.iter().enumerate() {
        let at = |f: &str| format!("status.conditions[{i}].{f}");
        if !allow_empty && c.ty.is_empty() {
            errs.push(FieldError::new(at("type"), K::Required, ""));
        }
        let allowed: &[&str] = if [APPROVED, DENIED, FAILED].contains(&c.ty.as_str()) {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        if c.status.is_empty() {
            errs.push(FieldError::new(at("status"), K::Required, ""));
        } else if !allowed.contains(&c.status.as_str()) {
            let ok = allowed.iter().map(|s| s.to_string()).collect();
            errs.push(FieldError::new(
                at("status"),
                K::NotSupported(ok),
                &c.status,
            ));
        }
        if !allow_both {
            let clash = match c.ty.as_str() {
                APPROVED => {
                    approved = true;
                    denied
                }
                DENIED => {
                    denied = true;
                    approved
                }
                _ => false,
            };
            if clash {
                errs.push(FieldError::new(
                    "status.conditions",
                    K::Invalid("Approved and Denied conditions are mutually exclusive".into()),
                    &c.ty,
                ));
            }
        }
        if !allow_dup && new[..i].iter().any(|o| o.ty == c.ty) {
            errs.push(FieldError::new(at("type"), K::Duplicate, &c.ty));
        }
    }
    for t in [APPROVED, DENIED, FAILED] {
        if count(new, t) < count(old, t) {
            errs.push(FieldError::new(
                "status.conditions",
                K::Forbidden(format!(
                    "updates may not remove a condition of type \"{t}\""
                )),
                "",
            ));
        }
    }
    errs
}

/// base64 of a PEM, as `status.certificate` and `spec.request` carry it.
pub(crate) fn encode_pem(pem: &str) -> String {
    b64().encode(pem.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(ty: &str, status: &str) -> Cond {
        Cond {
            ty: ty.into(),
            status: status.into(),
            reason: None,
            message: None,
            update: None,
            transition: None,
        }
    }

    #[test]
    fn both_approved_and_denied_stay_tolerated_when_already_stored() {
        let old = [cond(APPROVED, "True"), cond(DENIED, "True")];
        assert!(validate_conditions(&old, &old).is_empty());
        assert_eq!(validate_conditions(&[], &old).len(), 1);
    }

    #[test]
    fn signer_names() {
        assert!(qualified_signer("kubernetes.io/kubelet-serving"));
        assert!(!qualified_signer("kubelet-serving"));
        assert!(!qualified_signer("Example.com/x"));
        assert!(!qualified_signer("example.com/"));
    }
}
