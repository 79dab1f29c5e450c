//! The cases the issue names.

use super::*;

#[test]
fn cert_of_10_mb() {
    let n = Node::new();
    let mut big = n.read(CRT);
    big.resize(10 << 20, b'\n');
    n.write(CRT, big);
    let w: Needles = &[&[CRT], &["larger than"]];
    expect_failures(&n, None, &[(CHECK, w), (RENEW, w)]);
}

#[test]
fn key_symlink_to_dev_zero() {
    let n = Node::new();
    n.symlink(KEY, "/dev/zero");
    let w: Needles = &[&[KEY], &["outside the node root"]];
    expect_failures(&n, None, &[(CHECK, w), (RENEW, w)]);
}

#[test]
fn cert_symlink_to_fifo_inside_root() {
    let n = Node::new();
    mkfifo(&n.p("/etc/kubernetes/pki/apiserver.fifo"));
    n.symlink(CRT, "apiserver.fifo");
    expect_failure(&n, None, CHECK, &[&[CRT], &["not a regular file"]]);
}

#[test]
fn key_symlink_to_char_device_inside_root() {
    let n = Node::new();
    std::fs::create_dir_all(n.p("/dev")).unwrap();
    sh("mknod", &[s(&n.p("/dev/zero")), "c", "1", "5"]);
    n.symlink(KEY, n.p("/dev/zero"));
    expect_failure(&n, None, RENEW, &[&[KEY], &["not a regular file"]]);
}

#[test]
fn private_key_in_crt_file() {
    let n = Node::new();
    n.write(CRT, n.read(KEY));
    expect_failure(&n, None, CHECK, &[&[CRT], &["PRIVATE KEY"]]);
}

#[test]
fn pem_with_trailing_garbage() {
    let n = Node::new();
    n.write(CRT, n.read_str(CRT) + "garbage after the certificate\n");
    expect_failure(&n, None, CHECK, &[&[CRT], &["trailing"]]);
}

#[test]
fn kubeconfig_context_names_missing_user() {
    let n = Node::new();
    let t = n
        .read_str(ADMIN)
        .replacen("    user: kubernetes-admin\n", "    user: ghost\n", 1);
    assert!(t.contains("user: ghost"));
    n.write(ADMIN, t);
    expect_failure(&n, None, CHECK, &[&[ADMIN], &["ghost"]]);
}

#[test]
fn config_alias_bomb() {
    let n = Node::new();
    let c = n.outside_file("config.yaml", alias_bomb("exclude: *i\n"));
    let w: Needles = &[&[s(&c)], &["unknown field", "repetition limit", "alias"]];
    expect_failure(&n, Some(&c), CHECK, w);
}

#[test]
fn kubeconfig_alias_bomb() {
    let n = Node::new();
    n.write(ADMIN, alias_bomb("") + &n.read_str(ADMIN));
    let w: Needles = &[&[ADMIN], &["repetition limit", "alias", "recursion"]];
    expect_failure(&n, None, CHECK, w);
}

#[test]
fn cert_with_non_utf8_bytes() {
    let n = Node::new();
    let mut b = n.read(CRT);
    let mid = b.len() / 2;
    b.splice(mid..mid, [0xff, 0xfe, 0x80]);
    n.write(CRT, b);
    expect_failure(&n, None, CHECK, &[&[CRT], &["UTF-8"]]);
}

#[test]
fn kubeconfig_with_non_utf8_bytes() {
    let n = Node::new();
    let mut b = b"# caf\xe9 (Latin-1)\n".to_vec();
    b.extend(n.read(ADMIN));
    n.write(ADMIN, b);
    expect_failure(&n, None, CHECK, &[&[ADMIN], &["UTF-8"]]);
}

#[test]
fn config_with_non_utf8_bytes() {
    let n = Node::new();
    let c = n.outside_file("config.yaml", b"# caf\xe9\nrenewBefore: 30d\n");
    expect_failure(&n, Some(&c), CHECK, &[&[s(&c)], &["UTF-8"]]);
}

/// A CA subject with two O attributes; rcgen keeps one value per attribute type, so the issuer
/// of a renewed leaf must be checked byte for byte (or the renewal refused).
#[test]
fn ca_with_duplicate_o_attributes() {
    let n = Node::new();
    certs::openssl_ca(&n, "/O=a/O=b/CN=kubernetes", "1001");
    certs::openssl_leaf(&n, &OsslLeaf::default());
    let w: Needles = &[&[CRT, CA_CRT], &["issuer", "subject", "attribute"]];
    either(&n, RENEW, w, |n, _| {
        assert_verifies(n);
        let issuer = openssl(&["x509", "-in", s(&n.p(CRT)), "-noout", "-issuer"]);
        assert_eq!(
            String::from_utf8_lossy(&issuer).trim(),
            "issuer=O = a, O = b, CN = kubernetes"
        );
    });
}

#[test]
fn leaf_with_negative_serial() {
    let n = Node::new();
    certs::openssl_leaf(
        &n,
        &OsslLeaf {
            serial: "-5",
            ..OsslLeaf::default()
        },
    );
    expect_failure(&n, None, CHECK, &[&[CRT], &["serial"]]);
}

#[test]
fn ca_with_negative_serial() {
    let n = Node::new();
    certs::openssl_ca(&n, "/CN=kubernetes", "-5");
    certs::openssl_leaf(&n, &OsslLeaf::default());
    expect_failure(&n, None, RENEW, &[&[CA_CRT], &["serial"]]);
}

#[test]
fn manifests_dir_missing() {
    let n = Node::new();
    std::fs::remove_dir_all(n.p("/etc/kubernetes/manifests")).unwrap();
    let w: Needles = &[
        &["/etc/kubernetes/manifests"],
        &["no manifest", "missing", "No such file", "does not exist"],
    ];
    let all: &[&str] = &["restart", "all"];
    let etcd: &[&str] = &["restart", "etcd"];
    expect_failures(&n, None, &[(all, w), (etcd, w)]);
}

#[test]
fn parking_dir_on_another_filesystem() {
    if !can_mount() {
        return;
    }
    let n = Node::new();
    let _m = mount_tmpfs(&n.p("/mnt/park-fs"), "1m");
    let c = n.outside_file(
        "config.yaml",
        format!("{QUICK_RESTART}  parkingDir: /mnt/park-fs/parked\n"),
    );
    let w: Needles = &[&["/mnt/park-fs/parked"], &["different filesystem"]];
    expect_failure(&n, Some(&c), &["restart", "etcd"], w);
}

#[test]
fn read_only_filesystem() {
    if !can_mount() {
        return;
    }
    let n = Node::new();
    let _m = mount_read_only(&n.p("/etc/kubernetes"));
    let w: Needles = &[&["/etc/kubernetes/"], &["Read-only file system"]];
    expect_failure(&n, None, RENEW, w);
}

#[test]
fn disk_full_while_staging() {
    if !can_mount() {
        return;
    }
    let n = Node::new();
    let pki = n.p("/etc/kubernetes/pki");
    let saved = n.outside.join("pki");
    sh("cp", &["-a", s(&pki), s(&saved)]);
    let _m = mount_tmpfs(&pki, "1m");
    sh("cp", &["-a", &format!("{}/.", s(&saved)), s(&pki)]);
    // Fill the tmpfs, then free two pages: the first staged files fit, a later one does not.
    let filler = pki.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let page = [0u8; 4096];
    while std::io::Write::write_all(&mut f, &page).is_ok() {}
    let len = f.metadata().unwrap().len();
    f.set_len(len / 4096 * 4096 - 2 * 4096).unwrap();
    drop(f);
    let w: Needles = &[&["/etc/kubernetes/"], &["No space left on device"]];
    expect_failure(&n, None, RENEW, w);
}
