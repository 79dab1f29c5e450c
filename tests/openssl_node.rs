//! Checks the independent openssl-built node (tests/support/openssl_node.rs) against kubeadm's
//! profile, and that a real etcd accepts its etcd certificates.

mod support;

use base64::Engine as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::etcd::{etcdctl_health, etcdctl_health_detail, require_etcd, Etcd};
use support::openssl_node::{build_openssl_node, leaves, openssl, KeyKind, OsslNodeOpts};

fn opts(key: KeyKind) -> OsslNodeOpts {
    OsslNodeOpts {
        key,
        ..OsslNodeOpts::default()
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn text(args: &[&str]) -> String {
    String::from_utf8(openssl(args).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn verify(ca: &Path, cert: &Path) {
    let out = text(&["verify", "-CAfile", p(ca), p(cert)]);
    assert!(
        out.trim().ends_with(": OK"),
        "{} does not chain to {}: {out}",
        cert.display(),
        ca.display()
    );
}

/// The public key of a certificate and of a private key must be the same.
fn assert_matches(cert: &Path, key: &Path) {
    let a = text(&["x509", "-in", p(cert), "-noout", "-pubkey"]);
    let b = text(&["pkey", "-in", p(key), "-pubout"]);
    assert_eq!(a, b, "{} does not match {}", cert.display(), key.display());
}

fn key_label(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Rsa(_) => "-----BEGIN RSA PRIVATE KEY-----",
        KeyKind::EcP256 => "-----BEGIN EC PRIVATE KEY-----",
    }
}

fn ext(cert: &Path, name: &str) -> String {
    text(&["x509", "-in", p(cert), "-noout", "-ext", name])
}

/// Value lines of an extension, whitespace-trimmed and joined.
fn ext_value(cert: &Path, name: &str) -> String {
    ext(cert, name)
        .lines()
        .skip(1)
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

fn subject(cert: &Path) -> String {
    text(&["x509", "-in", p(cert), "-noout", "-subject"])
        .trim()
        .to_string()
}

fn check_leaf_profile(cert: &Path) {
    assert!(
        ext(cert, "keyUsage").contains("critical"),
        "{}",
        cert.display()
    );
    assert_eq!(
        ext_value(cert, "keyUsage"),
        "Digital Signature, Key Encipherment"
    );
    assert!(ext(cert, "basicConstraints").contains("critical"));
    assert_eq!(ext_value(cert, "basicConstraints"), "CA:FALSE");
    assert!(
        ext_value(cert, "authorityKeyIdentifier").len() > 20,
        "{} lacks AKI",
        cert.display()
    );
    assert_eq!(
        ext_value(cert, "subjectKeyIdentifier"),
        "",
        "Go adds no SKI to leaves"
    );
    let serial = text(&["x509", "-in", p(cert), "-noout", "-serial"]);
    let hex = serial.trim().trim_start_matches("serial=");
    let v = u128::from_str_radix(hex, 16).unwrap();
    assert!((1..(1u128 << 63)).contains(&v), "serial {hex} out of range");
}

fn check_ca(cert: &Path, key: &Path, cn: &str, kind: KeyKind) {
    verify(cert, cert);
    assert_matches(cert, key);
    assert_eq!(subject(cert), format!("subject=CN = {cn}"));
    assert_eq!(
        ext_value(cert, "keyUsage"),
        "Digital Signature, Key Encipherment, Certificate Sign"
    );
    assert_eq!(ext_value(cert, "basicConstraints"), "CA:TRUE");
    assert!(ext(cert, "basicConstraints").contains("critical"));
    assert!(ext_value(cert, "subjectKeyIdentifier").len() > 20);
    assert_eq!(
        ext_value(cert, "authorityKeyIdentifier"),
        "",
        "Go adds no AKI to self-signed CAs"
    );
    assert_eq!(ext_value(cert, "subjectAltName"), format!("DNS:{cn}"));
    assert!(fs::read_to_string(key)
        .unwrap()
        .starts_with(key_label(kind)));
}

/// The value of `field: value` in a kubeconfig.
fn field<'a>(conf: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}: ");
    conf.lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {name} in kubeconfig"))
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn check_kubeconfig(root: &Path, file: &str, user: &str, subj: &str, kind: KeyKind) {
    let k8s = root.join("etc/kubernetes");
    let path = k8s.join(file);
    assert_eq!(mode(&path), 0o600, "{file}");
    let conf = fs::read_to_string(&path).unwrap();
    let ca_pem = fs::read(k8s.join("pki/ca.crt")).unwrap();
    let cert = b64(field(&conf, "client-certificate-data"));
    let key = b64(field(&conf, "client-key-data"));
    assert_eq!(b64(field(&conf, "certificate-authority-data")), ca_pem);
    // The whole text, byte for byte, in clientcmd's layout.
    let expected = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://10.0.0.10:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: {user}\n  name: {user}@kubernetes\ncurrent-context: {user}@kubernetes\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        field(&conf, "certificate-authority-data"),
        field(&conf, "client-certificate-data"),
        field(&conf, "client-key-data"),
    );
    assert_eq!(conf, expected);
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = (dir.path().join("c.crt"), dir.path().join("c.key"));
    fs::write(&c, &cert).unwrap();
    fs::write(&k, &key).unwrap();
    assert!(
        String::from_utf8(key).unwrap().starts_with(key_label(kind)),
        "{file}"
    );
    assert_matches(&c, &k);
    verify(&k8s.join("pki/ca.crt"), &c);
    assert_eq!(subject(&c), subj, "{file}");
    assert_eq!(
        ext_value(&c, "extendedKeyUsage"),
        "TLS Web Client Authentication"
    );
    check_leaf_profile(&c);
}

fn check_kubelet(root: &Path) {
    let conf = fs::read_to_string(root.join("etc/kubernetes/kubelet.conf")).unwrap();
    let current = "/var/lib/kubelet/pki/kubelet-client-current.pem";
    assert_eq!(field(&conf, "client-certificate"), current);
    assert_eq!(field(&conf, "client-key"), current);
    assert_eq!(
        field(&conf, "current-context"),
        "system:node:cp1@kubernetes"
    );
    assert!(!conf.contains("client-certificate-data"));
    assert_eq!(mode(&root.join("etc/kubernetes/kubelet.conf")), 0o600);

    let kpki = root.join("var/lib/kubelet/pki");
    // The kubelet's layout: an absolute link to a dated file, resolved below the root.
    let target = fs::read_link(kpki.join("kubelet-client-current.pem")).unwrap();
    let name = target.to_str().unwrap();
    assert!(
        name.starts_with("/var/lib/kubelet/pki/kubelet-client-2") && name.ends_with(".pem"),
        "{name}"
    );
    let link = root.join(name.trim_start_matches('/'));
    let pem = fs::read_to_string(&link).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(pem.contains("-----BEGIN EC PRIVATE KEY-----"));
    assert_matches(&link, &link);
    verify(&root.join("etc/kubernetes/pki/ca.crt"), &link);
    assert_eq!(
        subject(&link),
        "subject=O = system:nodes, CN = system:node:cp1"
    );

    // Serving cert: leaf + its throwaway CA in one file.
    let crt = kpki.join("kubelet.crt");
    let chain = fs::read_to_string(&crt).unwrap();
    assert_eq!(chain.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    let ca_pem = &chain[chain.rfind("-----BEGIN CERTIFICATE-----").unwrap()..];
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ca.crt"), ca_pem).unwrap();
    verify(&dir.path().join("ca.crt"), &crt);
    assert_matches(&crt, &kpki.join("kubelet.key"));
    assert_eq!(ext_value(&crt, "subjectAltName"), "DNS:cp1");
    assert_eq!(
        (mode(&crt), mode(&kpki.join("kubelet.key"))),
        (0o644, 0o600)
    );
}

fn check_node(root: &Path, o: &OsslNodeOpts) {
    let pki = root.join("etc/kubernetes/pki");
    check_ca(
        &pki.join("ca.crt"),
        &pki.join("ca.key"),
        "kubernetes",
        o.key,
    );
    check_ca(
        &pki.join("front-proxy-ca.crt"),
        &pki.join("front-proxy-ca.key"),
        "front-proxy-ca",
        o.key,
    );
    if o.external_etcd {
        assert!(!pki.join("etcd").exists());
        assert!(!pki.join("apiserver-etcd-client.crt").exists());
    } else {
        check_ca(
            &pki.join("etcd/ca.crt"),
            &pki.join("etcd/ca.key"),
            "etcd-ca",
            o.key,
        );
    }
    let all = leaves(o);
    assert_eq!(all.len(), if o.external_etcd { 3 } else { 7 });
    let mut serials = Vec::new();
    for (crt, key, ca) in &all {
        let (crt, key, ca) = (root.join(crt), root.join(key), root.join(ca));
        verify(&ca, &crt);
        assert_matches(&crt, &key);
        check_leaf_profile(&crt);
        assert!(fs::read_to_string(&key)
            .unwrap()
            .starts_with(key_label(o.key)));
        assert_eq!(
            (mode(&crt), mode(&key)),
            (0o644, 0o600),
            "{}",
            crt.display()
        );
        serials.push(text(&["x509", "-in", p(&crt), "-noout", "-serial"]));
    }
    serials.sort();
    serials.dedup();
    assert_eq!(
        serials.len(),
        all.len(),
        "serials must be random, not repeated"
    );

    let api = pki.join("apiserver.crt");
    assert_eq!(subject(&api), "subject=CN = kube-apiserver");
    assert_eq!(
        ext_value(&api, "extendedKeyUsage"),
        "TLS Web Server Authentication"
    );
    assert_eq!(
        ext_value(&api, "subjectAltName"),
        "DNS:cp1, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, \
         DNS:kubernetes.default.svc.cluster.local, IP Address:10.96.0.1, IP Address:10.0.0.10"
    );
    assert_eq!(
        subject(&pki.join("apiserver-kubelet-client.crt")),
        "subject=O = kubeadm:cluster-admins, CN = kube-apiserver-kubelet-client"
    );
    assert_eq!(
        subject(&pki.join("front-proxy-client.crt")),
        "subject=CN = front-proxy-client"
    );
    if !o.external_etcd {
        for n in ["server", "peer"] {
            let c = pki.join(format!("etcd/{n}.crt"));
            assert_eq!(subject(&c), "subject=CN = cp1");
            assert_eq!(
                ext_value(&c, "extendedKeyUsage"),
                "TLS Web Server Authentication, TLS Web Client Authentication"
            );
            assert_eq!(
                ext_value(&c, "subjectAltName"),
                "DNS:cp1, DNS:localhost, IP Address:10.0.0.10, IP Address:127.0.0.1, \
                 IP Address:0:0:0:0:0:0:0:1"
            );
        }
        assert_eq!(
            subject(&pki.join("etcd/healthcheck-client.crt")),
            "subject=CN = kube-etcd-healthcheck-client"
        );
        assert_eq!(
            subject(&pki.join("apiserver-etcd-client.crt")),
            "subject=CN = kube-apiserver-etcd-client"
        );
    }

    // sa.key/sa.pub: a key pair, not a certificate.
    let sa_key = fs::read_to_string(pki.join("sa.key")).unwrap();
    assert!(sa_key.starts_with(key_label(o.key)));
    let sa_pub = fs::read_to_string(pki.join("sa.pub")).unwrap();
    assert!(sa_pub.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(
        text(&["pkey", "-in", p(&pki.join("sa.key")), "-pubout"]),
        sa_pub
    );
    assert_eq!(
        (mode(&pki.join("sa.key")), mode(&pki.join("sa.pub"))),
        (0o600, 0o600)
    );

    let subj = |o: &str, cn: &str| {
        if o.is_empty() {
            format!("subject=CN = {cn}")
        } else {
            format!("subject=O = {o}, CN = {cn}")
        }
    };
    check_kubeconfig(
        root,
        "admin.conf",
        "kubernetes-admin",
        &subj("kubeadm:cluster-admins", "kubernetes-admin"),
        o.key,
    );
    if o.super_admin {
        let s = subj("system:masters", "kubernetes-super-admin");
        check_kubeconfig(
            root,
            "super-admin.conf",
            "kubernetes-super-admin",
            &s,
            o.key,
        );
    } else {
        assert!(!root.join("etc/kubernetes/super-admin.conf").exists());
    }
    for cn in ["system:kube-controller-manager", "system:kube-scheduler"] {
        let file = format!("{}.conf", cn.trim_start_matches("system:kube-"));
        check_kubeconfig(root, &file, cn, &subj("", cn), o.key);
    }
    check_kubelet(root);
}

#[test]
fn rsa2048_node_matches_kubeadm_profile() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(KeyKind::Rsa(2048));
    build_openssl_node(dir.path(), &o).unwrap();
    check_node(dir.path(), &o);
    let bits = text(&[
        "rsa",
        "-in",
        p(&dir.path().join("etc/kubernetes/pki/apiserver.key")),
        "-noout",
        "-text",
    ]);
    assert!(bits.contains("Private-Key: (2048 bit"), "{bits}");
}

#[test]
fn ec_p256_node_matches_kubeadm_profile() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(KeyKind::EcP256);
    build_openssl_node(dir.path(), &o).unwrap();
    check_node(dir.path(), &o);
    let key = text(&[
        "ec",
        "-in",
        p(&dir.path().join("etc/kubernetes/pki/ca.key")),
        "-noout",
        "-text",
    ]);
    assert!(key.contains("ASN1 OID: prime256v1"), "{key}");
}

#[test]
fn external_etcd_rsa3072_node_without_super_admin() {
    let dir = tempfile::tempdir().unwrap();
    let o = OsslNodeOpts {
        external_etcd: true,
        super_admin: false,
        ..opts(KeyKind::Rsa(3072))
    };
    build_openssl_node(dir.path(), &o).unwrap();
    check_node(dir.path(), &o);
    let bits = text(&[
        "rsa",
        "-in",
        p(&dir.path().join("etc/kubernetes/pki/ca.key")),
        "-noout",
        "-text",
    ]);
    assert!(bits.contains("Private-Key: (3072 bit"), "{bits}");
}

#[test]
fn openssl_failure_reports_stderr() {
    let err = openssl(&["x509", "-in", "/nonexistent/x.crt"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/x.crt"), "{err}");
}

#[test]
fn etcd_accepts_node_clients_and_rejects_foreign_ca() {
    if !require_etcd() {
        eprintln!("note: etcd/etcdctl not installed; skipping etcd_accepts_node_clients_and_rejects_foreign_ca");
        return;
    }
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    build_openssl_node(a.path(), &opts(KeyKind::EcP256)).unwrap();
    build_openssl_node(b.path(), &opts(KeyKind::Rsa(2048))).unwrap();
    let etcd = Etcd::start(a.path(), data.path()).unwrap();

    let pki = |root: &Path, f: &str| -> PathBuf { root.join("etc/kubernetes/pki").join(f) };
    let ca = pki(a.path(), "etcd/ca.crt");
    let health = |root: &Path, base: &str| {
        etcdctl_health(
            &etcd.client_url,
            &ca,
            &pki(root, &format!("{base}.crt")),
            &pki(root, &format!("{base}.key")),
        )
        .unwrap()
    };
    assert!(
        health(a.path(), "etcd/healthcheck-client"),
        "log:\n{}",
        etcd.log_tail()
    );
    assert!(
        health(a.path(), "apiserver-etcd-client"),
        "log:\n{}",
        etcd.log_tail()
    );
    // Same server trust, but a client cert from another node's etcd CA: the handshake must fail.
    let (ok, err) = etcdctl_health_detail(
        &etcd.client_url,
        &ca,
        &pki(b.path(), "etcd/healthcheck-client.crt"),
        &pki(b.path(), "etcd/healthcheck-client.key"),
    )
    .unwrap();
    assert!(!ok, "etcd accepted a client cert from a foreign CA");
    eprintln!("foreign client rejected as expected: {err}");
    assert!(!err.is_empty());
    let log = std::fs::read_to_string(&etcd.log_path).unwrap();
    assert!(
        log.contains("certificate signed by unknown authority"),
        "etcd log:\n{log}"
    );
    // And etcd is still fine for the right client afterwards.
    assert!(health(a.path(), "etcd/healthcheck-client"));
}
