//! Checks of a renewed certificate against the one it replaced (issue 2 §4).

use super::*;
use kubeadm_certd::pki::inspect::KeyAlg;
use std::time::Duration;
use time::OffsetDateTime;

pub const DAY: Duration = Duration::from_secs(86_400);
const BACKDATE: Duration = Duration::from_secs(300);

/// What a certificate looked like before the run.
pub struct Before {
    pub der: Vec<u8>,
    pub key: Vec<u8>,
}

/// Record the current certificate and key of each name.
pub fn before(n: &Node, names: &[&str]) -> std::collections::BTreeMap<String, Before> {
    names
        .iter()
        .map(|nm| {
            (
                nm.to_string(),
                Before {
                    der: n.leaf_der(nm),
                    key: n.key_pem(nm),
                },
            )
        })
        .collect()
}

/// Every property a renewed certificate must have (issue 2 §4), checked against the old one.
#[track_caller]
pub fn check_renewed(
    n: &Node,
    name: &str,
    old: &Before,
    alg: KeyAlg,
    t0: OffsetDateTime,
    t1: OffsetDateTime,
) {
    let new_der = n.leaf_der(name);
    assert_ne!(new_der, old.der, "{name}: certificate was not replaced");
    let (o, w) = (facts(&old.der), facts(&new_der));
    let ca_der = pem_ders(&std::fs::read(n.ca_crt(name)).unwrap()).remove(0);
    let ca = facts(&ca_der);

    assert_eq!(w.subject_raw, o.subject_raw, "{name}: subject bytes differ");
    assert_eq!(
        openssl_subject(&new_der),
        openssl_subject(&old.der),
        "{name}: subject differs"
    );
    assert_eq!(
        w.issuer_raw, ca.subject_raw,
        "{name}: issuer is not the CA's subject"
    );
    assert_eq!(
        w.dns,
        sorted(&o.dns),
        "{name}: DNS SANs must equal the old ones, sorted"
    );
    assert_eq!(w.ips, o.ips, "{name}: IP SANs differ");
    assert_eq!(w.eku, o.eku, "{name}: EKUs differ");
    assert_eq!(
        w.key_usage,
        Some((true, true, true, true)),
        "{name}: KeyUsage must be critical digitalSignature+keyEncipherment only"
    );
    assert_eq!(
        w.basic_ca,
        Some(false),
        "{name}: basicConstraints CA:FALSE missing"
    );
    assert!(ca.ski.is_some(), "{name}: test CA has no SKI");
    assert_eq!(w.aki, ca.ski, "{name}: AKI is not the CA's SKI");

    assert_ne!(w.spki, o.spki, "{name}: the key was reused");
    assert_eq!(o.alg, Some(alg), "{name}: test node has the wrong key type");
    assert_eq!(
        w.alg,
        Some(alg),
        "{name}: new key has another algorithm or size"
    );
    let serial = serial_value(&w.raw_serial);
    assert!(
        serial.is_some_and(|s| s >= 1 && s < i64::MAX as u64),
        "{name}: serial {:02x?} not in [1, 2^63-1)",
        w.raw_serial
    );

    // Certificate times have whole seconds.
    let lo = |t: OffsetDateTime| t.replace_nanosecond(0).unwrap();
    assert!(
        w.not_before >= lo(t0) - BACKDATE && w.not_before <= t1 - BACKDATE,
        "{name}: NotBefore {} is not now-5min (run between {t0} and {t1})",
        w.not_before
    );
    assert!(
        w.not_after >= lo(t0) + 365 * DAY && w.not_after <= t1 + 365 * DAY,
        "{name}: NotAfter {} is not now+365d (run between {t0} and {t1})",
        w.not_after
    );

    let key = n.key_pem(name);
    assert_ne!(key, old.key, "{name}: key file not replaced");
    assert_eq!(
        pem_label(&key),
        pem_label(&old.key),
        "{name}: key PEM form changed"
    );
    if alg == KeyAlg::EcP256 {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("k.pem");
        std::fs::write(&f, &key).unwrap();
        let text = openssl_ok(&["ec", "-in", f.to_str().unwrap(), "-noout", "-text"]);
        assert!(
            text.contains("prime256v1"),
            "{name}: SEC1 key lacks the curve OID:\n{text}"
        );
    }
    assert_eq!(
        openssl_pubkey_of_key(&key),
        openssl_pubkey_of_cert(&new_der),
        "{name}: key does not match certificate"
    );
    assert_verifies(&n.ca_crt(name), &new_der, name);
}

/// Only the three credential lines of a kubeconfig change; the CA data is ca.crt.
#[track_caller]
pub fn check_kubeconfig_text(n: &Node, name: &str, old_text: &str) {
    let new_text = std::fs::read_to_string(n.kc(name)).unwrap();
    let (a, b): (Vec<&str>, Vec<&str>) = (old_text.lines().collect(), new_text.lines().collect());
    assert_eq!(a.len(), b.len(), "{name}: line count changed:\n{new_text}");
    assert_eq!(
        old_text.ends_with('\n'),
        new_text.ends_with('\n'),
        "{name}: final newline changed"
    );
    let fields = [
        "client-certificate-data",
        "client-key-data",
        "certificate-authority-data",
    ];
    let mut changed = Vec::new();
    for (x, y) in a.iter().zip(&b) {
        if x != y {
            let key = |l: &str| l.trim_start().split(':').next().unwrap_or("").to_string();
            assert_eq!(
                key(x),
                key(y),
                "{name}: a line changed its key: {x:?} -> {y:?}"
            );
            assert!(
                fields.contains(&key(x).as_str()),
                "{name}: line {x:?} changed"
            );
            let indent = |l: &str| l.len() - l.trim_start().len();
            assert_eq!(indent(x), indent(y), "{name}: indentation changed");
            changed.push(key(x));
        }
    }
    assert!(
        changed.contains(&"client-certificate-data".into()),
        "{name}: client cert unchanged"
    );
    assert!(
        changed.contains(&"client-key-data".into()),
        "{name}: client key unchanged"
    );
    let ca_data = kubeconfig_field(&n.kc(name), "certificate-authority-data");
    let ca_file = std::fs::read(n.pki("ca.crt")).unwrap();
    assert_eq!(
        pem_ders(&ca_data),
        pem_ders(&ca_file),
        "{name}: certificate-authority-data is not the CA in ca.crt"
    );
    // Byte equality (same PEM text as ca.crt) is checked by
    // engine_renew::renewed_files_use_lf_line_endings, so that the other checks still run.
}
