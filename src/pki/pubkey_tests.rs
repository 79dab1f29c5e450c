use super::*;
use crate::pki::inspect::{pem_blocks, KeyAlg};
use rcgen::PublicKeyData;
use std::process::Command;

fn block(text: &str) -> Block {
    let mut b = pem_blocks(text.as_bytes()).unwrap();
    assert_eq!(b.len(), 1);
    b.remove(0)
}

/// The fast path answers, and with exactly the full parse's SPKI and format.
fn same_as_full(text: &str) {
    let b = block(text);
    let fast = fast(&b).unwrap_or_else(|| panic!("fast path declined:\n{text}"));
    let full = keys::parse_key_file(text.as_bytes()).unwrap();
    assert_eq!(fast.spki, full.spki(), "{text}");
    assert_eq!(fast.format, full.format);
    assert_eq!(public_of_key_file(text.as_bytes()).unwrap(), fast);
}

#[test]
fn generated_keys_in_every_form_match_the_full_parse() {
    for (alg, formats) in [
        (KeyAlg::Rsa(2048), &[KeyFormat::Pkcs1, KeyFormat::Pkcs8][..]),
        (KeyAlg::Rsa(3072), &[KeyFormat::Pkcs1][..]),
        (KeyAlg::EcP256, &[KeyFormat::Sec1, KeyFormat::Pkcs8][..]),
    ] {
        let pair = keys::generate(alg).unwrap();
        for f in formats {
            same_as_full(&keys::encode(&pair, alg, *f).unwrap());
        }
    }
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is needed for this test");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Keys as openssl writes them (what kubeadm-style scripts and Go produce look the same).
#[test]
fn openssl_keys_match_the_full_parse() {
    let rsa8 = openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
    ]);
    same_as_full(&rsa8);
    let dir = tempfile::tempdir().unwrap();
    let p8 = dir.path().join("k8.pem");
    std::fs::write(&p8, &rsa8).unwrap();
    let p8s = p8.to_str().unwrap();
    same_as_full(&openssl(&["rsa", "-in", p8s, "-traditional"]));
    let ec = openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout"]);
    same_as_full(&ec);
    let pe = dir.path().join("ec.pem");
    std::fs::write(&pe, &ec).unwrap();
    same_as_full(&openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        pe.to_str().unwrap(),
    ]));
    // And the certificate openssl makes from the key carries the same SPKI.
    let cert = openssl(&[
        "req", "-x509", "-new", "-key", p8s, "-subj", "/CN=t", "-days", "1",
    ]);
    let c = crate::pki::inspect::parse_cert_file(cert.as_bytes()).unwrap();
    assert_eq!(public_of_key_file(rsa8.as_bytes()).unwrap().spki, c[0].spki);
}

fn pem(label: &str, der: Vec<u8>) -> String {
    crate::pki::inspect::pem_lf(&pem::Pem::new(label, der))
}

/// A SEC1 key without its public point: derived by the full parse, same answer.
#[test]
fn sec1_without_public_key_falls_back() {
    let pair = keys::generate(KeyAlg::EcP256).unwrap();
    let text = keys::encode(&pair, KeyAlg::EcP256, KeyFormat::Sec1).unwrap();
    let der = block(&text).der;
    let k = sec1::EcPrivateKey::from_der(&der).unwrap();
    let bare = sec1::EcPrivateKey {
        public_key: None,
        ..k
    };
    let text = pem("EC PRIVATE KEY", bare.to_der().unwrap());
    assert!(fast(&block(&text)).is_none());
    let got = public_of_key_file(text.as_bytes()).unwrap();
    assert_eq!(got.spki, pair.subject_public_key_info());
    assert_eq!(got.format, KeyFormat::Sec1);
}

/// Keys aws-lc refuses are not accepted here either: same error text as the full parse.
#[test]
fn refused_keys_give_the_full_parse_error() {
    let small = openssl(&["genrsa", "1024"]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("small.pem");
    std::fs::write(&p, &small).unwrap();
    let pkcs1 = openssl(&["rsa", "-in", p.to_str().unwrap(), "-traditional"]);
    let garbage = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    let two = format!("{small}{small}");
    for text in [small.as_str(), &pkcs1, garbage, &two, "not pem"] {
        let want = keys::parse_key_file(text.as_bytes())
            .unwrap_err()
            .to_string();
        let got = public_of_key_file(text.as_bytes()).unwrap_err().to_string();
        assert_eq!(got, want, "{text}");
    }
}

/// A changed modulus byte changes the SPKI: the key then no longer matches its certificate.
#[test]
fn a_different_modulus_gives_a_different_spki() {
    let pair = keys::generate(KeyAlg::Rsa(2048)).unwrap();
    let text = keys::encode(&pair, KeyAlg::Rsa(2048), KeyFormat::Pkcs1).unwrap();
    let mut der = block(&text).der;
    // version (3 bytes) after the 4-byte SEQUENCE header, then n's 4-byte header and 0x00.
    der[4 + 3 + 4 + 1 + 10] ^= 0x40;
    let got = spki_of_der(&der).unwrap();
    assert_ne!(got, pair.subject_public_key_info());
}

#[test]
fn long_lengths_encode_in_minimal_form() {
    assert_eq!(tlv(0x04, &[1; 3])[..2], [0x04, 3]);
    assert_eq!(tlv(0x04, &[1; 200])[..3], [0x04, 0x81, 200]);
    assert_eq!(tlv(0x04, &[1; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
}
