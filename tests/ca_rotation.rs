//! Issue 20 on a single control-plane node: `ca rotate etcd-ca` records the rotation in the
//! state dir, and one daemon cycle (`run --once`) carries out all three phases on a real etcd
//! and the stand-in kube-apiserver under the stand-in kubelet: 3 etcd and 3 kube-apiserver
//! restarts, every etcd leaf signed by the new CA only, the old CA kept in a backup set
//! pruning never deletes, and a client certificate of the old CA refused by etcd.

#[path = "support/kubelet.rs"]
mod kubelet;
mod restart_support;
mod rotation_support;
mod support;

use restart_support::*;
use rotation_support::*;

const CONFIG: &str =
    "checkInterval: 2s\njitter: 0s\nrenewBefore: 1d\nrestart:\n  timeout: 60s\n  minHold: 1s\n";

fn etcd_node() -> Option<Node> {
    if !support::etcd::require_etcd() {
        eprintln!("etcd/etcdctl not installed; skipping");
        return None;
    }
    let node = Node::build(NodeOpts {
        etcd: true,
        ..NodeOpts::default()
    });
    std::fs::write(&node.config, CONFIG).unwrap();
    Some(node)
}

fn health(
    node: &Node,
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> bool {
    support::etcd::etcdctl_health(
        &format!("https://127.0.0.1:{}", node.ports.etcd_client),
        ca,
        cert,
        key,
    )
    .expect("run etcdctl")
}

#[test]
fn a_single_control_plane_node_rotates_its_etcd_ca_in_one_cycle() {
    let Some(node) = etcd_node() else { return };
    let h = node.kubelet();
    node.wait_healthy(&h);
    let pki = node.host("/etc/kubernetes/pki");
    let work = tempfile::tempdir().unwrap();
    let old_ca = work.path().join("old-ca.crt");
    let old_key = work.path().join("old-ca.key");
    std::fs::copy(pki.join("etcd/ca.crt"), &old_ca).unwrap();
    std::fs::copy(pki.join("etcd/ca.key"), &old_key).unwrap();
    let (intruder, intruder_key) = client_cert(work.path(), &old_ca, &old_key);
    // Before: a client certificate of the (current) old CA is accepted: the check can fail.
    assert!(health(&node, &old_ca, &intruder, &intruder_key));

    let tree_before = std::fs::read(pki.join("etcd/ca.crt")).unwrap();
    let dry = node.run(&["ca", "rotate", "etcd-ca", "--dry-run"]);
    assert!(dry.status.success());
    let said = String::from_utf8_lossy(&dry.stdout);
    assert!(
        said.contains("Plan (dry run; nothing is changed)") && said.contains("trust-both"),
        "{said}"
    );
    assert!(said.contains("a single control-plane node"), "{said}");
    assert_eq!(std::fs::read(pki.join("etcd/ca.crt")).unwrap(), tree_before);
    assert!(!node
        .host("/var/lib/kubeadm-certd/ca-rotation.json")
        .exists());

    let out = node.run(&["ca", "rotate", "etcd-ca"]);
    assert!(out.status.success());
    // A second rotation is refused while this one stands.
    let again = node.run(&["ca", "rotate", "etcd-ca"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is in trust-both"));

    let mark = h.events().len();
    let out = node.run(&["run", "--once"]);
    assert!(out.status.success(), "{}", h.all_logs());
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(log.contains("trust-both done on cp1"), "{log}");
    assert!(
        log.contains("rotation") && log.contains("complete: every node trusts only the new CA"),
        "{log}"
    );

    // 3 etcd and 3 kube-apiserver restarts, nothing else.
    let started = started_after(&h, mark);
    assert_eq!(
        started,
        [
            "etcd",
            "kube-apiserver",
            "etcd",
            "kube-apiserver",
            "etcd",
            "kube-apiserver"
        ],
        "{:?}",
        events_after(&h, mark)
    );
    node.wait_healthy(&h);

    // ca.crt holds the new CA only; every leaf verifies with it and not with the old one.
    let bundle = certs_der(&pki.join("etcd/ca.crt"));
    assert_eq!(bundle.len(), 1);
    assert_ne!(bundle[0], certs_der(&old_ca)[0]);
    let bad = leaves_signed_by(&pki, &pki.join("etcd/ca.crt"), &old_ca);
    assert!(bad.is_empty(), "{bad:#?}");
    // etcd serves the new server certificate and accepts the new healthcheck client ...
    assert_eq!(
        node.served_cert(node.ports.etcd_client),
        node.cert_der("/etc/kubernetes/pki/etcd/server.crt")
    );
    assert!(health(
        &node,
        &pki.join("etcd/ca.crt"),
        &pki.join("etcd/healthcheck-client.crt"),
        &pki.join("etcd/healthcheck-client.key")
    ));
    // ... and refuses a client certificate of the old CA.
    assert!(!health(
        &node,
        &pki.join("etcd/ca.crt"),
        &intruder,
        &intruder_key
    ));

    // The old CA is kept in a backup set that pruning keeps.
    let backups = node.run(&["backups", "--prune"]);
    assert!(backups.status.success());
    let b = node.run(&["backups"]);
    let text = String::from_utf8_lossy(&b.stdout);
    assert!(
        text.contains("the etcd-ca CA from before CA rotation"),
        "{text}"
    );

    let st = node.run(&["ca", "status", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["rotation"]["phase"], "done");
    assert_eq!(v["rotation"]["newKeySealed"], false);
    assert_eq!(v["progress"], 1.0);
    // Nothing more to do: another cycle restarts nothing.
    let mark = h.events().len();
    assert!(node.run(&["run", "--once"]).status.success());
    assert!(started_after(&h, mark).is_empty());
}

#[test]
fn a_failed_restart_rolls_the_step_back_and_halts_until_cluster_resume() {
    let Some(node) = etcd_node() else { return };
    std::fs::write(&node.config, CONFIG.replace("timeout: 60s", "timeout: 8s")).unwrap();
    let h = node.kubelet();
    node.wait_healthy(&h);
    let pki = node.host("/etc/kubernetes/pki");
    let old_bundle = std::fs::read(pki.join("etcd/ca.crt")).unwrap();
    assert!(node.run(&["ca", "rotate", "etcd-ca"]).status.success());
    // kube-apiserver will not come back.
    node.hook("kube-apiserver.die", "x");
    let mark = h.events().len();
    let out = node.run(&["run", "--once"]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        log.contains(
            "the step's files were restored from the step's backup; etcd restarted on them; the rotation is halted"
        ),
        "{log}"
    );
    // Rolled back: the bundle is the old CA alone again, and the step is not recorded.
    assert_eq!(std::fs::read(pki.join("etcd/ca.crt")).unwrap(), old_bundle);
    // etcd, which came back on the step's bundle before kube-apiserver failed, was restarted
    // on the bundle put back.
    let etcd_starts = started_after(&h, mark)
        .iter()
        .filter(|c| *c == "etcd")
        .count();
    assert_eq!(etcd_starts, 2, "{:?}", events_after(&h, mark));
    assert!(!node
        .host("/var/lib/kubeadm-certd/ca-rotation-step.json")
        .exists());
    let st = node.run(&["ca", "status", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["rotation"]["phase"], "trust-both");
    assert_eq!(v["rotation"]["done"], serde_json::json!({}));
    assert!(
        v["halt"]
            .as_str()
            .is_some_and(|h| h.contains("kube-apiserver")),
        "{v}"
    );
    // While halted, a cycle restarts nothing and says why.
    let mark = h.events().len();
    let out = node.run(&["run", "--once"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is halted since"));
    assert!(started_after(&h, mark).is_empty());
    // The operator fixes the cause and resumes.
    std::fs::remove_file(node.host(&format!("{STANDIN_DIR}/kube-apiserver.die"))).unwrap();
    node.wait_healthy(&h);
    let out = node.run(&["cluster", "resume"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("The CA rotation is halted") && said.contains("Halt cleared"),
        "{said}"
    );
    assert!(node.run(&["run", "--once"]).status.success());
    let st = node.run(&["ca", "status", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["rotation"]["phase"], "done", "{v}");
    let new_ca = pki.join("etcd/ca.crt");
    assert_eq!(certs_der(&new_ca).len(), 1);
    let work = tempfile::tempdir().unwrap();
    let old = work.path().join("old.crt");
    std::fs::write(&old, &old_bundle).unwrap();
    let bad = leaves_signed_by(&pki, &new_ca, &old);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Re-issue the etcd leaf `base` (under `pki`) for 12 hours with the same key, signed as a
/// renewal would sign it now (the first certificate of `etcd/ca.crt`, `etcd/ca.key`): due
/// with renewBefore 1d. Returns its DER.
fn make_due(pki: &std::path::Path, base: &str) -> Vec<u8> {
    use kubeadm_certd::pki::{inspect::parse_cert_file, issue, keys::parse_key_file};
    let read = |f: &str| std::fs::read(pki.join(f)).unwrap();
    let ca = parse_cert_file(&read("etcd/ca.crt")).unwrap().remove(0);
    let ca_key = parse_key_file(&read("etcd/ca.key")).unwrap();
    let leaf = parse_cert_file(&read(&format!("{base}.crt")))
        .unwrap()
        .remove(0);
    let key = parse_key_file(&read(&format!("{base}.key"))).unwrap();
    let signer = issue::Ca {
        cert: &ca,
        key: &ca_key.pair,
    };
    let now = time::OffsetDateTime::now_utc();
    let short = issue::issue(
        &leaf,
        &key.pair,
        &signer,
        now,
        std::time::Duration::from_secs(12 * 3600),
    )
    .unwrap()
    .info;
    std::fs::write(pki.join(format!("{base}.crt")), short.to_pem()).unwrap();
    short.der
}

/// `ca status -o json`.
fn status(node: &Node) -> serde_json::Value {
    let st = node.run(&["ca", "status", "-o", "json"]);
    assert!(st.status.success());
    serde_json::from_slice(&st.stdout).unwrap()
}

/// Issue 20: "during a rotation, renewals of the etcd leaves use the CA of the current phase
/// and never undo a phase". The rotation is held in reissue (kube-apiserver refuses its
/// re-issued etcd client certificate: the step is rolled back, the node is as after
/// trust-both), then in trust-new (kube-apiserver refuses the bundle of the new CA alone: the
/// node is as after reissue). Each time etcd/server falls due, and the daemon's cycle renews
/// it with the CA whose key is in ca.key (the old one, then the new one) and leaves ca.crt
/// and ca.key as the phase has them. After each `cluster resume` the rotation goes on and
/// ends with every leaf on the new CA.
#[test]
fn renewals_during_a_halted_rotation_sign_with_the_phase_ca_and_leave_the_bundle() {
    let Some(node) = etcd_node() else { return };
    std::fs::write(&node.config, CONFIG.replace("timeout: 60s", "timeout: 5s")).unwrap();
    let h = node.kubelet();
    node.wait_healthy(&h);
    let pki = node.host("/etc/kubernetes/pki");
    let work = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (work.path().join("old.crt"), work.path().join("new.crt"));
    write_pem(&old_ca, &certs_der(&pki.join("etcd/ca.crt"))[0]);
    let old_key = std::fs::read(pki.join("etcd/ca.key")).unwrap();
    assert!(node.run(&["ca", "rotate", "etcd-ca"]).status.success());
    let v = status(&node);
    let new_der = pem::parse(v["rotation"]["newCa"].as_str().unwrap())
        .unwrap()
        .into_contents();
    write_pem(&new_ca, &new_der);
    let accept = |path: &str, text: &str| {
        node.hook(
            "kube-apiserver.accept",
            &serde_json::json!({ path: text }).to_string(),
        )
    };
    let server = pki.join("etcd/server.crt");
    let renewed_by = |ca: &std::path::Path, not: &std::path::Path, short: &[u8]| {
        let now = certs_der(&server)[0].clone();
        assert_ne!(now, short, "etcd/server.crt was not renewed");
        assert!(
            verifies(ca, &server),
            "the renewal did not sign with {ca:?}"
        );
        assert!(!verifies(not, &server), "the renewal signed with {not:?}");
    };

    // (a) Held in reissue.
    let client = "/etc/kubernetes/pki/apiserver-etcd-client.crt";
    accept(client, &node.read(client));
    let out = node.run(&["run", "--once"]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        log.contains("trust-both done on cp1")
            && log.contains("reissue step of the etcd-ca rotation")
            && log.contains("restored from the step's backup"),
        "{log}"
    );
    let v = status(&node);
    assert_eq!(v["rotation"]["phase"], "reissue", "{v}");
    assert!(v["halt"].is_string(), "{v}");
    let bundle = std::fs::read(pki.join("etcd/ca.crt")).unwrap();
    assert_eq!(
        certs_der(&pki.join("etcd/ca.crt")),
        [certs_der(&old_ca)[0].clone(), new_der.clone()]
    );
    assert_eq!(std::fs::read(pki.join("etcd/ca.key")).unwrap(), old_key);
    let short = make_due(&pki, "etcd/server");
    let out = node.run(&["run", "--once"]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(log.contains("etcd-server renewed"), "{log}");
    assert!(log.contains("is halted since"), "{log}");
    renewed_by(&old_ca, &new_ca, &short);
    assert_eq!(std::fs::read(pki.join("etcd/ca.crt")).unwrap(), bundle);
    assert_eq!(std::fs::read(pki.join("etcd/ca.key")).unwrap(), old_key);

    // (b) Resumed, then held in trust-new: kube-apiserver takes the reissue bundle (new, old),
    // not the new CA alone.
    let text = String::from_utf8(bundle).unwrap();
    let blocks: Vec<&str> = text
        .split_inclusive("-----END CERTIFICATE-----\n")
        .collect();
    assert_eq!(blocks.len(), 2);
    accept(
        "/etc/kubernetes/pki/etcd/ca.crt",
        &format!("{}{}", blocks[1], blocks[0]),
    );
    assert!(node.run(&["cluster", "resume"]).status.success());
    let out = node.run(&["run", "--once"]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        log.contains("reissue done on cp1")
            && log.contains("trust-new step of the etcd-ca rotation"),
        "{log}"
    );
    assert_eq!(status(&node)["rotation"]["phase"], "trust-new");
    let bundle = std::fs::read(pki.join("etcd/ca.crt")).unwrap();
    assert_eq!(
        certs_der(&pki.join("etcd/ca.crt")),
        [new_der.clone(), certs_der(&old_ca)[0].clone()]
    );
    let key = std::fs::read(pki.join("etcd/ca.key")).unwrap();
    assert_ne!(key, old_key);
    let short = make_due(&pki, "etcd/server");
    let out = node.run(&["run", "--once"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("etcd-server renewed"));
    renewed_by(&new_ca, &old_ca, &short);
    assert_eq!(std::fs::read(pki.join("etcd/ca.crt")).unwrap(), bundle);
    assert_eq!(std::fs::read(pki.join("etcd/ca.key")).unwrap(), key);

    // Fixed and resumed: the rotation ends on the new CA.
    std::fs::remove_file(node.host(&format!("{STANDIN_DIR}/kube-apiserver.accept"))).unwrap();
    assert!(node.run(&["cluster", "resume"]).status.success());
    assert!(node.run(&["run", "--once"]).status.success());
    assert_eq!(status(&node)["rotation"]["phase"], "done");
    assert_eq!(certs_der(&pki.join("etcd/ca.crt")), [new_der]);
    let bad = leaves_signed_by(&pki, &new_ca, &old_ca);
    assert!(bad.is_empty(), "{bad:#?}");
    node.wait_healthy(&h);
    assert!(health(
        &node,
        &pki.join("etcd/ca.crt"),
        &pki.join("etcd/healthcheck-client.crt"),
        &pki.join("etcd/healthcheck-client.key")
    ));
}

/// An operator's CA (openssl, EC P-256) valid for `days`, in `dir`.
fn operator_ca(dir: &std::path::Path, days: u32) {
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(dir.join("ca.crt"))
        .args(["-subj", "/CN=etcd-ca", "-days", &days.to_string()])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args([
            "-addext",
            "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ca_dir_is_checked_before_anything_starts_and_abort_goes_back_from_trust_both() {
    let Some(node) = etcd_node() else { return };
    let record = node.host("/var/lib/kubeadm-certd/ca-rotation.json");
    let work = tempfile::tempdir().unwrap();
    // Too short-lived, and a key of another CA: one line each, nothing written.
    let (short, other) = (work.path().join("short"), work.path().join("other"));
    for d in [&short, &other] {
        std::fs::create_dir_all(d).unwrap();
    }
    operator_ca(&short, 100);
    operator_ca(&other, 3650);
    std::fs::copy(other.join("ca.key"), short.join("ca.key")).unwrap();
    let out = node.run(&[
        "ca",
        "rotate",
        "etcd-ca",
        "--ca-dir",
        short.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains("short/ca.crt: expires at") && lines[0].contains("caWarnBefore"),
        "{err}"
    );
    assert!(lines[1].contains("short/ca.key: does not match"), "{err}");
    assert!(!record.exists());
    // A good one is taken as it is.
    let out = node.run(&[
        "ca",
        "rotate",
        "etcd-ca",
        "--ca-dir",
        other.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("brought with --ca-dir"));
    let st = node.run(&["ca", "status", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let new_pem = v["rotation"]["newCa"].as_str().unwrap().to_string();
    let recorded = pem::parse(new_pem).unwrap().contents().to_vec();
    assert_eq!(recorded, certs_der(&other.join("ca.crt"))[0]);
    // The sealed key does not show the operator's key.
    let text = std::fs::read_to_string(&record).unwrap();
    let key_b64 = std::fs::read_to_string(other.join("ca.key")).unwrap();
    let body: String = key_b64
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!text.contains(&body[..40]));
    // Abort in trust-both: straight to untrust-new.
    let dry = node.run(&["ca", "rotate", "etcd-ca", "--abort", "--dry-run"]);
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would leave trust-both for untrust-new"));
    let out = node.run(&["ca", "rotate", "etcd-ca", "--abort"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("untrust-new begins"));
}
