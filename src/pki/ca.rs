//! A new CA for a rotation, made as kubeadm makes one, and the checks an operator's own CA
//! (`ca rotate --ca-dir`) must pass before anything starts.
//!
//! kubeadm: `pkiutil.NewCertificateAuthority` backdates NotBefore by CertificateBackdate (5 min)
//! and calls `pkiutil.NewSelfSignedCACert` (kubernetes/kubernetes
//! cmd/kubeadm/app/util/pkiutil/pki_helpers.go, v1.31+): a serial drawn uniformly from
//! [1, 2^63−1), Subject CN/O, DNSNames [CN], KeyUsage keyEncipherment + digitalSignature +
//! keyCertSign, BasicConstraints CA:TRUE, NotAfter = NotBefore + CACertificateValidityPeriod
//! (87600h) or the configured caCertificateValidityPeriod. Go's x509.CreateCertificate marks
//! BasicConstraints and KeyUsage critical, adds a SubjectKeyIdentifier to a CA (SHA-1 of the
//! subjectPublicKey bits, RFC 5280 4.2.1.2 method 1) and no AuthorityKeyIdentifier to a
//! self-signed certificate.

use crate::pki::inspect::{CertInfo, KeyAlg};
use crate::pki::issue::{random_serial, subject_of, BACKDATE};
use crate::pki::keys::{self, KeyFormat, PrivateKey};
use rcgen::{
    BasicConstraints, CertificateParams, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber,
};
use std::time::Duration;
use time::OffsetDateTime;

/// A CA ready to be rotated in: its certificate and its key file as it will be written.
pub struct NewCa {
    /// The certificate.
    pub cert: CertInfo,
    /// The key.
    pub key: KeyPair,
    /// The key file's PEM text.
    pub key_pem: String,
}

impl std::fmt::Debug for NewCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("NewCa")
            .field("cert", &self.cert.cn())
            .finish()
    }
}

/// kubeadm's subject key identifier: SHA-1 of the subjectPublicKey BIT STRING's contents.
pub fn kubeadm_ski(key: &KeyPair) -> Vec<u8> {
    aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        key.public_key_raw(),
    )
    .as_ref()
    .to_vec()
}

/// A new self-signed CA with `old`'s subject (byte for byte) and DNS SANs, and a new key of
/// `old`'s algorithm and size, valid from now − 5 min for `validity`. The key file takes
/// `format` (the old key file's, so that every node writes what kubeadm would have).
pub fn new_like(
    old: &CertInfo,
    format: KeyFormat,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<NewCa, String> {
    let alg = old
        .key_alg
        .ok_or("the old CA's key algorithm is not one kubeadm uses (RSA or ECDSA P-256)")?;
    let key = keys::generate(alg).map_err(|e| e.to_string())?;
    let mut p = CertificateParams::default();
    p.distinguished_name = subject_of(old).map_err(|e| e.to_string())?;
    for d in &old.dns {
        let name = d
            .clone()
            .try_into()
            .map_err(|_| format!("DNS SAN {d:?} is not IA5"))?;
        p.subject_alt_names.push(SanType::DnsName(name));
    }
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    p.key_identifier_method = KeyIdMethod::PreSpecified(kubeadm_ski(&key));
    p.serial_number = Some(SerialNumber::from(random_serial()));
    p.not_before = now - BACKDATE;
    p.not_after = p.not_before + validity;
    let cert = p.self_signed(&key).map_err(|e| e.to_string())?;
    let info = CertInfo::from_der(cert.der()).map_err(|e| e.to_string())?;
    if info.subject_raw != old.subject_raw {
        return Err("the new CA's subject does not equal the old one's byte for byte".into());
    }
    let key_pem = keys::encode(&key, alg, format).map_err(|e| e.to_string())?;
    Ok(NewCa {
        cert: info,
        key,
        key_pem,
    })
}

/// Everything wrong with an operator's CA (`--ca-dir`): one line each, naming the file. Empty
/// when it may be rotated in for `old` at `now`.
pub fn check_operator_ca(
    crt_name: &str,
    key_name: &str,
    certs: &[CertInfo],
    key: Result<&PrivateKey, String>,
    old: &CertInfo,
    now: OffsetDateTime,
    warn_before: Duration,
) -> Vec<String> {
    let mut out = Vec::new();
    let c = match certs {
        [c] => c,
        [] => {
            out.push(format!("{crt_name}: holds no certificate"));
            return out;
        }
        more => {
            out.push(format!(
                "{crt_name}: holds {} certificates; put only the new CA in it",
                more.len()
            ));
            return out;
        }
    };
    if !c.is_ca {
        out.push(format!(
            "{crt_name}: not a CA (BasicConstraints CA:TRUE is missing)"
        ));
    }
    if !c.key_cert_sign {
        out.push(format!(
            "{crt_name}: KeyUsage lacks keyCertSign: it cannot sign certificates"
        ));
    }
    match c.key_alg {
        Some(KeyAlg::Rsa(2048 | 3072 | 4096) | KeyAlg::EcP256) => {}
        Some(a) => out.push(format!(
            "{crt_name}: {a} is not a key kubeadm uses (RSA 2048/3072/4096 or ECDSA P-256)"
        )),
        None => out.push(format!(
            "{crt_name}: its key algorithm is not one kubeadm uses (RSA or ECDSA P-256)"
        )),
    }
    if c.cn().is_none_or(str::is_empty) {
        out.push(format!("{crt_name}: the subject has no common name (CN)"));
    }
    if now < c.not_before {
        out.push(format!(
            "{crt_name}: not valid before {} (is the clock right?)",
            crate::logging::rfc3339(c.not_before)
        ));
    }
    if c.not_after <= now {
        out.push(format!(
            "{crt_name}: expired at {}",
            crate::logging::rfc3339(c.not_after)
        ));
    } else if c.not_after - now <= warn_before {
        out.push(format!(
            "{crt_name}: expires at {}, within caWarnBefore ({}) of now: it would need rotating at once",
            crate::logging::rfc3339(c.not_after),
            as_written(warn_before)
        ));
    }
    if c.spki == old.spki {
        out.push(format!(
            "{crt_name}: has the current etcd CA's key: that is no rotation"
        ));
    }
    match key {
        Err(e) => out.push(format!("{key_name}: {e}")),
        Ok(k) if k.spki() != c.spki => out.push(format!("{key_name}: does not match {crt_name}")),
        Ok(_) => {}
    }
    out
}

/// A duration as the config file writes it: whole days as `Nd` (humantime counts a year as
/// 365.25 days, which turns `365d` into `1year 5h 49m 12s`).
pub fn as_written(d: Duration) -> String {
    if d.as_secs().is_multiple_of(86_400) {
        format!("{}d", d.as_secs() / 86_400)
    } else {
        humantime::format_duration(d).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::inspect::parse_cert_file;

    fn old_ca(alg: KeyAlg) -> (CertInfo, KeyPair) {
        let key = keys::generate(alg).unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "etcd-ca");
        p.subject_alt_names
            .push(SanType::DnsName("etcd-ca".try_into().unwrap()));
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let c = p.self_signed(&key).unwrap();
        (CertInfo::from_der(c.der()).unwrap(), key)
    }

    #[test]
    fn new_ca_keeps_subject_and_key_type_with_kubeadms_extensions() {
        let now = OffsetDateTime::now_utc();
        let ten_years = Duration::from_secs(3650 * 86_400);
        for alg in [KeyAlg::EcP256, KeyAlg::Rsa(2048)] {
            let (old, _) = old_ca(alg);
            let format = KeyFormat::kubeadm_default(alg);
            let n = new_like(&old, format, now, ten_years).unwrap();
            assert_eq!(n.cert.subject_raw, old.subject_raw);
            assert_eq!(n.cert.dns, vec!["etcd-ca".to_string()]);
            assert_eq!(n.cert.key_alg, Some(alg));
            assert!(n.cert.is_ca && n.cert.key_cert_sign);
            assert_ne!(n.cert.spki, old.spki);
            assert_eq!(
                n.cert.not_before,
                (now - BACKDATE).replace_nanosecond(0).unwrap()
            );
            assert_eq!(n.cert.not_after - n.cert.not_before, ten_years);
            assert!(n.cert.signed_by(&n.cert), "self-signed");
            let k = keys::parse_key_file(n.key_pem.as_bytes()).unwrap();
            assert_eq!(k.format, format);
            assert_eq!(k.spki(), n.cert.spki);
            // openssl reads the extensions as kubeadm writes them.
            let text = openssl_text(&n.cert.to_pem());
            assert!(
                text.contains("X509v3 Basic Constraints: critical\n                CA:TRUE"),
                "{text}"
            );
            assert!(
                text.contains("X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment, Certificate Sign"),
                "{text}"
            );
            let ski = kubeadm_ski(&n.key)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":");
            assert!(text.contains(&ski), "{ski} in {text}");
            assert!(!text.contains("Authority Key Identifier"), "{text}");
        }
    }

    fn openssl_text(pem: &str) -> String {
        use std::io::Write;
        let mut c = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-text"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(pem.as_bytes()).unwrap();
        String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()
    }

    #[test]
    fn operator_ca_problems_one_line_each() {
        let now = OffsetDateTime::now_utc();
        let year = Duration::from_secs(365 * 86_400);
        let (old, old_key) = old_ca(KeyAlg::EcP256);
        let good = new_like(&old, KeyFormat::Sec1, now, 10 * year).unwrap();
        let gk = keys::parse_key_file(good.key_pem.as_bytes()).unwrap();
        let ok = check_operator_ca(
            "ca.crt",
            "ca.key",
            std::slice::from_ref(&good.cert),
            Ok(&gk),
            &old,
            now,
            year,
        );
        assert!(ok.is_empty(), "{ok:?}");
        // Short-lived, wrong key, and two certificates.
        let short = new_like(&old, KeyFormat::Sec1, now, year / 2).unwrap();
        let other = PrivateKey {
            pair: old_key,
            format: KeyFormat::Pkcs8,
        };
        let p = check_operator_ca(
            "d/ca.crt",
            "d/ca.key",
            std::slice::from_ref(&short.cert),
            Ok(&other),
            &old,
            now,
            year,
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("d/ca.crt: expires at") && p[0].contains("caWarnBefore (365d)"),
            "{}",
            p[0]
        );
        assert_eq!(p[1], "d/ca.key: does not match d/ca.crt");
        let two =
            parse_cert_file(format!("{}{}", good.cert.to_pem(), old.to_pem()).as_bytes()).unwrap();
        let p = check_operator_ca("c", "k", &two, Ok(&gk), &old, now, year);
        assert_eq!(p, ["c: holds 2 certificates; put only the new CA in it"]);
        // The current CA itself, and a leaf.
        let p = check_operator_ca(
            "c",
            "k",
            std::slice::from_ref(&old),
            Err("unreadable".into()),
            &old,
            now,
            year,
        );
        assert!(
            p.iter().any(|l| l.contains("current etcd CA's key")),
            "{p:?}"
        );
        assert!(p.iter().any(|l| l == "k: unreadable"), "{p:?}");
    }
}
