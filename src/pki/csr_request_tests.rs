//! Tests of the request parser, and the CSR builder the approval-rule tests share. CSRs are
//! made with rcgen (`CertificateParams::serialize_request`), an implementation independent
//! of the x509-parser reading them.

use super::*;
use rcgen::{CertificateParams, DnType, KeyPair, SanType};

/// One key per algorithm for the whole test binary: RSA generation is slow.
pub(crate) fn key(alg: &'static rcgen::SignatureAlgorithm) -> &'static KeyPair {
    use std::sync::OnceLock;
    static EC: OnceLock<KeyPair> = OnceLock::new();
    static RSA: OnceLock<KeyPair> = OnceLock::new();
    static ED: OnceLock<KeyPair> = OnceLock::new();
    let gen = move || {
        if alg == &rcgen::PKCS_RSA_SHA256 {
            KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).unwrap()
        } else {
            KeyPair::generate_for(alg).unwrap()
        }
    };
    if alg == &rcgen::PKCS_RSA_SHA256 {
        RSA.get_or_init(gen)
    } else if alg == &rcgen::PKCS_ED25519 {
        ED.get_or_init(gen)
    } else {
        EC.get_or_init(gen)
    }
}

/// What a test request holds. `Default` is nothing at all; see [`Spec::kubelet`].
#[derive(Clone, Default)]
pub(crate) struct Spec {
    pub cns: Vec<String>,
    pub orgs: Vec<String>,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub emails: Vec<String>,
    pub uris: Vec<String>,
}

impl Spec {
    /// As a kubelet asks: CN system:node:NAME, O system:nodes, these SANs.
    pub fn kubelet(node: &str, dns: &[&str], ips: &[&str]) -> Spec {
        Spec {
            cns: vec![format!("system:node:{node}")],
            orgs: vec!["system:nodes".into()],
            dns: dns.iter().map(|s| s.to_string()).collect(),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            ..Spec::default()
        }
    }

    /// The PEM, signed with an ECDSA P-256 key.
    pub fn pem(&self) -> Vec<u8> {
        self.pem_with(&rcgen::PKCS_ECDSA_P256_SHA256)
    }

    /// The PEM, signed with a key of `alg`.
    pub fn pem_with(&self, alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        // rcgen keeps one value per DnType; a second CN or O goes in as a custom type with
        // the same OID, which encodes exactly like the first.
        for (i, cn) in self.cns.iter().enumerate() {
            let t = if i == 0 {
                DnType::CommonName
            } else {
                DnType::CustomDnType(vec![2, 5, 4, 3])
            };
            p.distinguished_name.push(t, cn.as_str());
        }
        for (i, o) in self.orgs.iter().enumerate() {
            let t = if i == 0 {
                DnType::OrganizationName
            } else {
                DnType::CustomDnType(vec![2, 5, 4, 10])
            };
            p.distinguished_name.push(t, o.as_str());
        }
        let ia5 = |s: &String| s.as_str().try_into().unwrap();
        p.subject_alt_names = self
            .dns
            .iter()
            .map(|d| SanType::DnsName(ia5(d)))
            .chain(self.ips.iter().map(|i| SanType::IpAddress(*i)))
            .chain(self.emails.iter().map(|e| SanType::Rfc822Name(ia5(e))))
            .chain(self.uris.iter().map(|u| SanType::URI(ia5(u))))
            .collect();
        let csr = p.serialize_request(key(alg)).unwrap();
        csr.pem().unwrap().into_bytes()
    }
}

/// `pem` with the last byte of its signature flipped: still a well-formed request.
pub(crate) fn tampered(pem: &[u8]) -> Vec<u8> {
    let p = ::pem::parse(pem).unwrap();
    let mut der = p.contents().to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    ::pem::encode(&::pem::Pem::new("CERTIFICATE REQUEST", der)).into_bytes()
}

#[test]
fn reads_a_kubelet_request() {
    let pem = Spec::kubelet("w1", &["w1", "w1.example.com"], &["127.0.0.21", "::1"]).pem();
    let r = parse(&pem).unwrap();
    assert_eq!(r.common_names, ["system:node:w1"]);
    assert_eq!(r.cn(), Some("system:node:w1"));
    assert_eq!(r.organizations, ["system:nodes"]);
    assert_eq!(r.dns, ["w1", "w1.example.com"]);
    let want: Vec<IpAddr> = vec!["127.0.0.21".parse().unwrap(), "::1".parse().unwrap()];
    assert_eq!(r.ips, want);
    assert!(r.emails.is_empty() && r.uris.is_empty() && r.other_sans.is_empty());
    assert_eq!(r.key_algorithm, "ECDSA-P256");
    assert!(r.signature_ok(), "{:?}", r.signature_error);
}

#[test]
fn every_cn_and_o_value_is_kept() {
    let mut s = Spec::kubelet("w1", &["w1"], &[]);
    s.cns.push("system:node:w2".into());
    s.orgs.push("system:masters".into());
    let r = parse(&s.pem()).unwrap();
    assert_eq!(r.common_names, ["system:node:w1", "system:node:w2"]);
    assert_eq!(r.cn(), None, "two CNs are not one");
    assert_eq!(r.organizations, ["system:nodes", "system:masters"]);
}

#[test]
fn email_uri_and_mapped_ipv6_sans_are_read_as_such() {
    let mut s = Spec::kubelet("w1", &[], &["::ffff:127.0.0.21"]);
    s.emails.push("root@example.com".into());
    s.uris.push("spiffe://cluster/ns/x".into());
    let r = parse(&s.pem()).unwrap();
    assert_eq!(r.emails, ["root@example.com"]);
    assert_eq!(r.uris, ["spiffe://cluster/ns/x"]);
    // Kept as encoded (16 bytes): the rules compare canonical forms.
    assert_eq!(
        r.ips,
        [IpAddr::from(
            "::ffff:127.0.0.21".parse::<std::net::Ipv6Addr>().unwrap()
        )]
    );
}

#[test]
fn key_algorithms_are_named() {
    let s = Spec::kubelet("w1", &["w1"], &[]);
    let rsa = parse(&s.pem_with(&rcgen::PKCS_RSA_SHA256)).unwrap();
    assert_eq!(rsa.key_algorithm, "RSA-2048");
    assert!(rsa.signature_ok());
    let ed = parse(&s.pem_with(&rcgen::PKCS_ED25519)).unwrap();
    assert_eq!(ed.key_algorithm, "Ed25519");
    assert!(ed.signature_ok(), "{:?}", ed.signature_error);
}

#[test]
fn a_bad_signature_is_recorded_not_hidden() {
    let pem = tampered(&Spec::kubelet("w1", &["w1"], &[]).pem());
    let r = parse(&pem).unwrap();
    assert!(!r.signature_ok());
    assert_eq!(r.cn(), Some("system:node:w1"), "the rest still reads");
}

#[test]
fn errors_name_what_is_wrong() {
    let good = Spec::kubelet("w1", &["w1"], &[]).pem();
    let big = vec![b'A'; MAX_REQUEST_BYTES + 1];
    assert_eq!(parse(&big), Err(CsrError::TooLarge(MAX_REQUEST_BYTES + 1)));
    let e = parse(b"hello").unwrap_err().to_string();
    assert!(e.contains("not one PEM CERTIFICATE REQUEST"), "{e}");
    let two = [good.clone(), good.clone()].concat();
    let e = parse(&two).unwrap_err().to_string();
    assert!(e.contains("2 PEM blocks"), "{e}");
    let cert = String::from_utf8(good.clone())
        .unwrap()
        .replace("CERTIFICATE REQUEST", "CERTIFICATE");
    let e = parse(cert.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("found a CERTIFICATE block"), "{e}");
    let junk = ::pem::encode(&::pem::Pem::new(
        "CERTIFICATE REQUEST",
        vec![0x30, 0x03, 1, 2, 3],
    ));
    let e = parse(junk.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("not a valid PKCS#10"), "{e}");
    let mut der = ::pem::parse(&good).unwrap().contents().to_vec();
    der.push(0);
    let trailing = ::pem::encode(&::pem::Pem::new("CERTIFICATE REQUEST", der));
    let e = parse(trailing.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("1 bytes after the request"), "{e}");
}

#[test]
fn any_bytes_give_a_result_or_an_error_never_a_panic() {
    use proptest::prelude::*;
    let good = ::pem::parse(Spec::kubelet("w1", &["w1"], &["127.0.0.1"]).pem())
        .unwrap()
        .contents()
        .to_vec();
    proptest!(ProptestConfig::with_cases(256), |(i in 0..good.len(), b in any::<u8>())| {
        let mut der = good.clone();
        der[i] = b;
        let pem = ::pem::encode(&::pem::Pem::new("CERTIFICATE REQUEST", der));
        let _ = parse(pem.as_bytes());
    });
}

#[test]
fn a_second_subject_alt_name_extension_is_refused() {
    // GeneralNames { dNSName "evil" }: Go keeps the last SAN extension it reads, so a second
    // one would put names in the certificate that the rules never saw.
    let evil = vec![0x30, 0x06, 0x82, 0x04, b'e', b'v', b'i', b'l'];
    let s = Spec::kubelet("w1", &["w1"], &[]);
    let build = |attrs: Vec<rcgen::Attribute>, custom: bool| {
        let mut p = CertificateParams::new(vec!["w1".to_string()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, s.cns[0].as_str());
        p.distinguished_name
            .push(DnType::OrganizationName, "system:nodes");
        if custom {
            p.custom_extensions
                .push(rcgen::CustomExtension::from_oid_content(
                    &[2, 5, 29, 17],
                    evil.clone(),
                ));
        }
        let csr = p
            .serialize_request_with_attributes(key(&rcgen::PKCS_ECDSA_P256_SHA256), attrs)
            .unwrap();
        csr.pem().unwrap().into_bytes()
    };
    let e = parse(&build(Vec::new(), true)).unwrap_err().to_string();
    assert!(e.contains("more than one subjectAltName extension"), "{e}");
    // The same in a second extensionRequest attribute: SET { Extensions { Extension } }.
    let mut ext = vec![0x06, 0x03, 0x55, 0x1d, 0x11, 0x04, evil.len() as u8];
    ext.extend(&evil);
    let ext = [vec![0x30, ext.len() as u8], ext].concat();
    let exts = [vec![0x30, ext.len() as u8], ext].concat();
    let values = [vec![0x31, exts.len() as u8], exts].concat();
    let attr = rcgen::Attribute {
        oid: &[1, 2, 840, 113549, 1, 9, 14],
        values,
    };
    let e = parse(&build(vec![attr], false)).unwrap_err().to_string();
    assert!(e.contains("more than one subjectAltName extension"), "{e}");
}
