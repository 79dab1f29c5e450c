//! The engine against a node built by an independent tool (the openssl CLI), and real clients
//! accepting the result: `openssl verify` for every renewed certificate, and a real etcd
//! serving the renewed etcd/server.crt with client-cert auth, reached with the renewed
//! healthcheck-client and apiserver-etcd-client certificates.

mod support;

use base64::Engine as _;
use std::path::Path;
use std::process::Command;
use support::etcd::{etcdctl_health, require_etcd, Etcd};
use support::openssl_node::{build_openssl_node, openssl, KeyKind, OsslNodeOpts};

fn certd(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubeadm-certd"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn verify(ca: &Path, cert: &Path) {
    let out = String::from_utf8(
        openssl(&[
            "verify",
            "-CAfile",
            ca.to_str().unwrap(),
            cert.to_str().unwrap(),
        ])
        .unwrap(),
    )
    .unwrap();
    assert!(
        out.trim().ends_with(": OK"),
        "{} does not chain to {}: {out}",
        cert.display(),
        ca.display()
    );
}

fn serial_and_end(cert: &Path) -> String {
    String::from_utf8(
        openssl(&[
            "x509",
            "-noout",
            "-serial",
            "-enddate",
            "-in",
            cert.to_str().unwrap(),
        ])
        .unwrap(),
    )
    .unwrap()
}

fn renewed_openssl_node(key: KeyKind) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    build_openssl_node(
        d.path(),
        &OsslNodeOpts {
            key,
            ..OsslNodeOpts::default()
        },
    )
    .unwrap();
    let pki = d.path().join("etc/kubernetes/pki");
    let before = serial_and_end(&pki.join("apiserver.crt"));
    let out = certd(d.path(), &["renew", "all", "--no-restart"]);
    assert!(
        out.status.success(),
        "renew failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("certificate for serving the Kubernetes API renewed"),
        "{stdout}"
    );
    assert_ne!(before, serial_and_end(&pki.join("apiserver.crt")));
    d
}

fn verify_all(root: &Path) {
    let pki = root.join("etc/kubernetes/pki");
    for (ca, leaf) in [
        ("ca.crt", "apiserver.crt"),
        ("ca.crt", "apiserver-kubelet-client.crt"),
        ("front-proxy-ca.crt", "front-proxy-client.crt"),
        ("etcd/ca.crt", "etcd/server.crt"),
        ("etcd/ca.crt", "etcd/peer.crt"),
        ("etcd/ca.crt", "etcd/healthcheck-client.crt"),
        ("etcd/ca.crt", "apiserver-etcd-client.crt"),
    ] {
        verify(&pki.join(ca), &pki.join(leaf));
    }
    for conf in [
        "admin.conf",
        "super-admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ] {
        let text = std::fs::read_to_string(root.join("etc/kubernetes").join(conf)).unwrap();
        let b64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("client-certificate-data: "))
            .unwrap();
        let pem = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let f = root.join(format!("{conf}.crt"));
        std::fs::write(&f, pem).unwrap();
        verify(&pki.join("ca.crt"), &f);
        std::fs::remove_file(&f).unwrap();
    }
}

#[test]
fn renews_an_openssl_built_rsa_node_and_openssl_verifies_it() {
    let d = renewed_openssl_node(KeyKind::Rsa(2048));
    verify_all(d.path());
}

#[test]
fn renews_an_openssl_built_ecdsa_node_and_openssl_verifies_it() {
    let d = renewed_openssl_node(KeyKind::EcP256);
    verify_all(d.path());
    let key = std::fs::read_to_string(d.path().join("etc/kubernetes/pki/apiserver.key")).unwrap();
    assert!(key.starts_with("-----BEGIN EC PRIVATE KEY-----"), "{key}");
}

#[test]
fn real_etcd_serves_renewed_certs_and_accepts_renewed_clients() {
    if !require_etcd() {
        eprintln!("skipping: etcd is not installed (CI=true would fail here)");
        return;
    }
    let d = renewed_openssl_node(KeyKind::Rsa(2048));
    let data = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(d.path(), data.path()).unwrap();
    let pki = d.path().join("etc/kubernetes/pki");
    let ca = pki.join("etcd/ca.crt");
    for client in ["etcd/healthcheck-client", "apiserver-etcd-client"] {
        let ok = etcdctl_health(
            &etcd.client_url,
            &ca,
            &pki.join(format!("{client}.crt")),
            &pki.join(format!("{client}.key")),
        )
        .unwrap();
        assert!(ok, "etcd refused the renewed {client}: {}", etcd.log_tail());
    }
    // A client certificate from a different CA is refused.
    let other = tempfile::tempdir().unwrap();
    build_openssl_node(other.path(), &OsslNodeOpts::default()).unwrap();
    let opki = other.path().join("etc/kubernetes/pki");
    let ok = etcdctl_health(
        &etcd.client_url,
        &ca,
        &opki.join("etcd/healthcheck-client.crt"),
        &opki.join("etcd/healthcheck-client.key"),
    )
    .unwrap();
    assert!(!ok, "etcd accepted a client certificate from another CA");
}
