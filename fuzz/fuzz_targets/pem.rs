//! PEM and certificate parsing: any bytes must give a value or an error, never a panic, and
//! what parses must be consistent across the three readers.
#![no_main]

use kubeadm_certd::pki::inspect::{parse_cert_file, parse_combined, pem_blocks, CertInfo};
use kubeadm_certd::pki::keys::parse_key_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let blocks = pem_blocks(data);
    if let Ok(certs) = parse_cert_file(data) {
        let blocks = blocks
            .as_ref()
            .expect("parse_cert_file accepted what pem_blocks refused");
        assert_eq!(blocks.len(), certs.len());
        for c in &certs {
            // Re-encoding and re-parsing gives the same certificate.
            let again = parse_cert_file(c.to_pem().as_bytes()).expect("re-parse of to_pem");
            assert_eq!(again[0].der, c.der);
            assert_eq!(CertInfo::from_der(&c.der).expect("from_der").spki, c.spki);
            let _ = (c.cn(), c.orgs(), c.negative_serial(), c.signed_by(c));
        }
    }
    if let Ok((certs, key)) = parse_combined(data) {
        assert!(!certs.is_empty());
        assert!(blocks.is_ok());
        if let Some(k) = key {
            assert!(k.label.ends_with("PRIVATE KEY"));
        }
    }
    // The scan's public-only read never panics, and agrees with the full parse wherever that
    // accepts the key.
    let public = kubeadm_certd::pki::pubkey::public_of_key_file(data);
    if let Ok(k) = parse_key_file(data) {
        assert_eq!(blocks.as_ref().map(|b| b.len()).ok(), Some(1));
        let p = public.expect("the full parse accepted what the public read refused");
        assert_eq!(p.spki, k.spki());
        assert_eq!(p.format, k.format);
    }
});
