//! The kubelet's files: the config that `kubelet-serving-certs` edits and the kubelet.conf that
//! `repair-kubelet-conf` rewrites. Every command runs with --no-restart where it has one.

use super::*;
use base64::Engine as _;

const KCFG: &str = "/var/lib/kubelet/config.yaml";
const KCONF: &str = "/etc/kubernetes/kubelet.conf";
const PEM: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
const ENABLE: &[&str] = &["kubelet-serving-certs", "enable", "--no-restart"];
const REPAIR: &[&str] = &["repair-kubelet-conf"];

#[test]
fn kubelet_config_not_yaml() {
    let n = Node::new();
    n.write(KCFG, "kind: KubeletConfiguration\n  bad: [indent\n");
    expect_failure(
        &n,
        None,
        ENABLE,
        &[&[KCFG], &["not a valid kubelet config"]],
    );
}

#[test]
fn kubelet_config_is_a_yaml_list() {
    let n = Node::new();
    n.write(KCFG, "- kind: KubeletConfiguration\n");
    let w: Needles = &[&[KCFG], &["sequence", "mapping"]];
    expect_failure(&n, None, ENABLE, w);
}

#[test]
fn kubelet_config_is_a_fifo() {
    let n = Node::new();
    std::fs::remove_file(n.p(KCFG)).unwrap();
    mkfifo(&n.p(KCFG));
    expect_failure(&n, None, ENABLE, &[&[KCFG], &["not a regular file"]]);
}

#[test]
fn kubelet_config_with_non_utf8_bytes() {
    let n = Node::new();
    let mut b = b"# caf\xe9\n".to_vec();
    b.extend(n.read(KCFG));
    n.write(KCFG, b);
    expect_failure(&n, None, ENABLE, &[&[KCFG], &["UTF-8"]]);
}

#[test]
fn kubelet_config_with_the_key_twice() {
    let n = Node::new();
    let t = n.read_str(KCFG) + "serverTLSBootstrap: false\nserverTLSBootstrap: false\n";
    n.write(KCFG, t);
    expect_failure(&n, None, ENABLE, &[&[KCFG], &["duplicate"]]);
}

#[test]
fn kubelet_config_alias_bomb() {
    let n = Node::new();
    n.write(KCFG, alias_bomb("kind: KubeletConfiguration\n"));
    let w: Needles = &[&[KCFG], &["repetition limit", "alias", "nest"]];
    expect_failure(&n, None, ENABLE, w);
}

/// After a successful enable, the file must say serverTLSBootstrap: true and still parse.
fn assert_enabled(n: &Node) {
    let info = kubeadm_certd::node::kubelet::parse_kubelet_config(&n.read(KCFG)).unwrap();
    assert_eq!(
        info.server_tls_bootstrap,
        Some(true),
        "{}",
        n.read_str(KCFG)
    );
}

#[test]
fn kubelet_config_as_a_flow_mapping() {
    let n = Node::new();
    n.write(
        KCFG,
        "{kind: KubeletConfiguration, apiVersion: kubelet.config.k8s.io/v1beta1}\n",
    );
    let w: Needles = &[&[KCFG], &["flow"]];
    either(&n, ENABLE, w, |n, _| assert_enabled(n));
}

/// Found by the kubelet_config_edit fuzz target: a tagged top-level mapping.
#[test]
fn kubelet_config_with_a_tagged_document() {
    let n = Node::new();
    n.write(KCFG, format!("!custom-tag\n{}", n.read_str(KCFG)));
    let w: Needles = &[&[KCFG], &["tag", "invalid type"]];
    either(&n, ENABLE, w, |n, _| {
        assert!(n.read_str(KCFG).starts_with("!custom-tag\n"));
        assert_enabled(n);
    });
}

#[test]
fn kubelet_config_symlink_to_dev_zero_for_serving_certs() {
    let n = Node::new();
    n.symlink(KCFG, "/dev/zero");
    expect_failure(&n, None, ENABLE, &[&[KCFG], &["outside the node root"]]);
}

/// kubelet.conf as clusters made before kubeadm 1.17 have it: the client pair embedded.
fn embed_kubelet_credentials(n: &Node) {
    let blocks = pem::parse_many(n.read(PEM)).unwrap();
    let b64 = |p: &pem::Pem| base64::engine::general_purpose::STANDARD.encode(pem::encode(p));
    let refs = format!("    client-certificate: {PEM}\n    client-key: {PEM}\n");
    let data = format!(
        "    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(&blocks[0]),
        b64(&blocks[1])
    );
    let t = n.read_str(KCONF);
    assert!(t.contains(&refs));
    n.write(KCONF, t.replace(&refs, &data));
}

#[test]
fn kubelet_conf_is_a_yaml_list() {
    let n = Node::new();
    n.write(KCONF, "- apiVersion: v1\n");
    expect_failure(
        &n,
        None,
        REPAIR,
        &[&[KCONF], &["current-context", "mapping"]],
    );
}

/// client-go refuses a kubeconfig with two users of one name; so must the repair.
#[test]
fn kubelet_conf_with_two_users_of_the_same_name() {
    let n = Node::new();
    let refs = n.read_str(KCONF);
    embed_kubelet_credentials(&n);
    let embedded = n.read_str(KCONF);
    let users = &embedded[embedded.find("users:\n").unwrap() + "users:\n".len()..];
    n.write(KCONF, refs + users);
    expect_failure(
        &n,
        None,
        REPAIR,
        &[&[KCONF], &["duplicate", "twice", "more than one"]],
    );
}

#[test]
fn kubelet_conf_symlink_to_dev_zero() {
    let n = Node::new();
    n.symlink(KCONF, "/dev/zero");
    expect_failure(&n, None, REPAIR, &[&[KCONF], &["outside the node root"]]);
}

#[test]
fn kubelet_client_pem_is_a_fifo_during_repair() {
    let n = Node::new();
    embed_kubelet_credentials(&n);
    std::fs::remove_file(n.p(PEM)).unwrap();
    mkfifo(&n.p(PEM));
    expect_failure(
        &n,
        None,
        REPAIR,
        &[&[KCONF], &[PEM], &["not a regular file"]],
    );
}

#[test]
fn kubelet_client_pem_without_its_key_during_repair() {
    let n = Node::new();
    embed_kubelet_credentials(&n);
    let blocks = pem::parse_many(n.read(PEM)).unwrap();
    n.write(PEM, pem::encode(&blocks[0]));
    expect_failure(&n, None, REPAIR, &[&[KCONF], &[PEM], &["no private key"]]);
}
