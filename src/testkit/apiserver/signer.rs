//! The signing step of kube-controller-manager's kubelet-serving signer, for tests that want
//! an issued certificate (kubernetes pkg/controller/certificates/signer/signer.go: only an
//! Approved, not Failed CSR without a certificate is signed; NotBefore is backdated 5
//! minutes; the duration is --cluster-signing-duration, 1 year, or expirationSeconds).
//! The signer's re-validation (`ValidateKubeletServingCSR`) is not repeated here.

use super::csr::{has_true, request_pem};
use super::store::now;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::time::Duration;

/// What kube-controller-manager's signer would issue for an Approved, not Failed CSR without
/// a certificate: the requested subject and SANs, usages mapped to key usage/EKU, NotBefore
/// 5 minutes back, NotAfter one year on (or `expirationSeconds`). Returns the PEM.
pub(crate) fn sign(obj: &Value, ca_cert_pem: &str, ca_key_pem: &str) -> Result<String> {
    if !has_true(obj, "Approved") || has_true(obj, "Failed") {
        bail!("the CSR is not Approved, or has Failed: the signer issues nothing");
    }
    if obj
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty())
    {
        bail!("the CSR already has a certificate");
    }
    let text = request_pem(obj).map_err(anyhow::Error::msg)?;
    let mut req = rcgen::CertificateSigningRequestParams::from_pem(&text).context(
        "parsing spec.request (rcgen reads SAN, key usage, EKU and basic constraints only)",
    )?;
    let p = &mut req.params;
    p.key_usages.clear();
    p.extended_key_usages.clear();
    for u in obj
        .pointer("/spec/usages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match u.as_str().unwrap_or("") {
            "digital signature" => p.key_usages.push(rcgen::KeyUsagePurpose::DigitalSignature),
            "key encipherment" => p.key_usages.push(rcgen::KeyUsagePurpose::KeyEncipherment),
            "server auth" => p
                .extended_key_usages
                .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth),
            "client auth" => p
                .extended_key_usages
                .push(rcgen::ExtendedKeyUsagePurpose::ClientAuth),
            _ => {}
        }
    }
    p.is_ca = rcgen::IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    p.serial_number = Some(crate::pki::issue::random_serial().into());
    let life = obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_u64)
        .map_or(Duration::from_secs(365 * 86_400), Duration::from_secs);
    let t = now();
    p.not_before = t - Duration::from_secs(300);
    p.not_after = t + life;
    let key = rcgen::KeyPair::from_pem(ca_key_pem).context("parsing the CA key")?;
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(ca_cert_pem, key).context("parsing the CA certificate")?;
    Ok(req.signed_by(&issuer)?.pem())
}
