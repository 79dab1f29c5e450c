//! Build a renewed certificate from the old one's profile, signed by the node's CA, as
//! `kubeadm certs renew` does (S-mgr `RenewUsingLocalCA`, S-pki `NewSignedCert`).

use crate::pki::inspect::{CertInfo, DnAttr};
use rand::Rng;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use std::time::Duration;
use time::OffsetDateTime;

/// kubeadm's `CertificateBackdate`.
pub const BACKDATE: Duration = Duration::from_secs(300);

/// Why a certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The old certificate's profile cannot be reproduced exactly.
    #[error("cannot reproduce the certificate's profile: {0}")]
    Profile(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The result failed verification; nothing was written.
    #[error("new certificate failed verification: {0}")]
    Verify(String),
}

/// The CA used to sign.
pub struct Ca<'a> {
    /// The CA certificate.
    pub cert: &'a CertInfo,
    /// The CA's key.
    pub key: &'a KeyPair,
}

/// A freshly issued certificate.
#[derive(Debug)]
pub struct Issued {
    /// Parsed view of the new certificate.
    pub info: CertInfo,
    /// Whether NotAfter was clamped to the CA's NotAfter.
    pub clamped: bool,
}

/// A uniformly random serial in [1, 2^63−1), as kubeadm draws it.
pub fn random_serial() -> u64 {
    rand::rng().random_range(1..i64::MAX as u64)
}

/// Rebuild the subject exactly: same attribute order and string types. rcgen's
/// DistinguishedName holds one value per type, so a second value of a type goes in as a
/// custom type with the same OID, which encodes identically.
pub fn subject_of(old: &CertInfo) -> Result<DistinguishedName, IssueError> {
    if old.multi_valued_rdn {
        return Err(IssueError::Profile("subject has a multi-valued RDN".into()));
    }
    let mut dn = DistinguishedName::new();
    let mut seen: Vec<&str> = Vec::new();
    for a in &old.subject {
        let oid = parse_oid(&a.oid)?;
        let ty = match seen.iter().filter(|o| **o == a.oid).count() {
            0 => DnType::from_oid(&oid),
            1 => DnType::CustomDnType(oid),
            _ => {
                return Err(IssueError::Profile(format!(
                    "subject repeats attribute {} more than twice",
                    a.oid
                )))
            }
        };
        seen.push(&a.oid);
        dn.push(ty, dn_value(a)?);
    }
    Ok(dn)
}

fn parse_oid(s: &str) -> Result<Vec<u64>, IssueError> {
    s.split('.')
        .map(|p| {
            p.parse::<u64>()
                .map_err(|_| IssueError::Profile(format!("bad OID {s}")))
        })
        .collect()
}

fn dn_value(a: &DnAttr) -> Result<DnValue, IssueError> {
    const PRINTABLE: u32 = 19;
    const UTF8: u32 = 12;
    const IA5: u32 = 22;
    let bad = |_| IssueError::Profile(format!("subject value {:?} does not fit its type", a.value));
    Ok(match a.tag {
        PRINTABLE => DnValue::PrintableString(a.value.clone().try_into().map_err(bad)?),
        IA5 => DnValue::Ia5String(a.value.clone().try_into().map_err(bad)?),
        UTF8 => DnValue::Utf8String(a.value.clone()),
        t => {
            return Err(IssueError::Profile(format!(
                "subject string type {t} is not supported"
            )))
        }
    })
}

/// The parameters of the renewed certificate: CN/O, DNS and IP SANs, EKUs from the old one;
/// kubeadm's fixed KeyUsage and CA:FALSE; a random serial; NotBefore = now − 5 min and
/// NotAfter = now + validity, clamped to the CA's NotAfter.
pub fn params_for(
    old: &CertInfo,
    ca: &CertInfo,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<(CertificateParams, bool), IssueError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = subject_of(old)?;
    // kubeadm's RemoveDuplicateAltNames: DNS names de-duplicated and sorted, IPs de-duplicated
    // in order.
    let mut dns = old.dns.clone();
    dns.sort();
    dns.dedup();
    for d in dns {
        let name = d
            .clone()
            .try_into()
            .map_err(|_| IssueError::Profile(format!("DNS SAN {d:?} is not IA5")))?;
        p.subject_alt_names.push(SanType::DnsName(name));
    }
    let mut ips = Vec::new();
    for ip in &old.ips {
        if !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    p.subject_alt_names
        .extend(ips.into_iter().map(SanType::IpAddress));
    if old.server_auth {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if old.client_auth {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    for o in &old.other_eku {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::Other(parse_oid(o)?));
    }
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let clamped = leaf_basics(&mut p, ca, now, validity);
    Ok((p, clamped))
}

/// What every leaf kubeadm-certd issues shares: CA:FALSE, the CA's SKI as AKI, a random serial,
/// NotBefore = now − 5 min, NotAfter = now + validity clamped to the CA's. Returns whether it
/// was clamped.
pub fn leaf_basics(
    p: &mut CertificateParams,
    ca: &CertInfo,
    now: OffsetDateTime,
    validity: Duration,
) -> bool {
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    p.serial_number = Some(SerialNumber::from(random_serial()));
    p.not_before = now - BACKDATE;
    let wanted = now + validity;
    let clamped = wanted > ca.not_after;
    p.not_after = if clamped { ca.not_after } else { wanted };
    clamped
}

/// Issue the renewed certificate for `new_key`, then verify it before anyone writes it:
/// issuer bytes equal the CA's subject bytes, the signature verifies with the CA's key,
/// the key matches, and subject, SANs and EKUs equal the old certificate's.
pub fn issue(
    old: &CertInfo,
    new_key: &KeyPair,
    ca: &Ca<'_>,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<Issued, IssueError> {
    let (params, clamped) = params_for(old, ca.cert, now, validity)?;
    let issuer = Issuer::from_ca_cert_der(&ca.cert.der.clone().into(), ca.key)
        .map_err(|e| IssueError::Sign(e.to_string()))?;
    let cert = params
        .signed_by(new_key, &issuer)
        .map_err(|e| IssueError::Sign(e.to_string()))?;
    let info = CertInfo::from_der(cert.der()).map_err(|e| IssueError::Verify(e.to_string()))?;
    verify_issued(
        old,
        &info,
        ca.cert,
        &rcgen::PublicKeyData::subject_public_key_info(new_key),
    )?;
    Ok(Issued { info, clamped })
}

/// The checks every renewed certificate must pass: [`verify_identity`] plus equal EKUs.
pub fn verify_issued(
    old: &CertInfo,
    new: &CertInfo,
    ca: &CertInfo,
    key_spki: &[u8],
) -> Result<(), IssueError> {
    verify_identity(old, new, ca, key_spki)?;
    if (new.server_auth, new.client_auth, &new.other_eku)
        != (old.server_auth, old.client_auth, &old.other_eku)
    {
        return Err(IssueError::Verify(
            "extended key usages differ from the old certificate's".into(),
        ));
    }
    Ok(())
}

/// The checks every new certificate must pass, whoever signed it (us or an external CA):
/// issuer bytes, signature, key match, subject and SANs, and not a CA.
pub fn verify_identity(
    old: &CertInfo,
    new: &CertInfo,
    ca: &CertInfo,
    key_spki: &[u8],
) -> Result<(), IssueError> {
    let v = |m: String| Err(IssueError::Verify(m));
    if new.issuer_raw != ca.subject_raw {
        return v("issuer does not equal the CA's subject byte for byte".into());
    }
    if !new.signed_by(ca) {
        return v("signature does not verify with the CA's key".into());
    }
    if new.spki != key_spki {
        return v("certificate does not match the new private key".into());
    }
    if new.subject_raw != old.subject_raw {
        return v("subject differs from the old certificate's".into());
    }
    let sorted = |d: &[String]| {
        let mut d = d.to_vec();
        d.sort();
        d.dedup();
        d
    };
    if sorted(&new.dns) != sorted(&old.dns) {
        return v(format!(
            "DNS SANs [{}] differ from [{}]",
            new.dns.join(", "),
            old.dns.join(", ")
        ));
    }
    let mut old_ips = Vec::new();
    for ip in &old.ips {
        if !old_ips.contains(ip) {
            old_ips.push(*ip);
        }
    }
    if new.ips != old_ips {
        return v(format!(
            "IP SANs [{}] differ from [{}]",
            join_ips(&new.ips),
            join_ips(&old.ips)
        ));
    }
    if new.is_ca {
        return v("new certificate is a CA".into());
    }
    Ok(())
}
/// IP addresses for a message: `10.0.0.1, ::1`.
fn join_ips(ips: &[std::net::IpAddr]) -> String {
    let v: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
    v.join(", ")
}
