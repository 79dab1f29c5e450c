//! Crash at every point of a CA rotation's step (issue 20) on a single control-plane node:
//! `ca rotate etcd-ca` records the rotation, the daemon's cycle (`run --once`) runs with a
//! failpoint and is SIGKILLed at it, then the daemon (after `recover`, in some cases) runs
//! again and must finish the step and the rotation: `etcd/ca.crt` the new CA alone, `ca.key`
//! its key, every etcd leaf's key matching its certificate, which verifies with the new CA
//! and not with the old one; every other file as before; manifests back, nothing staged,
//! parked, journalled or owed. Most points are taken in the reissue step, the one that writes
//! the bundle, the CA key and the leaves.
//!
//! Also: a restart that fails after such a crash rolls back to the files from before the step,
//! though the run that restarts wrote nothing itself (the step's backup is the step's).
//!
//! Run with `cargo test --features failpoints --test crash_rotation` (the crash suite's
//! harness: stand-in kubelet, harmless long-lived processes as the static pods).
#![cfg(feature = "failpoints")]

mod crash_support;

use crash_support::*;
use std::path::{Path, PathBuf};

const CONFIG: &str = "renewBefore: 1d\nrestart:\n  timeout: 60s\n";
const RECORD: &str = "var/lib/kubeadm-certd/ca-rotation.json";
const STEP: &str = "var/lib/kubeadm-certd/ca-rotation-step.json";
const OWED: &str = "var/lib/kubeadm-certd/restarts-owed.json";
const CA_CRT: &str = "etc/kubernetes/pki/etcd/ca.crt";
const CA_KEY: &str = "etc/kubernetes/pki/etcd/ca.key";

/// A node with a rotation recorded, its kubelet running, and the two CAs.
struct Rotating {
    n: Node,
    dir: tempfile::TempDir,
    old_key: Vec<u8>,
    old: Vec<u8>,
    new: Vec<u8>,
}

impl Rotating {
    fn start(config: &str) -> Rotating {
        let mut n = Node::new();
        std::fs::write(n.p("etc/kubeadm-certd/config.yaml"), config).expect("config");
        n.start_kubelet();
        let old = certs(&n.p(CA_CRT)).remove(0);
        let old_key = std::fs::read(n.p(CA_KEY)).expect("ca.key");
        n.run(&["ca", "rotate", "etcd-ca"]).assert_ok("ca rotate");
        let rec = record(&n);
        let new = pem::parse(rec["newCa"].as_str().expect("newCa"))
            .expect("pem")
            .into_contents();
        let dir = tempfile::tempdir().expect("tmp");
        write_pem(&dir.path().join("old.crt"), &old);
        write_pem(&dir.path().join("new.crt"), &new);
        Rotating {
            n,
            dir,
            old_key,
            old,
            new,
        }
    }

    fn ca(&self, which: &str) -> PathBuf {
        self.dir.path().join(format!("{which}.crt"))
    }

    /// The record's phase.
    fn phase(&self) -> String {
        record(&self.n)["phase"]
            .as_str()
            .expect("phase")
            .to_string()
    }

    /// The phase of the step whose backup record stands.
    fn step(&self) -> Option<String> {
        let b = std::fs::read(self.n.p(STEP)).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&b).expect("step JSON");
        v["phase"].as_str().map(str::to_string)
    }

    fn key_is_new(&self) -> bool {
        std::fs::read(self.n.p(CA_KEY)).ok().as_ref() != Some(&self.old_key)
    }
}

fn record(n: &Node) -> serde_json::Value {
    let b = std::fs::read(n.p(RECORD)).expect("rotation record");
    let v: serde_json::Value = serde_json::from_slice(&b).expect("record JSON");
    v["record"].clone()
}

fn certs(p: &Path) -> Vec<Vec<u8>> {
    pem::parse_many(std::fs::read(p).expect("pem"))
        .expect("pem")
        .into_iter()
        .map(|b| b.into_contents())
        .collect()
}

fn write_pem(p: &Path, der: &[u8]) {
    std::fs::write(p, pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))).expect("write");
}

fn verifies(ca: &Path, leaf: &Path) -> bool {
    std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca)
        .arg(leaf)
        .output()
        .expect("openssl")
        .status
        .success()
}

/// The etcd leaves (pki-relative bases).
fn etcd_leaves() -> Vec<&'static str> {
    LEAVES
        .iter()
        .filter(|(_, ca)| *ca == "etcd/ca")
        .map(|(b, _)| *b)
        .collect()
}

/// The node's files a rotation step may write.
fn step_files() -> Vec<String> {
    let mut v = vec![CA_CRT.to_string(), CA_KEY.to_string()];
    for b in etcd_leaves() {
        v.push(format!("{PKI}/{b}.crt"));
        v.push(format!("{PKI}/{b}.key"));
    }
    v
}

/// Whatever the phase: `ca.key` is the key of the first certificate of `ca.crt`, and every
/// etcd leaf's key matches its certificate, which verifies against the bundle.
fn assert_consistent(n: &Node) {
    let ca = n.p(CA_CRT);
    let first = n.dir.path().join("first-ca.crt");
    write_pem(&first, &certs(&ca)[0]);
    assert_pair(&first, &n.p(CA_KEY), &first);
    for b in etcd_leaves() {
        let (crt, key) = (
            n.p(&format!("{PKI}/{b}.crt")),
            n.p(&format!("{PKI}/{b}.key")),
        );
        assert_pair(&crt, &key, &ca);
    }
    std::fs::remove_file(first).expect("remove");
}

/// The rotation is done and every file is as it must be after it.
fn assert_rotated(r: &Rotating, log: &str) {
    let n = &r.n;
    assert_eq!(r.phase(), "done", "{log}");
    assert_eq!(
        certs(&n.p(CA_CRT)),
        std::slice::from_ref(&r.new),
        "ca.crt\n{log}"
    );
    let ca = n.p(CA_CRT);
    assert_pair(&ca, &n.p(CA_KEY), &ca);
    for b in etcd_leaves() {
        let (crt, key) = (
            n.p(&format!("{PKI}/{b}.crt")),
            n.p(&format!("{PKI}/{b}.key")),
        );
        assert_pair(&crt, &key, &ca);
        assert!(
            !verifies(&r.ca("old"), &crt),
            "{b} still verifies with the old CA"
        );
    }
    let post = n.snapshot();
    let written = step_files();
    for (rel, before) in n.pre.iter().filter(|(k, _)| !written.contains(k)) {
        assert!(post.get(rel) == Some(before), "{rel} changed");
    }
    assert_eq!(
        post.keys().filter(|k| k.starts_with(MANIFESTS)).count(),
        n.pre.keys().filter(|k| k.starts_with(MANIFESTS)).count(),
        "manifestsDir holds other files"
    );
    assert!(!post.keys().any(|k| k.starts_with(PARKING)), "parked");
    let left = n.staged_files();
    assert!(left.is_empty(), "temp files left: {left:?}");
    for f in [JOURNAL, STEP, OWED] {
        assert!(!n.p(f).exists(), "{f} left\n{log}");
    }
    // The old CA is kept.
    let kept = n.backups().into_iter().any(|d| {
        d.join("kubeadm-certd-ca-rotation.json").is_file()
            && std::fs::read(d.join(CA_KEY)).ok().as_ref() == Some(&r.old_key)
    });
    assert!(kept, "no kept backup of the old CA");
    assert_all_running(n);
}

/// `run --once` stopped at `point` in the reissue step (SIGKILL once `evidence` holds), then
/// `recover` when `recover_first`, then `run --once`, which must finish the rotation.
fn crash(point: &str, recover_first: bool, evidence: impl Fn(&Rotating) -> bool) -> Rotating {
    let r = Rotating::start(CONFIG);
    let mut run = r.n.spawn(&["run", "--once"], Some(point));
    run.wait_at_point(point, || evidence(&r));
    run.sigkill();
    let mut log = String::new();
    if recover_first {
        let d = r.n.run(&["recover"]);
        d.assert_ok("recover");
        log = d.stdout + &d.stderr;
        assert_consistent(&r.n);
    }
    let d = r.n.run(&["run", "--once"]);
    d.assert_ok("run --once");
    log.push_str(&d.stderr);
    assert_rotated(&r, &log);
    r
}

fn journal_exists(r: &Rotating) -> bool {
    r.n.p(JOURNAL).exists()
}

fn in_reissue(r: &Rotating) -> bool {
    r.step().as_deref() == Some("reissue")
}

#[test]
fn after_the_step_backup() {
    crash("rotate::after-backup=1*off->delay(60000)", true, |r| {
        in_reissue(r) && !journal_exists(r) && !r.key_is_new()
    });
}

#[test]
fn after_staging() {
    crash("rotate::after-stage=1*off->delay(60000)", false, |r| {
        in_reissue(r) && journal_exists(r) && !r.key_is_new()
    });
}

#[test]
fn after_the_bundle() {
    crash("rotate::after-bundle=1*off->delay(60000)", true, |r| {
        in_reissue(r) && journal_exists(r) && certs(&r.n.p(CA_CRT))[0] == r.new
    });
}

#[test]
fn after_the_ca_key() {
    crash("rotate::after-ca-key=delay(60000)", false, |r| {
        in_reissue(r) && journal_exists(r) && r.key_is_new()
    });
}

#[test]
fn between_a_leaf_key_and_its_certificate() {
    crash(
        "rotate::between-leaf-key-and-cert=delay(60000)",
        true,
        |r| in_reissue(r) && committed_first(&r.n, "apiserver-etcd-client.key"),
    );
}

#[test]
fn after_the_commit() {
    crash("rotate::after-commit=1*off->delay(60000)", false, |r| {
        in_reissue(r) && !journal_exists(r) && r.key_is_new()
    });
}

#[test]
fn parked_in_the_step() {
    // trust-both parks etcd, then kube-apiserver; the third park is reissue's etcd.
    crash("restart::after-park=2*off->delay(60000)", false, |r| {
        in_reissue(r) && r.key_is_new() && r.n.p(&format!("{PARKING}/etcd.yaml")).exists()
    });
}

#[test]
fn after_the_restarts() {
    crash("rotate::after-restarts=1*off->delay(60000)", false, |r| {
        in_reissue(r) && r.key_is_new() && !r.n.p(OWED).exists()
    });
}

#[test]
fn after_the_record() {
    crash("rotate::after-record=1*off->delay(60000)", false, |r| {
        r.phase() == "trust-new" && r.step().is_none()
    });
}

#[test]
fn after_the_bundle_of_trust_new() {
    crash("rotate::after-bundle=2*off->delay(60000)", true, |r| {
        r.step().as_deref() == Some("trust-new")
            && journal_exists(r)
            && certs(&r.n.p(CA_CRT)) == [r.new.clone()]
    });
}

/// The author's gap: a node killed after writing its step's files, whose next run writes
/// nothing and restarts; that restart fails (a kubelet that no longer acts on the manifests).
/// The rollback must bring back the files from before the step, from the crashed run's backup.
#[test]
fn a_restart_failing_after_a_crash_rolls_back_to_the_files_from_before_the_step() {
    let r = Rotating::start("renewBefore: 1d\nrestart:\n  timeout: 4s\n");
    let point = "rotate::after-commit=1*off->delay(60000)";
    let mut run = r.n.spawn(&["run", "--once"], Some(point));
    run.wait_at_point(point, || {
        in_reissue(&r) && !journal_exists(&r) && r.key_is_new()
    });
    run.sigkill();
    r.n.kubelet().freeze();
    let d = r.n.run(&["run", "--once"]);
    let log = d.stderr.clone();
    assert!(
        log.contains("left the restarts of etcd, kube-apiserver to the etcd-ca rotation"),
        "{log}"
    );
    assert!(
        log.contains("reissue step of the etcd-ca rotation")
            && log.contains("the step's files were restored from the step's backup"),
        "{log}"
    );
    // As after trust-both: the bundle old then new, the old key byte for byte, the leaves
    // untouched since the start.
    assert_eq!(certs(&r.n.p(CA_CRT)), [r.old.clone(), r.new.clone()]);
    assert_eq!(std::fs::read(r.n.p(CA_KEY)).unwrap(), r.old_key);
    let post = r.n.snapshot();
    for b in etcd_leaves() {
        for ext in ["crt", "key"] {
            let rel = format!("{PKI}/{b}.{ext}");
            assert!(post.get(&rel) == r.n.pre.get(&rel), "{rel} not restored");
        }
    }
    let rec = record(&r.n);
    assert_eq!(rec["phase"], "reissue");
    assert!(rec["halt"]["reason"].is_string(), "{rec}");
    assert!(
        r.step().is_none(),
        "the step's record outlived its rollback"
    );
    // The kubelet acts again; the operator resumes; the rotation ends.
    r.n.kubelet().unfreeze();
    r.n.run(&["cluster", "resume"]).assert_ok("cluster resume");
    let d = r.n.run(&["run", "--once"]);
    d.assert_ok("run --once");
    assert_rotated(&r, &d.stderr);
}

/// A stop request (SIGTERM, as `systemctl stop` sends) while a step's restart is under way:
/// the restart code puts the manifest back and the daemon leaves. Nothing failed, so the
/// rotation must not halt (it did: the interrupted component was taken for a failed one, and a
/// single node's rotation then waited for `cluster resume`); the next run finishes it.
#[test]
fn sigterm_during_a_step_restart_does_not_halt_the_rotation() {
    use nix::sys::signal::Signal;
    let r = Rotating::start(CONFIG);
    // trust-both parks etcd, then kube-apiserver; the third park is reissue's etcd.
    let point = "restart::after-park=2*off->sleep(1500)";
    let mut run = r.n.spawn(&["run", "--once"], Some(point));
    let parked = r.n.p(&format!("{PARKING}/etcd.yaml"));
    let at = kubelet::KubeletHarness::wait_until(LIMIT, || {
        in_reissue(&r) && r.key_is_new() && parked.exists()
    });
    assert!(at, "{}", run.stderr());
    run.signal(Signal::SIGTERM);
    let d = run.finish();
    assert!(!parked.exists(), "the manifest stayed parked\n{}", d.stderr);
    let rec = record(&r.n);
    assert!(
        rec["halt"].is_null(),
        "halted by a stop request: {rec}\n{}",
        d.stderr
    );
    assert!(!d.stderr.contains("the rotation is halted"), "{}", d.stderr);
    let d = r.n.run(&["run", "--once"]);
    d.assert_ok("run --once");
    assert_rotated(&r, &d.stderr);
}
