//! Checks shared by the CA rotation tests (issue 20), with the real tools: `openssl verify`
//! for the leaves, `openssl` to sign a client certificate with the old CA, `etcdctl endpoint
//! health` for what a member accepts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The etcd leaves of a kubeadm node (PKI paths relative to `pki/`).
pub const LEAVES: [&str; 4] = [
    "etcd/server.crt",
    "etcd/peer.crt",
    "etcd/healthcheck-client.crt",
    "apiserver-etcd-client.crt",
];

/// `openssl verify -CAfile ca leaf`: whether it says OK.
pub fn verifies(ca: &Path, leaf: &Path) -> bool {
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca)
        .arg(leaf)
        .output()
        .expect("run openssl");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains(": OK")
}

/// The certificates of a PEM file, as DER, in order.
pub fn certs_der(p: &Path) -> Vec<Vec<u8>> {
    pem::parse_many(std::fs::read(p).expect("read pem"))
        .expect("pem")
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.contents().to_vec())
        .collect()
}

/// Write one certificate (DER) as a PEM file.
pub fn write_pem(p: &Path, der: &[u8]) {
    std::fs::write(p, pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))).unwrap();
}

/// Every etcd leaf of the node under `pki` verifies with `good` only, not with `bad`; the
/// problems, one line each (empty: all good).
pub fn leaves_signed_by(pki: &Path, good: &Path, bad: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for l in LEAVES {
        let leaf = pki.join(l);
        if !verifies(good, &leaf) {
            out.push(format!(
                "{}: does not verify with {}",
                leaf.display(),
                good.display()
            ));
        }
        if verifies(bad, &leaf) {
            out.push(format!(
                "{}: still verifies with {}",
                leaf.display(),
                bad.display()
            ));
        }
    }
    out
}

/// A client certificate (clientAuth, CN `intruder`) signed by the CA `ca_crt`/`ca_key`:
/// (cert, key) paths in `dir`.
pub fn client_cert(dir: &Path, ca_crt: &Path, ca_key: &Path) -> (PathBuf, PathBuf) {
    let (key, csr, crt, ext) = (
        dir.join("intruder.key"),
        dir.join("intruder.csr"),
        dir.join("intruder.crt"),
        dir.join("intruder.ext"),
    );
    std::fs::write(
        &ext,
        "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = |p: &Path| p.to_str().unwrap().to_string();
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &s(&key),
        "-subj",
        "/CN=intruder",
        "-out",
        &s(&csr),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(ca_crt),
        "-CAkey",
        &s(ca_key),
        "-set_serial",
        "4242",
        "-days",
        "2",
        "-extfile",
        &s(&ext),
        "-out",
        &s(&crt),
    ]);
    (crt, key)
}
