//! A PKCS#10 certificate request (`spec.request` of a CertificateSigningRequest), decoded
//! into what the approval rules look at: the subject's CN and O values (all of them), the
//! SANs of its extensionRequest by kind, the public key's algorithm, and whether the
//! request's self-signature verifies.
//!
//! Parsing is strict where Go's `crypto/x509` (which the API server and the signer use) could
//! read the request differently from us: exactly one PEM block, no bytes after the DER, and
//! at most one subjectAltName extension (Go keeps the last one it sees, so two would let the
//! signed certificate carry names we never checked).
//!
//! The self-signature is recorded, not enforced here: the rules fail (b) on a request that
//! does not verify (proof of possession of the key belongs to "who asks"). The API server
//! already refuses such a request on create (kubernetes `pkg/apis/certificates/validation/
//! validation.go`, `validateCSR` -> `CheckSignature`), so this is defence in depth.

use crate::pki::inspect::pem_blocks;
use serde::Serialize;
use std::net::IpAddr;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// A request PEM larger than this is refused unread. A kubelet's is under 2 KiB; the API
/// server would store up to its object limit (about 3 MiB), which is no reason to parse it.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Why a request could not be read. Messages name what is wrong, not where it came from
/// (the caller names the CSR).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Over [`MAX_REQUEST_BYTES`].
    #[error("request is {0} bytes, more than the {MAX_REQUEST_BYTES} accepted")]
    TooLarge(usize),
    /// Not exactly one `CERTIFICATE REQUEST` PEM block.
    #[error("request is not one PEM CERTIFICATE REQUEST: {0}")]
    Pem(String),
    /// The DER does not parse as PKCS#10.
    #[error("request is not a valid PKCS#10 certificate request: {0}")]
    Der(String),
    /// A subject attribute or a SAN that cannot be read.
    #[error("request has {0}")]
    Content(String),
}

/// What the approval rules need from a request, owned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CsrRequest {
    /// Every subject CN value, in order (a well-formed request has exactly one).
    pub common_names: Vec<String>,
    /// Every subject O value, in order.
    pub organizations: Vec<String>,
    /// DNS SANs as written.
    pub dns: Vec<String>,
    /// IP SANs, as encoded (4 or 16 bytes; an IPv4-mapped IPv6 address stays IPv6 here).
    pub ips: Vec<IpAddr>,
    /// Email (rfc822Name) SANs.
    pub emails: Vec<String>,
    /// URI SANs.
    pub uris: Vec<String>,
    /// SANs of any other kind (otherName, directoryName, ...), described.
    pub other_sans: Vec<String>,
    /// The public key's algorithm: `RSA-2048`, `ECDSA-P256`, `Ed25519`, or the dotted OID.
    pub key_algorithm: String,
    /// `None` when the self-signature verifies; else why not.
    pub signature_error: Option<String>,
}

impl CsrRequest {
    /// The subject CN when there is exactly one.
    pub fn cn(&self) -> Option<&str> {
        match self.common_names.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Whether the self-signature verifies.
    pub fn signature_ok(&self) -> bool {
        self.signature_error.is_none()
    }
}

const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_ED25519: &str = "1.3.101.112";

/// Decode a PEM `CERTIFICATE REQUEST` (`spec.request`, already base64-decoded by the API
/// client) into a [`CsrRequest`].
pub fn parse(pem: &[u8]) -> Result<CsrRequest, CsrError> {
    if pem.len() > MAX_REQUEST_BYTES {
        return Err(CsrError::TooLarge(pem.len()));
    }
    let blocks = pem_blocks(pem).map_err(|e| CsrError::Pem(e.to_string()))?;
    let der = match blocks.as_slice() {
        [b] if b.label == "CERTIFICATE REQUEST" => &b.der,
        [b] => return Err(CsrError::Pem(format!("found a {} block", b.label))),
        more => return Err(CsrError::Pem(format!("found {} PEM blocks", more.len()))),
    };
    let (rest, req) =
        X509CertificationRequest::from_der(der).map_err(|e| CsrError::Der(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Der(format!(
            "{} bytes after the request",
            rest.len()
        )));
    }
    let info = &req.certification_request_info;
    let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>, what: &str| {
        a.as_str()
            .map(str::to_owned)
            .map_err(|_| CsrError::Content(format!("a subject {what} that is not a string")))
    };
    let common_names = info
        .subject
        .iter_common_name()
        .map(|a| text(a, "CN"))
        .collect::<Result<Vec<_>, _>>()?;
    let organizations = info
        .subject
        .iter_organization()
        .map(|a| text(a, "O"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = CsrRequest {
        common_names,
        organizations,
        dns: Vec::new(),
        ips: Vec::new(),
        emails: Vec::new(),
        uris: Vec::new(),
        other_sans: Vec::new(),
        key_algorithm: key_algorithm(&info.subject_pki),
        signature_error: req.verify_signature().err().map(|e| e.to_string()),
    };
    sans(&req, &mut out)?;
    Ok(out)
}

/// Every SAN of every extensionRequest attribute (Go reads them all, too).
fn sans(req: &X509CertificationRequest<'_>, out: &mut CsrRequest) -> Result<(), CsrError> {
    let mut seen = 0;
    for attr in req.certification_request_info.iter_attributes() {
        let ParsedCriAttribute::ExtensionRequest(er) = attr.parsed_attribute() else {
            continue;
        };
        for ext in er
            .extensions
            .iter()
            .filter(|e| e.oid == OID_X509_EXT_SUBJECT_ALT_NAME)
        {
            seen += 1;
            if seen > 1 {
                return Err(CsrError::Content(
                    "more than one subjectAltName extension".into(),
                ));
            }
            let san = match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(s) => s,
                ParsedExtension::ParseError { error } => {
                    return Err(CsrError::Content(format!(
                        "a subjectAltName extension that does not parse: {error}"
                    )))
                }
                _ => {
                    return Err(CsrError::Content(
                        "a subjectAltName extension that does not parse".into(),
                    ))
                }
            };
            for n in &san.general_names {
                general_name(n, out)?;
            }
        }
    }
    Ok(())
}

fn general_name(n: &GeneralName<'_>, out: &mut CsrRequest) -> Result<(), CsrError> {
    match n {
        GeneralName::DNSName(d) => out.dns.push(d.to_string()),
        GeneralName::IPAddress(b) => out.ips.push(ip(b)?),
        GeneralName::RFC822Name(e) => out.emails.push(e.to_string()),
        GeneralName::URI(u) => out.uris.push(u.to_string()),
        GeneralName::OtherName(oid, _) => out
            .other_sans
            .push(format!("otherName {}", oid.to_id_string())),
        GeneralName::DirectoryName(d) => out.other_sans.push(format!("directoryName {d}")),
        GeneralName::RegisteredID(oid) => out
            .other_sans
            .push(format!("registeredID {}", oid.to_id_string())),
        GeneralName::X400Address(_) => out.other_sans.push("x400Address".into()),
        GeneralName::EDIPartyName(_) => out.other_sans.push("ediPartyName".into()),
        GeneralName::Invalid(tag, _) => {
            return Err(CsrError::Content(format!(
                "a subjectAltName entry that does not parse (tag {})",
                tag.0
            )))
        }
    }
    Ok(())
}

/// An IP SAN: 4 bytes (IPv4) or 16 (IPv6), as RFC 5280 and Go require.
fn ip(b: &[u8]) -> Result<IpAddr, CsrError> {
    crate::pki::inspect::ip_san(b).ok_or_else(|| {
        CsrError::Content(format!("an IP SAN of {} bytes (4 or 16 expected)", b.len()))
    })
}

fn key_algorithm(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> String {
    let oid = spki.algorithm.algorithm.to_id_string();
    match spki.parsed() {
        Ok(PublicKey::RSA(r)) => format!("RSA-{}", r.key_size()),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            match curve.as_deref() {
                Some(OID_P256) => "ECDSA-P256".into(),
                Some(OID_P384) => "ECDSA-P384".into(),
                Some(OID_P521) => "ECDSA-P521".into(),
                Some(c) => format!("ECDSA ({c})"),
                None => "ECDSA".into(),
            }
        }
        _ if oid == OID_ED25519 => "Ed25519".into(),
        _ => oid,
    }
}

#[cfg(test)]
#[path = "csr_request_tests.rs"]
pub(crate) mod tests;
