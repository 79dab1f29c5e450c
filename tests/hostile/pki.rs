//! Certificates, keys and kubeconfigs.

use super::*;

// ---------------------------------------------------------------- certificates and keys

#[test]
fn leaf_with_rsa_1024_key() {
    let n = Node::new();
    let genkey: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"];
    certs::openssl_leaf(
        &n,
        &OsslLeaf {
            genkey,
            ..OsslLeaf::default()
        },
    );
    expect_failure(&n, None, RENEW, &[&[CRT, KEY], &["1024"]]);
}

#[test]
fn leaf_with_ed25519_key() {
    let n = Node::new();
    let genkey: &[&str] = &["-algorithm", "ED25519"];
    certs::openssl_leaf(
        &n,
        &OsslLeaf {
            genkey,
            ..OsslLeaf::default()
        },
    );
    expect_failure(
        &n,
        None,
        RENEW,
        &[&[CRT, KEY], &["unsupported key algorithm", "Ed25519"]],
    );
}

#[test]
fn leaf_with_multi_valued_rdn() {
    let n = Node::new();
    let subj = "/CN=kube-apiserver+O=system:masters";
    certs::openssl_leaf(
        &n,
        &OsslLeaf {
            subj,
            multivalue: true,
            ..OsslLeaf::default()
        },
    );
    expect_failure(&n, None, RENEW, &[&[CRT], &["multi-valued"]]);
}

#[test]
fn leaf_with_three_o_attributes() {
    let n = Node::new();
    let subj = "/O=a/O=b/O=c/CN=kube-apiserver";
    certs::openssl_leaf(
        &n,
        &OsslLeaf {
            subj,
            ..OsslLeaf::default()
        },
    );
    expect_failure(&n, None, RENEW, &[&[CRT], &["more than twice", "repeat"]]);
}

#[test]
fn leaf_with_not_before_after_not_after() {
    let n = Node::new();
    let now = time::OffsetDateTime::now_utc();
    let mut p = certs::apiserver_params();
    p.not_before = now + time::Duration::days(1);
    p.not_after = now - time::Duration::days(1);
    certs::rcgen_apiserver(&n, p);
    either(&n, RENEW, &[&[CRT], &["NotBefore", "validity"]], |n, _| {
        assert_verifies(n);
        let c = kubeadm_certd::pki::inspect::parse_cert_file(&n.read(CRT)).unwrap();
        assert!(c[0].not_before < c[0].not_after);
    });
}

#[test]
fn leaf_with_5000_sans() {
    let n = Node::new();
    let mut p = certs::apiserver_params();
    for i in 0..5000 {
        let d = format!("host-{i}.example.com").try_into().unwrap();
        p.subject_alt_names.push(rcgen::SanType::DnsName(d));
    }
    certs::rcgen_apiserver(&n, p);
    either(&n, RENEW, &[&[CRT], &["SAN"]], |n, _| {
        assert_verifies(n);
        let c = kubeadm_certd::pki::inspect::parse_cert_file(&n.read(CRT)).unwrap();
        assert_eq!(c[0].dns.len(), 5000);
    });
}

#[test]
fn key_file_is_a_directory() {
    let n = Node::new();
    std::fs::remove_file(n.p(KEY)).unwrap();
    std::fs::create_dir(n.p(KEY)).unwrap();
    expect_failure(
        &n,
        None,
        RENEW,
        &[&[KEY], &["not a regular file", "directory"]],
    );
}

#[test]
fn symlink_loop_in_pki() {
    let n = Node::new();
    n.symlink(CRT, "apiserver.loop");
    n.symlink("/etc/kubernetes/pki/apiserver.loop", "apiserver.crt");
    expect_failure(&n, None, CHECK, &[&[CRT], &["symbolic links", "loop"]]);
}

#[test]
fn der_cert_instead_of_pem() {
    let n = Node::new();
    let der = openssl(&["x509", "-in", s(&n.p(CRT)), "-outform", "DER"]);
    n.write(CRT, der);
    expect_failure(&n, None, CHECK, &[&[CRT], &["not PEM", "DER"]]);
}

#[test]
fn pem_block_with_trailing_der_bytes() {
    let n = Node::new();
    let p = pem::parse(n.read(CRT)).unwrap();
    let mut der = p.contents().to_vec();
    der.extend_from_slice(&[0, 0, 0, 0]);
    n.write(CRT, pem::encode(&pem::Pem::new("CERTIFICATE", der)));
    expect_failure(&n, None, CHECK, &[&[CRT], &["trailing"]]);
}

#[test]
fn chain_with_corrupt_second_certificate() {
    let n = Node::new();
    let junk = pem::encode(&pem::Pem::new("CERTIFICATE", b"hello, not DER".to_vec()));
    n.write(CRT, n.read_str(CRT) + &junk);
    expect_failure(&n, None, CHECK, &[&[CRT], &["X.509"]]);
}

#[test]
fn encrypted_ca_key() {
    let n = Node::new();
    let enc = openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        s(&n.p(CA_KEY)),
        "-passout",
        "pass:secret",
        "-v2",
        "aes256",
    ]);
    n.write(CA_KEY, enc);
    expect_failure(&n, None, RENEW, &[&[CA_KEY], &["ENCRYPTED", "encrypted"]]);
}

#[test]
fn ca_key_for_another_certificate() {
    let n = Node::new();
    let other = openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ]);
    n.write(CA_KEY, other);
    expect_failure(&n, None, RENEW, &[&[CA_KEY], &["does not match"]]);
}

#[test]
fn etcd_ca_missing_while_etcd_leaves_exist() {
    let n = Node::new();
    std::fs::remove_file(n.p("/etc/kubernetes/pki/etcd/ca.crt")).unwrap();
    expect_failure(
        &n,
        None,
        RENEW,
        &[&["/etc/kubernetes/pki/etcd/ca.crt"], &["missing"]],
    );
}

#[test]
fn kubelet_client_pem_is_garbage() {
    let n = Node::new();
    let p = "/var/lib/kubelet/pki/kubelet-client-current.pem";
    n.write(p, "this is not a certificate\n");
    expect_failure(&n, None, CHECK, &[&[p], &["not PEM"]]);
}

// ---------------------------------------------------------------- kubeconfigs

#[test]
fn kubeconfig_is_a_yaml_list() {
    let n = Node::new();
    n.write(ADMIN, "- apiVersion: v1\n- kind: Config\n");
    expect_failure(&n, None, CHECK, &[&[ADMIN], &["not a mapping"]]);
}

#[test]
fn kubeconfig_is_empty() {
    let n = Node::new();
    n.write(ADMIN, "");
    expect_failure(&n, None, CHECK, &[&[ADMIN], &["empty", "not a mapping"]]);
}

/// client-go keeps the last entry of a name, kubeadm-certd's reader the first: refuse.
#[test]
fn kubeconfig_with_two_users_of_the_same_name() {
    let n = Node::new();
    let t = n.read_str(ADMIN);
    let users = &t[t.find("users:\n").unwrap() + "users:\n".len()..];
    n.write(ADMIN, t.clone() + users);
    let w: Needles = &[&[ADMIN], &["duplicate", "twice", "more than one"]];
    expect_failures(&n, None, &[(CHECK, w), (RENEW, w)]);
}

#[test]
fn kubeconfig_with_duplicate_top_level_key() {
    let n = Node::new();
    n.write(ADMIN, n.read_str(ADMIN) + "kind: Config\n");
    expect_failure(&n, None, CHECK, &[&[ADMIN], &["duplicate"]]);
}

/// Within the 1 MiB read cap. The YAML parser's time grows with the square of the flow
/// nesting depth (debug build: 4 000 levels 0.8 s, 20 000 levels 13 s), so this hangs.
#[test]
fn kubeconfig_deeply_nested_flow_sequences() {
    let n = Node::new();
    n.write(ADMIN, format!("x: {}\n", "[".repeat(500_000)));
    expect_failure(
        &n,
        None,
        CHECK,
        &[&[ADMIN], &["recursion", "nest", "depth"]],
    );
}

#[test]
fn kubeconfig_with_a_900_kb_line() {
    let n = Node::new();
    let t = n.read_str(ADMIN);
    let start = t.find("client-certificate-data: ").unwrap() + "client-certificate-data: ".len();
    let end = start + t[start..].find('\n').unwrap();
    n.write(
        ADMIN,
        format!("{}{}{}", &t[..start], "A".repeat(900_000), &t[end..]),
    );
    expect_failure(&n, None, CHECK, &[&[ADMIN], &["client-certificate-data"]]);
}

/// After a successful renewal the kubeconfig must parse and its pair match and chain.
fn assert_kubeconfig_sound(n: &Node) {
    use kubeadm_certd::pki::{inspect, keys, kubeconfig};
    let kc = kubeconfig::parse(&n.read_str(ADMIN)).unwrap();
    let cert = inspect::parse_cert_file(&kc.client_cert).unwrap().remove(0);
    let key = keys::parse_key_file(&kc.client_key).unwrap();
    assert_eq!(cert.spki, key.spki(), "admin.conf: key does not match cert");
    let ca = inspect::parse_cert_file(&n.read(CA_CRT)).unwrap().remove(0);
    assert!(cert.signed_by(&ca));
}

#[test]
fn kubeconfig_written_as_json() {
    let n = Node::new();
    let v: serde_json::Value = serde_yaml::from_str(&n.read_str(ADMIN)).unwrap();
    n.write(ADMIN, serde_json::to_string_pretty(&v).unwrap());
    either(&n, RENEW, &[&[ADMIN], &["flow", "JSON", "edit"]], |n, _| {
        assert_kubeconfig_sound(n)
    });
}

#[test]
fn kubeconfig_credentials_through_an_alias() {
    let n = Node::new();
    let t = n.read_str(ADMIN);
    let start = t.find("client-key-data: ").unwrap() + "client-key-data: ".len();
    let end = start + t[start..].find('\n').unwrap();
    let key = t[start..end].to_string();
    let t = format!("x-key: &k {key}\n{}*k{}", &t[..start], &t[end..]);
    n.write(ADMIN, t);
    either(
        &n,
        RENEW,
        &[&[ADMIN], &["alias", "anchor", "edit"]],
        |n, _| assert_kubeconfig_sound(n),
    );
}
