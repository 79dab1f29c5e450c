//! Looking at certificates, keys and kubeconfigs independently of the crate's own parser:
//! x509-parser directly, and the openssl CLI.

use base64::Engine;
use kubeadm_certd::pki::inspect::KeyAlg;
use std::path::{Path, PathBuf};
use std::process::Command;
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// DER of every PEM block in `bytes`.
pub fn pem_ders(bytes: &[u8]) -> Vec<Vec<u8>> {
    pem::parse_many(bytes)
        .unwrap()
        .into_iter()
        .map(|p| p.contents().to_vec())
        .collect()
}

/// The PEM label of the first block.
pub fn pem_label(bytes: &[u8]) -> String {
    pem::parse(bytes).unwrap().tag().to_string()
}

/// A base64 field of a kubeconfig, decoded, read from the text line by line (independently of
/// the crate's YAML handling).
pub fn kubeconfig_field(path: &Path, field: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let prefix = format!("{field}: ");
    let line = text
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{}: no {field}", path.display()));
    base64::engine::general_purpose::STANDARD
        .decode(line[prefix.len()..].trim())
        .unwrap()
}

/// Run openssl; returns (success, stdout+stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl").args(args).output().unwrap();
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), s)
}

/// openssl must succeed; returns its output.
#[track_caller]
pub fn openssl_ok(args: &[&str]) -> String {
    let (ok, out) = openssl(args);
    assert!(ok, "openssl {args:?} failed:\n{out}");
    out
}

/// `openssl verify -CAfile ca leaf` passes (leaf given as DER, written to a temp file).
#[track_caller]
pub fn assert_verifies(ca: &Path, leaf_der: &[u8], what: &str) {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("leaf.pem");
    std::fs::write(
        &f,
        pem::encode(&pem::Pem::new("CERTIFICATE", leaf_der.to_vec())),
    )
    .unwrap();
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        f.to_str().unwrap(),
    ]);
    assert!(
        ok && out.contains(": OK"),
        "{what}: openssl verify failed:\n{out}"
    );
}

/// The subject as openssl prints it in RFC 2253 form.
pub fn openssl_subject(der: &[u8]) -> String {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("c.pem");
    std::fs::write(&f, pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))).unwrap();
    openssl_ok(&[
        "x509",
        "-in",
        f.to_str().unwrap(),
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ])
    .trim()
    .to_string()
}

/// The public key (SPKI PEM) that openssl derives from a private key PEM.
pub fn openssl_pubkey_of_key(key_pem: &[u8]) -> String {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("k.pem");
    std::fs::write(&f, key_pem).unwrap();
    openssl_ok(&["pkey", "-in", f.to_str().unwrap(), "-pubout"])
}

/// The public key (SPKI PEM) that openssl reads from a certificate.
pub fn openssl_pubkey_of_cert(der: &[u8]) -> String {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("c.pem");
    std::fs::write(&f, pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))).unwrap();
    openssl_ok(&["x509", "-in", f.to_str().unwrap(), "-noout", "-pubkey"])
}

/// What the tests compare between certificates, parsed with x509-parser directly.
#[derive(Debug, Clone)]
pub struct Facts {
    pub subject_raw: Vec<u8>,
    pub issuer_raw: Vec<u8>,
    pub dns: Vec<String>,
    pub ips: Vec<Vec<u8>>,
    /// (serverAuth, clientAuth, other OIDs)
    pub eku: Option<(bool, bool, Vec<String>)>,
    /// (critical, digitalSignature, keyEncipherment, every other bit clear)
    pub key_usage: Option<(bool, bool, bool, bool)>,
    /// Some(ca) when basicConstraints is present.
    pub basic_ca: Option<bool>,
    pub aki: Option<Vec<u8>>,
    pub ski: Option<Vec<u8>>,
    pub spki: Vec<u8>,
    pub alg: Option<KeyAlg>,
    pub raw_serial: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Parse one certificate DER.
pub fn facts(der: &[u8]) -> Facts {
    let (_, c) = X509Certificate::from_der(der).unwrap();
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    if let Some(san) = c.subject_alternative_name().unwrap() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(b) => ips.push(b.to_vec()),
                _ => {}
            }
        }
    }
    let eku = c.extended_key_usage().unwrap().map(|e| {
        (
            e.value.server_auth,
            e.value.client_auth,
            e.value.other.iter().map(|o| o.to_id_string()).collect(),
        )
    });
    let key_usage = c.key_usage().unwrap().map(|k| {
        let ds = k.value.digital_signature();
        let ke = k.value.key_encipherment();
        let others = k.value.flags & !0b101 == 0; // bit 0 digitalSignature, bit 2 keyEncipherment
        (k.critical, ds, ke, others)
    });
    let basic_ca = c.basic_constraints().unwrap().map(|b| b.value.ca);
    let (mut aki, mut ski) = (None, None);
    for ext in c.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
            _ => {}
        }
    }
    let pk = c.public_key();
    let alg = match pk.parsed() {
        Ok(PublicKey::RSA(r)) => Some(KeyAlg::Rsa(r.key_size())),
        Ok(PublicKey::EC(_)) => {
            let curve = pk
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            (curve.as_deref() == Some("1.2.840.10045.3.1.7")).then_some(KeyAlg::EcP256)
        }
        _ => None,
    };
    Facts {
        subject_raw: c.subject().as_raw().to_vec(),
        issuer_raw: c.issuer().as_raw().to_vec(),
        dns,
        ips,
        eku,
        key_usage,
        basic_ca,
        aki,
        ski,
        spki: pk.raw.to_vec(),
        alg,
        raw_serial: c.raw_serial().to_vec(),
        not_before: c.validity().not_before.to_datetime(),
        not_after: c.validity().not_after.to_datetime(),
    }
}

/// The serial's value, if it is a positive DER integer of at most 8 value bytes.
pub fn serial_value(raw: &[u8]) -> Option<u64> {
    if raw.first().is_some_and(|b| b & 0x80 != 0) {
        return None; // negative
    }
    let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.len() > 8 {
        return None;
    }
    Some(trimmed.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)))
}

/// Sorted copy.
pub fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Generate a CA outside the node with openssl: returns (crt, key) paths.
pub fn openssl_ca(dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
        "-days",
        "3650",
        "-subj",
        &format!("/CN={cn}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
    ]);
    (crt, key)
}

/// Sign a CSR with openssl: a client-or-server leaf with kubeadm's extensions.
pub fn openssl_sign(csr: &Path, ca_crt: &Path, ca_key: &Path, eku: &str, out: &Path) {
    let ext = out.with_extension("ext");
    std::fs::write(
        &ext,
        format!(
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={eku}\nbasicConstraints=critical,CA:FALSE\nauthorityKeyIdentifier=keyid\n"
        ),
    )
    .unwrap();
    openssl_ok(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca_crt.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-set_serial",
        "0x1234abcd",
        "-days",
        "365",
        "-sha256",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        out.to_str().unwrap(),
    ]);
}
