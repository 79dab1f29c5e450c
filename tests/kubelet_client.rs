//! Issue 13: reviving an expired kubelet client certificate on a control-plane node, as the
//! real binary does it on temp-dir nodes built in the kubelet's own layout (dated pems, an
//! absolute `kubelet-client-current.pem` link), checked with openssl: `openssl verify`, the
//! subject and usages, the key, and a real `s_server -Verify` client-auth handshake.

mod revive_support;

use revive_support::*;
use std::path::Path;

fn day() -> time::Duration {
    time::Duration::days(1)
}

/// The first evidence: expired yesterday, `run --once`, a new dated pem that the link
/// points at, sound, accepted by a real client-auth handshake where the old one is refused,
/// and the kubelet restarted through systemctl.
#[test]
fn run_once_revives_an_expired_client_certificate() {
    let n = RNode::new(Some(time::OffsetDateTime::now_utc() - day()), |_| {});
    let old_target = n.link_target();
    let old_file = n.current_file();
    let old_bytes = std::fs::read(&old_file).unwrap();
    let before = n.dated();
    assert_eq!(before.len(), 1);

    let r = n.run(&["run", "--once"]);
    r.assert_ok("run --once");

    let after = n.dated();
    assert_eq!(after.len(), 2, "{after:?}");
    let new_name = after.iter().find(|d| !before.contains(d)).unwrap();
    assert_eq!(
        n.link_target(),
        Path::new("/var/lib/kubelet/pki").join(new_name),
        "the link does not point at the new pem (absolute)"
    );
    assert_ne!(n.link_target(), old_target);
    // The old file stays, byte for byte, and the backup holds it and the old link.
    assert_eq!(std::fs::read(&old_file).unwrap(), old_bytes);
    let backups: Vec<_> = std::fs::read_dir(n.p("var/lib/kubeadm-certd/backups"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let rel = old_file.strip_prefix(&n.root).unwrap();
    assert_eq!(std::fs::read(backups[0].join(rel)).unwrap(), old_bytes);
    assert_eq!(
        std::fs::read_link(backups[0].join(LINK)).unwrap(),
        old_target
    );

    let new_file = n.current_file();
    assert_sound_client(&n, &new_file, "cp1");

    // A real TLS client-auth handshake against the cluster CA.
    let (crt, key) = (
        n.p("etc/kubernetes/pki/apiserver.crt"),
        n.p("etc/kubernetes/pki/apiserver.key"),
    );
    let (ok, log) = client_auth_handshake(&n.p(CA), &crt, &key, &new_file);
    assert!(ok, "the new certificate was refused:\n{log}");
    let (ok, log) = client_auth_handshake(&n.p(CA), &crt, &key, &old_file);
    assert!(!ok, "the expired certificate was accepted:\n{log}");
    assert!(log.contains("certificate has expired"), "{log}");

    // The kubelet was restarted, then waited for.
    let calls = n.systemctl_calls();
    assert_eq!(
        calls.first().map(String::as_str),
        Some("restart kubelet"),
        "{calls:?}"
    );
    assert!(
        calls.iter().skip(1).all(|c| c == "is-active kubelet"),
        "{calls:?}"
    );
    assert!(
        r.stderr
            .contains("revived the kubelet's client certificate"),
        "{}",
        r.stderr
    );

    // The next check-expiration reads the new one through the absolute link under --root.
    let c = n.run(&["check-expiration"]);
    c.assert_ok("check-expiration");
    assert!(c.stdout.contains("kubelet-client "), "{}", c.stdout);
    assert!(
        c.stdout.contains("kubelet-client: the kubelet rotates it"),
        "{}",
        c.stdout
    );
}

/// Deliver 0: an absolute link under --root is read (not silently dropped); a dangling one is
/// a row with the reason and a failure.
#[test]
fn check_expiration_reads_the_kubelets_absolute_link() {
    let n = RNode::new(Some(time::OffsetDateTime::now_utc() - day()), |_| {});
    assert!(n.link_target().is_absolute());
    let c = n.run(&["check-expiration"]);
    c.assert_ok("check-expiration");
    assert!(c.stdout.contains("KUBELET CERTIFICATE"), "{}", c.stdout);
    assert!(
        c.stdout
            .contains("kubelet-client: revivable: it expired at "),
        "{}",
        c.stdout
    );
    let j = n.run(&["check-expiration", "-o", "json"]);
    j.assert_ok("check-expiration -o json");
    assert!(
        j.stdout.contains("\"note\": \"revivable: it expired at"),
        "{}",
        j.stdout
    );

    std::fs::remove_file(n.current_file()).unwrap();
    let c = n.run(&["check-expiration"]);
    assert!(!c.ok);
    assert!(
        c.stdout.contains("!UNREADABLE! kubelet-client"),
        "{}",
        c.stdout
    );
    assert!(
        c.stdout.contains("does not exist under the node root"),
        "{}",
        c.stdout
    );
    assert!(
        c.stderr.contains(&format!(
            "error: {LINK_HOST}: symlink to /var/lib/kubelet/pki/kubelet-client-"
        )),
        "{}",
        c.stderr
    );
}

#[test]
fn a_mid_life_certificate_is_untouched() {
    let n = RNode::new(None, |_| {});
    let before = kubelet_files(&n);
    n.run(&["run", "--once"]).assert_ok("run --once");
    assert_eq!(
        kubelet_files(&n),
        before,
        "a mid-life certificate was touched"
    );
    assert!(n.systemctl_calls().is_empty(), "{:?}", n.systemctl_calls());
    let r = n.run(&["kubelet-client", "revive"]);
    r.assert_ok("kubelet-client revive");
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
    assert_eq!(kubelet_files(&n), before);
}

#[test]
fn a_worker_without_ca_key_is_untouched_and_warned() {
    let n = RNode::new(Some(time::OffsetDateTime::now_utc() - day()), |s| {
        s.external_ca = true
    });
    let before = kubelet_files(&n);
    let r = n.run(&["run", "--once"]);
    r.assert_ok("run --once");
    assert_eq!(
        kubelet_files(&n),
        before,
        "a worker's kubelet files were touched"
    );
    assert!(n.systemctl_calls().is_empty(), "{:?}", n.systemctl_calls());
    for needle in [
        "cannot issue one",
        "/etc/kubernetes/pki/ca.key does not exist",
        "kubeadm-certd kubelet-client kubeconfig --node cp1",
        "systemctl restart kubelet",
        "kubeadm-certd repair-kubelet-conf",
    ] {
        assert!(
            r.stderr.contains(needle),
            "warning lacks {needle:?}:\n{}",
            r.stderr
        );
    }
    assert_eq!(
        r.stderr.matches("cannot issue one").count(),
        1,
        "{}",
        r.stderr
    );
    let c = n.run(&["check-expiration"]);
    assert!(
        c.stdout.contains("kubelet-client: not revivable here"),
        "{}",
        c.stdout
    );
    let r = n.run(&["kubelet-client", "revive"]);
    assert!(
        !r.ok && r.stderr.contains("kubelet-client kubeconfig --node cp1"),
        "{}",
        r.stderr
    );
    assert_eq!(kubelet_files(&n), before);
}

#[test]
fn dry_run_changes_nothing_and_revive_repairs_an_embedded_kubelet_conf() {
    use base64::Engine as _;
    let n = RNode::new(Some(time::OffsetDateTime::now_utc() - day()), |_| {});
    // kubelet.conf from before kubeadm 1.17: the (expired) pair embedded.
    let conf = std::fs::read_to_string(n.p(CONF)).unwrap();
    let pem = std::fs::read_to_string(n.current_file()).unwrap();
    let i = pem.find("-----BEGIN EC PRIVATE KEY-----").unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let refs = format!("    client-certificate: {LINK_HOST}\n    client-key: {LINK_HOST}\n");
    let embedded = conf.replace(
        &refs,
        &format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&pem[..i]),
            b64(&pem[i..])
        ),
    );
    assert_ne!(embedded, conf);
    std::fs::write(n.p(CONF), &embedded).unwrap();

    let before = kubelet_files(&n);
    let r = n.run(&["kubelet-client", "revive", "--dry-run"]);
    r.assert_ok("--dry-run");
    assert!(
        r.stdout.contains("dry run") && r.stdout.contains("repair kubelet.conf"),
        "{}",
        r.stdout
    );
    assert_eq!(kubelet_files(&n), before);
    assert!(n.systemctl_calls().is_empty());

    let r = n.run(&["kubelet-client", "revive"]);
    r.assert_ok("kubelet-client revive");
    assert_eq!(
        std::fs::read_to_string(n.p(CONF)).unwrap(),
        conf,
        "kubelet.conf not repaired"
    );
    assert_sound_client(&n, &n.current_file(), "cp1");
    assert_eq!(
        n.systemctl_calls().first().map(String::as_str),
        Some("restart kubelet")
    );
}

/// `kubelet-client kubeconfig --node NAME`: a kubelet.conf for another node whose embedded
/// certificate verifies against ca.crt, user system:node:NAME, this node's cluster, admin.conf's
/// server.
#[test]
fn kubeconfig_for_a_worker() {
    let n = RNode::new(None, |_| {});
    let before = kubelet_files(&n);
    let r = n.run(&["kubelet-client", "kubeconfig", "--node", "worker-7"]);
    r.assert_ok("kubelet-client kubeconfig");
    assert_eq!(kubelet_files(&n), before, "it wrote to the node");
    let doc: serde_yaml::Value = serde_yaml::from_str(&r.stdout).unwrap();
    let s = |v: &serde_yaml::Value| v.as_str().unwrap().to_string();
    assert_eq!(s(&doc["users"][0]["name"]), "system:node:worker-7");
    assert_eq!(
        s(&doc["contexts"][0]["context"]["user"]),
        "system:node:worker-7"
    );
    assert_eq!(
        s(&doc["current-context"]),
        "system:node:worker-7@kubernetes"
    );
    assert_eq!(s(&doc["clusters"][0]["name"]), "kubernetes");
    // No controlPlaneEndpoint known (no API, nothing kept): admin.conf's server comes before
    // kubelet.conf's (issue 18 item 2; tests/cluster_config.rs covers the endpoint).
    assert_eq!(
        s(&doc["clusters"][0]["cluster"]["server"]),
        "https://127.0.0.1:6443"
    );
    let d = tempfile::tempdir().unwrap();
    let dec = |v: &serde_yaml::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(s(v))
            .unwrap()
    };
    let user = &doc["users"][0]["user"];
    let both = d.path().join("worker.pem");
    let mut pem = dec(&user["client-certificate-data"]);
    pem.extend(dec(&user["client-key-data"]));
    std::fs::write(&both, pem).unwrap();
    assert_sound_client_file(&n, &both, "worker-7");
    let ca = dec(&doc["clusters"][0]["cluster"]["certificate-authority-data"]);
    assert_eq!(ca, std::fs::read(n.p(CA)).unwrap());
    let (ok, log) = client_auth_handshake(
        &n.p(CA),
        &n.p("etc/kubernetes/pki/apiserver.crt"),
        &n.p("etc/kubernetes/pki/apiserver.key"),
        &both,
    );
    assert!(ok, "{log}");

    let r = n.run(&[
        "kubelet-client",
        "kubeconfig",
        "--node",
        "w",
        "--server",
        "https://lb:6443",
    ]);
    r.assert_ok("--server");
    assert!(
        r.stdout.contains("    server: https://lb:6443\n"),
        "{}",
        r.stdout
    );
}

/// `kubelet.reviveClientCert: false` turns the daemon's revival off (and says so).
#[test]
fn the_setting_turns_it_off() {
    let n = RNode::new(Some(time::OffsetDateTime::now_utc() - day()), |_| {});
    let cfg = n.tmp.path().join("certd.yaml");
    std::fs::write(&cfg, "kubelet:\n  reviveClientCert: false\n").unwrap();
    let before = kubelet_files(&n);
    let r = n.run(&["--config", cfg.to_str().unwrap(), "run", "--once"]);
    r.assert_ok("run --once");
    assert_eq!(kubelet_files(&n), before);
    assert!(
        r.stderr.contains("kubelet.reviveClientCert is false"),
        "{}",
        r.stderr
    );
}

/// In its last 10% but not expired: the kubelet's rotation has failed, so it is revived too.
#[test]
fn the_last_tenth_counts() {
    let n = RNode::new(
        Some(time::OffsetDateTime::now_utc() + time::Duration::days(10)),
        |_| {},
    );
    let c = n.run(&["check-expiration"]);
    c.assert_ok("check-expiration");
    assert!(
        c.stdout
            .contains("kubelet-client: revivable: it entered the last 10% of its lifetime at "),
        "{}",
        c.stdout
    );
    let before = n.link_target();
    n.run(&["run", "--once"]).assert_ok("run --once");
    assert_ne!(n.link_target(), before, "not revived");
    assert_sound_client(&n, &n.current_file(), "cp1");
}

/// `restart.enabled: false`: the daemon revives but leaves the kubelet restart to the operator.
#[test]
fn restart_disabled_revives_without_restarting() {
    let n = RNode::new(Some(time::OffsetDateTime::now_utc() - day()), |_| {});
    let cfg = n.tmp.path().join("certd.yaml");
    std::fs::write(&cfg, "restart:\n  enabled: false\n").unwrap();
    let before = n.link_target();
    let r = n.run(&["--config", cfg.to_str().unwrap(), "run", "--once"]);
    r.assert_ok("run --once");
    assert_ne!(n.link_target(), before, "not revived");
    assert_sound_client(&n, &n.current_file(), "cp1");
    assert!(n.systemctl_calls().is_empty(), "{:?}", n.systemctl_calls());
    assert!(r.stderr.contains("restart the kubelet"), "{}", r.stderr);
}

/// Days from now to the NotAfter of the certificate in `file` (certificate then key).
fn days_left(file: &Path) -> i64 {
    let blocks = kubeadm_certd::pki::inspect::pem_blocks(&std::fs::read(file).unwrap()).unwrap();
    let c = kubeadm_certd::pki::inspect::CertInfo::from_der(&blocks[0].der).unwrap();
    let left = (c.not_after - time::OffsetDateTime::now_utc()).whole_seconds();
    (left + 43_200) / 86_400
}

/// The command line revives for the validity in effect, as the daemon does: the cluster's
/// `certificateValidityPeriod` (here 17520h, read from the stand-in API server) where the
/// config sets none, rather than the config file's default year.
#[test]
fn revive_follows_the_clusters_validity_like_the_daemon() {
    use kubeadm_certd::testkit::apiserver::{ApiServer, Options};
    let doc = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n\
               certificateValidityPeriod: 17520h0m0s\nkubernetesVersion: v1.33.2\n";
    for args in [&["kubelet-client", "revive"][..], &["run", "--once"][..]] {
        let n = RNode::new(Some(time::OffsetDateTime::now_utc() - day()), |_| {});
        let api = ApiServer::start(Options::for_node(&n.root).unwrap()).unwrap();
        api.point_kubeconfig(&n.p("etc/kubernetes/admin.conf"))
            .unwrap();
        api.put_configmap(
            "kube-system",
            "kubeadm-config",
            &[("ClusterConfiguration", doc)],
        );
        if args[0] == "kubelet-client" {
            let dry = n.run(&["kubelet-client", "revive", "--dry-run"]);
            dry.assert_ok("--dry-run");
            assert!(
                dry.stdout.contains("certificate validity: 730d, from the cluster's ClusterConfiguration (certificateValidityPeriod"),
                "{}",
                dry.stdout
            );
        }
        let before = n.link_target();
        n.run(args).assert_ok(&args.join(" "));
        assert_ne!(n.link_target(), before, "{args:?}: not revived");
        assert_eq!(days_left(&n.current_file()), 730, "{args:?}");
        assert_sound_client(&n, &n.current_file(), "cp1");
    }
}
