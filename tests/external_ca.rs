//! External CA (issue 2 §6, §7, reference §5): a CA without its key is externally managed and
//! its leaves are never renewed; a leaf signed by another CA is never overwritten; the CSR flow
//! (`renew --csr-only`, then `install-signed`) with an openssl-signed certificate, and its
//! refusals.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// Names signed by `ca`.
const CA_SIGNED: [&str; 6] = [
    "admin.conf",
    "apiserver",
    "apiserver-kubelet-client",
    "controller-manager.conf",
    "scheduler.conf",
    "super-admin.conf",
];

/// A default node whose ca.key was moved outside the root; returns the saved (crt, key).
fn external_node() -> (Node, PathBuf, PathBuf) {
    let n = Node::default_node();
    let (crt, key) = (n.outside("saved-ca.crt"), n.outside("saved-ca.key"));
    std::fs::copy(n.pki("ca.crt"), &crt).unwrap();
    std::fs::rename(n.pki("ca.key"), &key).unwrap();
    (n, crt, key)
}

#[test]
fn check_expiration_marks_external_rows() {
    let (n, _, _) = external_node();
    let out = n.run(&["check-expiration"]);
    out.ok();
    let mut seen = 0;
    for l in out.stdout.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let (Some(first), Some(last)) = (w.first(), w.last()) else {
            continue;
        };
        if let Some((name, _)) = LONG_NAMES.iter().find(|(x, _)| x == first) {
            let want = if CA_SIGNED.contains(name) {
                "yes"
            } else {
                "no"
            };
            assert_eq!(*last, want, "{name}: {l}");
            seen += 1;
        }
        if ["ca", "etcd-ca", "front-proxy-ca"].contains(first) && w.len() > 3 {
            assert_eq!(*last, if *first == "ca" { "yes" } else { "no" }, "{l}");
            seen += 1;
        }
    }
    assert_eq!(seen, 14, "rows:\n{}", out.stdout);
}

#[test]
fn renew_all_skips_the_external_cas_leaves() {
    let (n, _, _) = external_node();
    let t = n.tree();
    let others: Vec<&str> = PKI_LEAVES
        .iter()
        .map(|(x, _, _)| *x)
        .filter(|x| !CA_SIGNED.contains(x))
        .collect();
    let old: Vec<Vec<u8>> = others.iter().map(|x| n.leaf_der(x)).collect();
    let out = n.run(&["renew", "all", "--no-restart"]);
    out.ok();
    for nm in CA_SIGNED {
        let line = format!("Detected external ca, {} can't be renewed", long_name(nm));
        assert!(
            out.stdout.lines().any(|l| l == line),
            "missing {line:?}:\n{}",
            out.stdout
        );
    }
    let after = n.tree();
    for c in t.diff(&after) {
        for nm in CA_SIGNED {
            let file = match PKI_LEAVES.iter().find(|(x, _, _)| *x == nm) {
                Some((_, b, _)) => format!("etc/kubernetes/pki/{b}."),
                None => format!("etc/kubernetes/{nm}"),
            };
            assert!(!c.starts_with(&file), "{c} of external-CA {nm} was touched");
        }
    }
    for (x, o) in others.iter().zip(&old) {
        assert_ne!(&n.leaf_der(x), o, "{x} (not external) was not renewed");
    }
    assert!(!n.pki("ca.key").exists(), "a ca.key appeared");
}

/// A kube-apiserver certificate signed by another CA with the same subject.
fn foreign_apiserver(n: &Node) {
    let d = n.outside("foreign");
    std::fs::create_dir_all(&d).unwrap();
    let (ca, cakey) = openssl_ca(&d, "other-ca", "kubernetes");
    let key = n.pki("apiserver.key");
    let csr = d.join("apiserver.csr");
    openssl_ok(&[
        "genrsa",
        "-traditional",
        "-out",
        key.to_str().unwrap(),
        "2048",
    ]);
    openssl_ok(&[
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        "/CN=kube-apiserver",
        "-out",
        csr.to_str().unwrap(),
    ]);
    openssl_sign(&csr, &ca, &cakey, "serverAuth", &n.pki("apiserver.crt"));
}

#[test]
fn a_leaf_from_another_ca_is_never_overwritten() {
    let n = Node::default_node();
    foreign_apiserver(&n);
    let (crt, key) = (
        std::fs::read(n.pki("apiserver.crt")).unwrap(),
        std::fs::read(n.pki("apiserver.key")).unwrap(),
    );
    let front = n.leaf_der("front-proxy-client");
    let mut args = vec!["renew", "--no-restart"];
    args.extend(PKI_LEAVES.iter().map(|(x, _, _)| *x));
    let out = n.run(&args);
    assert!(
        out.stdout.contains("apiserver is not signed by ca")
            || out.stderr.contains("apiserver is not signed by ca"),
        "not reported:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        std::fs::read(n.pki("apiserver.crt")).unwrap(),
        crt,
        "apiserver.crt overwritten"
    );
    assert_eq!(
        std::fs::read(n.pki("apiserver.key")).unwrap(),
        key,
        "apiserver.key overwritten"
    );
    assert_ne!(
        n.leaf_der("front-proxy-client"),
        front,
        "the other leaves were not renewed"
    );
    // And with `all`, whatever else happens, it stays.
    n.run(&["renew", "all", "--no-restart"]);
    assert_eq!(
        std::fs::read(n.pki("apiserver.crt")).unwrap(),
        crt,
        "apiserver.crt overwritten by renew all"
    );
    assert_eq!(
        std::fs::read(n.pki("apiserver.key")).unwrap(),
        key,
        "apiserver.key overwritten by renew all"
    );
}

fn csr_sans(der: &[u8]) -> (Vec<u8>, Vec<String>, Vec<Vec<u8>>) {
    let (_, req) = X509CertificationRequest::from_der(der).unwrap();
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    if let Some(exts) = req.requested_extensions() {
        for e in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = e {
                for g in &san.general_names {
                    match g {
                        GeneralName::DNSName(d) => dns.push(d.to_string()),
                        GeneralName::IPAddress(b) => ips.push(b.to_vec()),
                        _ => {}
                    }
                }
            }
        }
    }
    (
        req.certification_request_info.subject.as_raw().to_vec(),
        dns,
        ips,
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run `renew --csr-only --csr-dir D name` and check what it wrote.
fn csr_only(n: &Node, d: &Path, name: &str) {
    let t = n.tree();
    let out = n.run(&["renew", "--csr-only", "--csr-dir", s(d), name]);
    out.ok();
    t.assert_same(&n.tree(), "--csr-only");
    assert_eq!(mode(d), 0o700, "csr dir mode");
    let (csr, key) = (d.join(format!("{name}.csr")), d.join(format!("{name}.key")));
    assert_eq!(mode(&csr), 0o600, "csr mode");
    assert_eq!(mode(&key), 0o600, "key mode");
    let verified = openssl_ok(&["req", "-in", s(&csr), "-noout", "-text", "-verify"]);
    assert!(verified.contains("verify OK"), "{verified}");
    let req_subject = openssl_ok(&[
        "req",
        "-in",
        s(&csr),
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ]);
    assert_eq!(
        req_subject.trim(),
        openssl_subject(&n.leaf_der(name)),
        "CSR subject"
    );
    let (subj, dns, ips) = csr_sans(&pem_ders(&std::fs::read(&csr).unwrap())[0]);
    let cert = facts(&n.leaf_der(name));
    assert_eq!(subj, cert.subject_raw, "CSR subject bytes");
    assert_eq!(sorted(&dns), sorted(&cert.dns), "CSR DNS SANs");
    assert_eq!(ips, cert.ips, "CSR IP SANs");
    let keypem = std::fs::read(&key).unwrap();
    assert_eq!(pem_label(&keypem), "RSA PRIVATE KEY");
    assert_eq!(
        openssl_pubkey_of_key(&keypem),
        openssl_ok(&["req", "-in", s(&csr), "-noout", "-pubkey"]),
        "CSR key"
    );
    assert_ne!(keypem, n.key_pem(name), "the CSR reuses the live key");
}

#[test]
fn csr_only_carries_subject_and_sans() {
    let (n, _, _) = external_node();
    let d = n.outside("csr");
    csr_only(&n, &d, "apiserver");
    let mut files: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, vec!["apiserver.csr", "apiserver.key"]);
}

#[test]
fn csr_only_in_the_default_dir_never_overwrites_the_live_key() {
    let (n, _, _) = external_node();
    let t = n.tree();
    let _ = n.run(&["renew", "--csr-only", "apiserver"]);
    for f in ["apiserver.crt", "apiserver.key"] {
        let (a, b) = (
            &t.0[&format!("etc/kubernetes/pki/{f}")],
            n.tree().0[&format!("etc/kubernetes/pki/{f}")].clone(),
        );
        assert_eq!(a, &b, "{f} changed");
    }
}

#[test]
fn csr_then_install_signed() {
    let (n, ca, cakey) = external_node();
    let d = n.outside("csr");
    let name = "apiserver-kubelet-client";
    csr_only(&n, &d, name);
    let t = n.tree();
    let signed = d.join(format!("{name}.crt"));
    openssl_sign(
        &d.join(format!("{name}.csr")),
        &ca,
        &cakey,
        "clientAuth",
        &signed,
    );
    let out = n.run(&["install-signed", "--no-restart", "--csr-dir", s(&d)]);
    out.ok();
    assert!(
        out.stdout
            .contains(&format!("{} installed", long_name(name))),
        "{}",
        out.stdout
    );
    let crt = n.pki(&format!("{name}.crt"));
    assert_eq!(
        pem_ders(&std::fs::read(&crt).unwrap()),
        pem_ders(&std::fs::read(&signed).unwrap()),
        "installed cert"
    );
    assert_eq!(
        n.key_pem(name),
        std::fs::read(d.join(format!("{name}.key"))).unwrap(),
        "installed key"
    );
    assert_eq!(mode(&crt), 0o644);
    assert_eq!(mode(&n.pki(&format!("{name}.key"))), 0o600);
    assert_verifies(&n.pki("ca.crt"), &n.leaf_der(name), name);
    let mut d2 = t.diff(&n.tree());
    d2.sort();
    assert_eq!(
        d2,
        vec![
            format!("etc/kubernetes/pki/{name}.crt"),
            format!("etc/kubernetes/pki/{name}.key")
        ]
    );
    let b = n.backups();
    assert_eq!(b.len(), 1, "no backup");
    let Entry::File { bytes, .. } = &t.0[&format!("etc/kubernetes/pki/{name}.crt")] else {
        panic!()
    };
    assert_eq!(
        &std::fs::read(b[0].join(format!("etc/kubernetes/pki/{name}.crt"))).unwrap(),
        bytes,
        "backup"
    );
}

#[test]
fn csr_then_install_signed_into_a_kubeconfig() {
    let (n, ca, cakey) = external_node();
    let d = n.outside("csr");
    csr_only(&n, &d, "admin.conf");
    let old_text = std::fs::read_to_string(n.kc("admin.conf")).unwrap();
    let signed = d.join("admin.conf.crt");
    openssl_sign(
        &d.join("admin.conf.csr"),
        &ca,
        &cakey,
        "clientAuth",
        &signed,
    );
    n.run(&[
        "install-signed",
        "--no-restart",
        "--csr-dir",
        s(&d),
        "admin.conf",
    ])
    .ok();
    assert_eq!(
        n.leaf_der("admin.conf"),
        pem_ders(&std::fs::read(&signed).unwrap())[0],
        "embedded cert"
    );
    assert_eq!(
        n.key_pem("admin.conf"),
        std::fs::read(d.join("admin.conf.key")).unwrap(),
        "embedded key"
    );
    common::checks::check_kubeconfig_text(&n, "admin.conf", &old_text);
}

#[test]
fn install_signed_refuses_bad_certificates() {
    let (n, ca, cakey) = external_node();
    let d = n.outside("csr");
    let name = "apiserver-kubelet-client";
    csr_only(&n, &d, name);
    let (csr, key, crt) = (
        d.join(format!("{name}.csr")),
        d.join(format!("{name}.key")),
        d.join(format!("{name}.crt")),
    );
    let subj = "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client";
    let other = n.outside("other");
    std::fs::create_dir_all(&other).unwrap();
    let t = n.tree();

    // 1. A certificate for another key (same subject, right CA).
    let k2 = other.join("k2.key");
    let csr2 = other.join("k2.csr");
    openssl_ok(&["genrsa", "-traditional", "-out", s(&k2), "2048"]);
    openssl_ok(&[
        "req",
        "-new",
        "-key",
        s(&k2),
        "-subj",
        subj,
        "-out",
        s(&csr2),
    ]);
    openssl_sign(&csr2, &ca, &cakey, "clientAuth", &crt);
    let wrong_key = n.run(&["install-signed", "--no-restart", "--csr-dir", s(&d)]);

    // 2. The right key, the wrong subject.
    let csr3 = other.join("k3.csr");
    openssl_ok(&[
        "req",
        "-new",
        "-key",
        s(&key),
        "-subj",
        "/O=kubeadm:cluster-admins/CN=someone-else",
        "-out",
        s(&csr3),
    ]);
    openssl_sign(&csr3, &ca, &cakey, "clientAuth", &crt);
    let wrong_subject = n.run(&["install-signed", "--no-restart", "--csr-dir", s(&d)]);

    // 3. The right CSR, signed by another CA with the same name.
    let (oca, ocakey) = openssl_ca(&other, "other-ca", "kubernetes");
    openssl_sign(&csr, &oca, &ocakey, "clientAuth", &crt);
    let wrong_ca = n.run(&["install-signed", "--no-restart", "--csr-dir", s(&d)]);

    for (what, out) in [
        ("wrong key", &wrong_key),
        ("wrong subject", &wrong_subject),
        ("other CA", &wrong_ca),
    ] {
        out.assert_code(1);
        out.assert_one_error(&[&format!("{name}.crt")]);
        assert!(!out.stdout.contains("installed"), "{what}: {}", out.stdout);
    }
    assert!(
        wrong_key.error_lines()[0].contains("key"),
        "{:?}",
        wrong_key.error_lines()
    );
    assert!(
        wrong_subject.error_lines()[0].contains("subject"),
        "{:?}",
        wrong_subject.error_lines()
    );
    t.assert_same(&n.tree(), "refused install-signed");
    assert!(
        n.backups().is_empty(),
        "a backup was made for a refused install"
    );
}
