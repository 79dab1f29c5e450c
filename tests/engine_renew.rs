//! `renew` end to end through the real binary, on RSA-2048, RSA-4096 and ECDSA-P256 nodes:
//! the renewed certificates carry kubeadm's profile (issue 2 §4), the files are replaced safely
//! (§5), and `due`, names, `--dry-run`, chains, `exclude` and the lock behave.

mod common;

use common::checks::*;
use common::*;
use kubeadm_certd::pki::inspect::KeyAlg;
use kubeadm_certd::plan::report::format::kubeadm_date;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use time::OffsetDateTime;

fn renew_all_on(alg: KeyAlg) {
    let n = Node::build(|s| s.key = alg);
    let names = n.names();
    let old = before(&n, &names);
    let old_tree = n.tree();
    // Owner and group must carry over to the new files.
    std::os::unix::fs::chown(n.pki("apiserver.key"), Some(1234), Some(2345)).unwrap();
    std::os::unix::fs::chown(n.kc("admin.conf"), Some(1234), Some(2345)).unwrap();
    let old_texts: BTreeMap<&str, String> = KUBECONFIGS
        .iter()
        .map(|k| (*k, std::fs::read_to_string(n.kc(k)).unwrap()))
        .collect();
    let kubelet_before = Tree::of(&n.path("/var/lib/kubelet"), &[]);
    let kubelet_conf = std::fs::read(n.kc("kubelet.conf")).unwrap();

    let t0 = OffsetDateTime::now_utc();
    let out = n.run(&["renew", "all", "--no-restart"]);
    let t1 = OffsetDateTime::now_utc();
    out.ok();

    for nm in &names {
        check_renewed(&n, nm, &old[*nm], alg, t0, t1);
    }
    let want_label = match alg {
        KeyAlg::Rsa(_) => "RSA PRIVATE KEY",
        KeyAlg::EcP256 | KeyAlg::EcP384 => "EC PRIVATE KEY",
    };
    for nm in &names {
        assert_eq!(
            pem_label(&n.key_pem(nm)),
            want_label,
            "{nm}: not kubeadm's key form"
        );
    }
    for (_, base, _) in PKI_LEAVES {
        assert_eq!(
            mode(&n.pki(&format!("{base}.key"))),
            0o600,
            "{base}.key mode"
        );
        assert_eq!(
            mode(&n.pki(&format!("{base}.crt"))),
            0o644,
            "{base}.crt mode"
        );
    }
    for k in KUBECONFIGS {
        assert_eq!(mode(&n.kc(k)), 0o600, "{k} mode");
        check_kubeconfig_text(&n, k, &old_texts[k]);
    }
    for p in [n.pki("apiserver.key"), n.kc("admin.conf")] {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (1234, 2345),
            "{}: owner not kept",
            p.display()
        );
    }
    assert_eq!(
        std::fs::read(n.kc("kubelet.conf")).unwrap(),
        kubelet_conf,
        "kubelet.conf was touched"
    );
    kubelet_before.assert_same(&Tree::of(&n.path("/var/lib/kubelet"), &[]), "kubelet files");
    assert!(
        n.staged_leftovers().is_empty(),
        "temp files left: {:?}",
        n.staged_leftovers()
    );

    // Every changed path is one of the renewed files; nothing else moved.
    let changed = old_tree.diff(&n.tree());
    for c in &changed {
        let ok = KUBECONFIGS
            .iter()
            .any(|k| c == &format!("etc/kubernetes/{k}"))
            || PKI_LEAVES.iter().any(|(_, b, _)| {
                c == &format!("etc/kubernetes/pki/{b}.crt")
                    || c == &format!("etc/kubernetes/pki/{b}.key")
            });
        assert!(ok, "renew all changed {c}");
    }

    // kubeadm's lines, in name order, then the restart list.
    let mut at = 0;
    for nm in &names {
        let line = format!("{} renewed", long_name(nm));
        let pos = out.stdout[at..]
            .find(&line)
            .unwrap_or_else(|| panic!("missing or out of order: {line:?}\n{}", out.stdout));
        at += pos + line.len();
    }
    assert!(
        out.stdout
            .contains("etcd, kube-apiserver, kube-controller-manager, kube-scheduler"),
        "restart list missing:\n{}",
        out.stdout
    );

    // The backup: one directory, 0700, holding every old file byte for byte.
    let backups = n.backups();
    assert_eq!(backups.len(), 1, "backups: {backups:?}");
    let b = &backups[0];
    assert_eq!(mode(b), 0o700, "backup dir mode");
    let ts = b.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        out.stdout
            .contains(&format!("/var/lib/kubeadm-certd/backups/{ts}")),
        "backup dir not named:\n{}",
        out.stdout
    );
    let mut files: Vec<String> = KUBECONFIGS
        .iter()
        .map(|k| format!("etc/kubernetes/{k}"))
        .collect();
    for (_, base, _) in PKI_LEAVES {
        files.push(format!("etc/kubernetes/pki/{base}.crt"));
        files.push(format!("etc/kubernetes/pki/{base}.key"));
    }
    for f in files {
        let Entry::File { bytes, .. } = &old_tree.0[&f] else {
            panic!("{f} was not a file")
        };
        let saved = std::fs::read(b.join(&f)).unwrap_or_else(|e| panic!("backup of {f}: {e}"));
        assert_eq!(&saved, bytes, "backup of {f} differs from the old file");
    }
}

#[test]
fn renew_all_rsa2048() {
    renew_all_on(KeyAlg::Rsa(2048));
}

#[test]
fn renew_all_rsa4096() {
    renew_all_on(KeyAlg::Rsa(4096));
}

#[test]
fn renew_all_ecdsa_p256() {
    renew_all_on(KeyAlg::EcP256);
}

/// The PKI leaves renewed by name (no kubeconfig involved).
#[test]
fn renew_pki_leaves_by_name() {
    let n = Node::build(|s| s.key = KeyAlg::EcP256);
    let names: Vec<&str> = PKI_LEAVES.iter().map(|(nm, _, _)| *nm).collect();
    let old = before(&n, &names);
    let kc_before: Vec<Vec<u8>> = KUBECONFIGS
        .iter()
        .map(|k| std::fs::read(n.kc(k)).unwrap())
        .collect();
    let mut args = vec!["renew", "--no-restart"];
    args.extend(&names);
    let t0 = OffsetDateTime::now_utc();
    n.run(&args).ok();
    let t1 = OffsetDateTime::now_utc();
    for nm in &names {
        check_renewed(&n, nm, &old[*nm], KeyAlg::EcP256, t0, t1);
    }
    let kc_after: Vec<Vec<u8>> = KUBECONFIGS
        .iter()
        .map(|k| std::fs::read(n.kc(k)).unwrap())
        .collect();
    assert_eq!(
        kc_before, kc_after,
        "kubeconfigs changed although not named"
    );
}

/// kubeadm writes PEM with LF line endings (Go's pem.Encode), and the kubeconfig's CA data
/// is ca.crt as on disk; so must we.
#[test]
fn renewed_files_use_lf_line_endings() {
    let n = Node::default_node();
    n.run(&["renew", "apiserver", "admin.conf", "--no-restart"])
        .ok();
    let mut bad = Vec::new();
    for f in ["apiserver.crt", "apiserver.key"] {
        if std::fs::read(n.pki(f)).unwrap().contains(&b'\r') {
            bad.push(f.to_string());
        }
    }
    if kubeconfig_field(&n.kc("admin.conf"), "certificate-authority-data")
        != std::fs::read(n.pki("ca.crt")).unwrap()
    {
        bad.push("admin.conf certificate-authority-data is not ca.crt byte for byte".into());
    }
    for field in [
        "client-certificate-data",
        "client-key-data",
        "certificate-authority-data",
    ] {
        if kubeconfig_field(&n.kc("admin.conf"), field).contains(&b'\r') {
            bad.push(format!("admin.conf {field}"));
        }
    }
    assert!(
        bad.is_empty(),
        "not kubeadm's PEM text (CR characters): {bad:?}"
    );
}

#[test]
fn renew_due_follows_renew_before() {
    let n = Node::default_node();
    let t = n.tree();
    let out = n.run_with_config("renewBefore: 1d\n", &["renew", "due", "--no-restart"]);
    out.ok();
    t.assert_same(&n.tree(), "renew due with 3 days left and renewBefore 1d");
    assert!(
        n.backups().is_empty(),
        "a backup was made although nothing renewed"
    );
    assert!(
        !out.stdout.contains(" renewed"),
        "something renewed:\n{}",
        out.stdout
    );

    let names = n.names();
    let old = before(&n, &names);
    let t0 = OffsetDateTime::now_utc();
    let out = n.run_with_config("renewBefore: 30d\n", &["renew", "due", "--no-restart"]);
    let t1 = OffsetDateTime::now_utc();
    out.ok();
    for nm in &names {
        check_renewed(&n, nm, &old[*nm], KeyAlg::Rsa(2048), t0, t1);
        assert!(
            out.stdout.contains(&format!("{} renewed", long_name(nm))),
            "{nm}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn renew_one_name_touches_only_it() {
    let n = Node::default_node();
    let t = n.tree();
    let out = n.run(&["renew", "apiserver", "--no-restart"]);
    out.ok();
    assert!(
        out.stdout
            .contains("certificate for serving the Kubernetes API renewed"),
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.matches(" renewed").count(), 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("kube-apiserver"),
        "restart of kube-apiserver not named:\n{}",
        out.stdout
    );
    let mut d = t.diff(&n.tree());
    d.sort();
    assert_eq!(
        d,
        vec![
            "etc/kubernetes/pki/apiserver.crt",
            "etc/kubernetes/pki/apiserver.key"
        ]
    );
}

#[test]
fn dry_run_changes_nothing_and_prints_the_plan() {
    let n = Node::default_node();
    let t = n.tree_all();
    let t0 = OffsetDateTime::now_utc();
    let out = n.run(&["renew", "all", "--dry-run"]);
    let t1 = OffsetDateTime::now_utc();
    out.ok();
    t.assert_same(&n.tree_all(), "--dry-run");
    let news = [kubeadm_date(t0 + 365 * DAY), kubeadm_date(t1 + 365 * DAY)];
    for nm in n.names() {
        let old = kubeadm_date(facts(&n.leaf_der(nm)).not_after);
        let line = out
            .stdout
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == nm))
            .unwrap_or_else(|| panic!("{nm} not in the plan:\n{}", out.stdout));
        assert!(
            line.contains(&old),
            "{nm}: old NotAfter {old} missing: {line}"
        );
        assert!(
            news.iter().any(|d| line.contains(&format!("-> {d}"))),
            "{nm}: new NotAfter missing: {line}"
        );
    }
    assert!(
        out.stdout
            .contains("etcd, kube-apiserver, kube-controller-manager, kube-scheduler"),
        "restarts not printed:\n{}",
        out.stdout
    );
}

#[test]
fn a_chain_after_the_leaf_is_kept() {
    let n = Node::default_node();
    let extra = std::fs::read(n.pki("front-proxy-ca.crt")).unwrap();
    let mut crt = std::fs::read(n.pki("apiserver.crt")).unwrap();
    crt.extend_from_slice(&extra);
    std::fs::write(n.pki("apiserver.crt"), &crt).unwrap();
    let old = before(&n, &["apiserver"]);
    n.run(&["renew", "apiserver", "--no-restart"]).ok();
    let ders = pem_ders(&std::fs::read(n.pki("apiserver.crt")).unwrap());
    assert_eq!(ders.len(), 2, "chain not kept");
    assert_ne!(ders[0], old["apiserver"].der, "leaf not renewed");
    assert_eq!(
        ders[1],
        pem_ders(&extra)[0],
        "the rest of the chain changed"
    );
    assert_verifies(&n.pki("ca.crt"), &ders[0], "apiserver with chain");
}

#[test]
fn exclude_is_honoured() {
    let n = Node::default_node();
    // The default config under --root is read when no --config is given.
    let cfg = n.path("/etc/kubeadm-certd/config.yaml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, "exclude: [apiserver]\n").unwrap();
    let crt = std::fs::read(n.pki("apiserver.crt")).unwrap();
    let key = std::fs::read(n.pki("apiserver.key")).unwrap();
    let front = n.leaf_der("front-proxy-client");
    let out = n.run(&["renew", "all", "--no-restart"]);
    out.ok();
    assert_eq!(
        std::fs::read(n.pki("apiserver.crt")).unwrap(),
        crt,
        "excluded apiserver.crt renewed"
    );
    assert_eq!(
        std::fs::read(n.pki("apiserver.key")).unwrap(),
        key,
        "excluded apiserver.key renewed"
    );
    assert_ne!(
        n.leaf_der("front-proxy-client"),
        front,
        "the others were not renewed"
    );
    assert!(
        !out.stdout
            .contains("certificate for serving the Kubernetes API renewed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("apiserver is excluded"),
        "exclusion not reported:\n{}",
        out.stdout
    );
}

#[test]
fn a_second_run_names_the_lock_holder() {
    use std::io::Write;
    let n = Node::default_node();
    let lock = n.root.join(STATE).join("lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock)
        .unwrap();
    f.try_lock().unwrap();
    f.set_len(0).unwrap();
    write!(f, "{}", std::process::id()).unwrap();
    f.flush().unwrap();
    let t = n.tree();
    // --wait bounds the wait for the holder (default 5 min); the message names it either way.
    let out = n.run(&["renew", "all", "--no-restart", "--wait", "1s"]);
    out.assert_code(1);
    out.assert_one_error(&[&std::process::id().to_string()]);
    t.assert_same(&n.tree(), "renew while locked");
    drop(f); // release
    n.run(&["renew", "apiserver", "--no-restart"]).ok();
}

#[test]
fn certificate_validity_is_honoured() {
    let n = Node::default_node();
    let t0 = OffsetDateTime::now_utc();
    n.run_with_config(
        "certificateValidity: 30d\nrenewBefore: 7d\n",
        &["renew", "front-proxy-client", "--no-restart"],
    )
    .ok();
    let t1 = OffsetDateTime::now_utc();
    let na = facts(&n.leaf_der("front-proxy-client")).not_after;
    assert!(
        na >= t0.replace_nanosecond(0).unwrap() + 30 * DAY && na <= t1 + 30 * DAY,
        "NotAfter {na} is not now+30d"
    );
}
