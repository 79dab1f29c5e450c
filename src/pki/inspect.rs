//! Parse and check X.509 certificates: validity, profile, chain, key match.
//!
//! Everything is copied out of x509-parser's borrowed view into an owned [`CertInfo`], so
//! callers need not keep PEM buffers alive.

use std::net::IpAddr;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// Why a certificate file could not be used. Messages name no path; callers prefix it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    /// Not PEM, or PEM with something else around it.
    #[error("{0}")]
    Pem(String),
    /// PEM, but not a parsable certificate.
    #[error("not a valid X.509 certificate: {0}")]
    X509(String),
}

/// The key algorithm of a public or private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    /// RSA with this modulus size in bits.
    Rsa(usize),
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384 (kubeadm's `ECDSA-P384`, kubernetes PR #131677).
    EcP384,
}

impl std::fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyAlg::Rsa(b) => write!(f, "RSA-{b}"),
            KeyAlg::EcP256 => write!(f, "ECDSA-P256"),
            KeyAlg::EcP384 => write!(f, "ECDSA-P384"),
        }
    }
}

/// One subject attribute: its OID (dotted), ASN.1 string tag and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnAttr {
    /// Dotted OID, e.g. "2.5.4.3" for CN.
    pub oid: String,
    /// ASN.1 tag number of the string type (19 PrintableString, 12 UTF8String, ...).
    pub tag: u32,
    /// The value.
    pub value: String,
}

/// Everything kubeadm-certd needs to know about one certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// DER of the whole certificate.
    pub der: Vec<u8>,
    /// Raw DER of the subject name.
    pub subject_raw: Vec<u8>,
    /// Raw DER of the issuer name.
    pub issuer_raw: Vec<u8>,
    /// Subject attributes in order, one per RDN.
    pub subject: Vec<DnAttr>,
    /// Whether any RDN holds more than one attribute (rcgen cannot rebuild those).
    pub multi_valued_rdn: bool,
    /// DNS SANs as written.
    pub dns: Vec<String>,
    /// IP SANs as written.
    pub ips: Vec<IpAddr>,
    /// EKU serverAuth.
    pub server_auth: bool,
    /// EKU clientAuth.
    pub client_auth: bool,
    /// Other EKU OIDs, dotted.
    pub other_eku: Vec<String>,
    /// BasicConstraints CA:TRUE.
    pub is_ca: bool,
    /// KeyUsage keyCertSign.
    pub key_cert_sign: bool,
    /// NotBefore.
    pub not_before: OffsetDateTime,
    /// NotAfter.
    pub not_after: OffsetDateTime,
    /// DER of the SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// The public key's algorithm, if supported.
    pub key_alg: Option<KeyAlg>,
    /// Serial number bytes (big-endian, as encoded).
    pub serial: Vec<u8>,
}

const OID_CN: &str = "2.5.4.3";
const OID_O: &str = "2.5.4.10";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

impl CertInfo {
    /// Parse one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, CertError> {
        let (rest, c) =
            X509Certificate::from_der(der).map_err(|e| CertError::X509(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertError::X509(
                "trailing bytes after the certificate".into(),
            ));
        }
        let x = |e: x509_parser::error::X509Error| CertError::X509(e.to_string());
        let mut subject = Vec::new();
        let mut multi_valued_rdn = false;
        for rdn in c.subject().iter_rdn() {
            multi_valued_rdn |= rdn.iter().count() > 1;
            for a in rdn.iter() {
                let value = a
                    .as_str()
                    .map_err(|_| CertError::X509("subject attribute is not a string".into()))?;
                subject.push(DnAttr {
                    oid: a.attr_type().to_id_string(),
                    tag: a.attr_value().tag().0,
                    value: value.to_string(),
                });
            }
        }
        let (mut dns, mut ips) = (Vec::new(), Vec::new());
        if let Some(san) = c.subject_alternative_name().map_err(x)? {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(d) => dns.push(d.to_string()),
                    GeneralName::IPAddress(b) => ips.push(ip_from_bytes(b)?),
                    _ => {}
                }
            }
        }
        let (mut server_auth, mut client_auth, mut other_eku) = (false, false, Vec::new());
        if let Some(eku) = c.extended_key_usage().map_err(x)? {
            server_auth = eku.value.server_auth;
            client_auth = eku.value.client_auth;
            other_eku = eku.value.other.iter().map(|o| o.to_id_string()).collect();
        }
        let is_ca = c
            .basic_constraints()
            .map_err(x)?
            .is_some_and(|b| b.value.ca);
        let key_cert_sign = c
            .key_usage()
            .map_err(x)?
            .is_some_and(|k| k.value.key_cert_sign());
        let spki = c.public_key();
        let key_alg = match spki.parsed() {
            Ok(PublicKey::RSA(r)) => Some(KeyAlg::Rsa(r.key_size())),
            Ok(PublicKey::EC(_)) => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                match curve.as_deref() {
                    Some(OID_P256) => Some(KeyAlg::EcP256),
                    Some(OID_P384) => Some(KeyAlg::EcP384),
                    _ => None,
                }
            }
            _ => None,
        };
        let ts = |t: &x509_parser::time::ASN1Time| t.to_datetime();
        Ok(CertInfo {
            der: der.to_vec(),
            subject_raw: c.subject().as_raw().to_vec(),
            issuer_raw: c.issuer().as_raw().to_vec(),
            subject,
            multi_valued_rdn,
            dns,
            ips,
            server_auth,
            client_auth,
            other_eku,
            is_ca,
            key_cert_sign,
            not_before: ts(&c.validity().not_before),
            not_after: ts(&c.validity().not_after),
            spki: spki.raw.to_vec(),
            key_alg,
            serial: c.raw_serial().to_vec(),
        })
    }

    /// The subject CN.
    pub fn cn(&self) -> Option<&str> {
        self.subject
            .iter()
            .find(|a| a.oid == OID_CN)
            .map(|a| a.value.as_str())
    }

    /// The subject O values.
    pub fn orgs(&self) -> Vec<&str> {
        self.subject
            .iter()
            .filter(|a| a.oid == OID_O)
            .map(|a| a.value.as_str())
            .collect()
    }

    /// Whether `now` lies within the validity period.
    pub fn valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Whether the serial is negative (its DER integer has the sign bit set).
    pub fn negative_serial(&self) -> bool {
        self.serial.first().is_some_and(|b| b & 0x80 != 0)
    }

    /// Whether `issuer` signed this certificate: issuer bytes equal its subject bytes and
    /// the signature verifies with its key.
    pub fn signed_by(&self, issuer: &CertInfo) -> bool {
        if self.issuer_raw != issuer.subject_raw {
            return false;
        }
        let (Ok((_, me)), Ok((_, ca))) = (
            X509Certificate::from_der(&self.der),
            X509Certificate::from_der(&issuer.der),
        ) else {
            return false;
        };
        me.verify_signature(Some(ca.public_key())).is_ok()
    }

    /// The certificate as PEM.
    pub fn to_pem(&self) -> String {
        crate::pki::inspect::pem_lf(&pem::Pem::new("CERTIFICATE", self.der.clone()))
    }
}

fn ip_from_bytes(b: &[u8]) -> Result<IpAddr, CertError> {
    ip_san(b).ok_or_else(|| CertError::X509(format!("IP SAN of {} bytes", b.len())))
}

/// An IP SAN as encoded: 4 bytes (IPv4) or 16 (IPv6), as RFC 5280 and Go require; `None`
/// for any other length.
pub(crate) fn ip_san(b: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Some(IpAddr::from(a));
    }
    <[u8; 16]>::try_from(b).ok().map(IpAddr::from)
}

/// PEM with LF line endings, as Go's encoding/pem (and so kubeadm) writes it; the pem
/// crate defaults to CRLF.
pub fn pem_lf(p: &pem::Pem) -> String {
    pem::encode_config(
        p,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// One PEM block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The label, e.g. "CERTIFICATE" or "RSA PRIVATE KEY".
    pub label: String,
    /// The decoded contents.
    pub der: Vec<u8>,
}

/// Split PEM text into blocks, strictly: only whitespace may stand outside the blocks, so a
/// truncated file or one with trailing garbage is an error rather than silently half-read.
pub fn pem_blocks(bytes: &[u8]) -> Result<Vec<Block>, CertError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| CertError::Pem("not PEM: contains non-UTF-8 bytes".into()))?;
    let mut blocks = Vec::new();
    let mut rest = text;
    loop {
        let Some(start) = rest.find("-----BEGIN ") else {
            if !rest.trim().is_empty() {
                let what = if blocks.is_empty() {
                    "not PEM"
                } else {
                    "trailing data after the last PEM block"
                };
                return Err(CertError::Pem(what.into()));
            }
            break;
        };
        if !rest[..start].trim().is_empty() {
            return Err(CertError::Pem("unexpected data before a PEM block".into()));
        }
        let after = &rest[start..];
        let label_end = after[11..]
            .find("-----")
            .ok_or_else(|| CertError::Pem("malformed PEM header".into()))?;
        let label = &after[11..11 + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = after
            .find(&end_marker)
            .ok_or_else(|| CertError::Pem(format!("truncated PEM: no END line for {label}")))?;
        let block_text = &after[..end + end_marker.len()];
        let p = pem::parse(block_text)
            .map_err(|e| CertError::Pem(format!("bad PEM block {label}: {e}")))?;
        blocks.push(Block {
            label: p.tag().to_string(),
            der: p.contents().to_vec(),
        });
        rest = &after[end + end_marker.len()..];
    }
    if blocks.is_empty() {
        return Err(CertError::Pem("not PEM: no PEM block found".into()));
    }
    Ok(blocks)
}

/// Refuse what Go's crypto/x509 (and so kubeadm and the API server) refuses.
fn checked(c: CertInfo) -> Result<CertInfo, CertError> {
    if c.negative_serial() {
        return Err(CertError::X509(
            "negative serial number (RFC 5280 requires a positive one; Go 1.23+ rejects it)".into(),
        ));
    }
    Ok(c)
}

/// Parse a `.crt` file: one or more CERTIFICATE blocks, the leaf first.
pub fn parse_cert_file(bytes: &[u8]) -> Result<Vec<CertInfo>, CertError> {
    let blocks = pem_blocks(bytes)?;
    let mut out = Vec::new();
    for b in blocks {
        if b.label != "CERTIFICATE" {
            return Err(CertError::Pem(format!(
                "expected only CERTIFICATE blocks, found {}",
                b.label
            )));
        }
        out.push(checked(CertInfo::from_der(&b.der)?)?);
    }
    Ok(out)
}

/// Parse a combined PEM (the kubelet's `*-current.pem`): certificates plus one private key.
/// Returns the certificates and the key block.
pub fn parse_combined(bytes: &[u8]) -> Result<(Vec<CertInfo>, Option<Block>), CertError> {
    let mut certs = Vec::new();
    let mut key = None;
    for b in pem_blocks(bytes)? {
        if b.label == "CERTIFICATE" {
            certs.push(checked(CertInfo::from_der(&b.der)?)?);
        } else if b.label.ends_with("PRIVATE KEY") && key.is_none() {
            key = Some(b);
        } else {
            return Err(CertError::Pem(format!("unexpected PEM block {}", b.label)));
        }
    }
    if certs.is_empty() {
        return Err(CertError::Pem("no CERTIFICATE block".into()));
    }
    Ok((certs, key))
}
