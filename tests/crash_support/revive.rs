//! Issue 13: `kubelet-client revive` SIGKILLed at each step of the revival, then `recover`.
//! Before the journal, recover removes the staged pair and the node is as it was; from the
//! journal on, recover finishes the revival (pair renamed into place, link repointed) and
//! restarts the kubelet it owed. Either way: no temp file, no journal left, the old dated file
//! kept byte for byte and backed up, and the link naming a sound pair or the untouched old one.

use super::crash_support::{spawn_at, Running, STAGED_SUFFIX};
use super::revive_support::*;
use std::path::Path;
use std::time::{Duration, Instant};

const SPIN: &str = "delay(60000)";
const JOURNAL: &str = "var/lib/kubeadm-certd/kubelet-revive.json";
const REVIVE: &[&str] = &["kubelet-client", "revive"];

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Untouched,
    Finished,
}

/// A control-plane node whose kubelet client certificate expired yesterday.
fn expired_node() -> RNode {
    RNode::new(
        Some(time::OffsetDateTime::now_utc() - time::Duration::days(1)),
        |_| {},
    )
}

fn staged_anywhere(dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(STAGED_SUFFIX) {
            out.push(p.display().to_string());
        } else if e.file_type().is_ok_and(|t| t.is_dir()) {
            staged_anywhere(&p, out);
        }
    }
}

fn backed_up_old(n: &RNode, old_rel: &Path, old: &[u8]) -> bool {
    std::fs::read_dir(n.p("var/lib/kubeadm-certd/backups"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|b| std::fs::read(b.path().join(old_rel)).ok().as_deref() == Some(old))
}

/// Start the revival with `point` armed, SIGKILL it once it sits there (`evidence` holds), run
/// `recover`, check the node and classify it.
fn crash_then_recover(point: &str, evidence: impl Fn(&RNode) -> bool) -> Outcome {
    let n = expired_node();
    let (target, old_file) = (n.link_target(), n.current_file());
    let old = std::fs::read(&old_file).expect("old pem");
    let old_rel = old_file
        .strip_prefix(&n.root)
        .expect("under root")
        .to_path_buf();
    let dated = n.dated();
    let mut run = spawn_at(&n.root, REVIVE, Some(point), &n.env());
    run.wait_at_point(point, || evidence(&n));
    run.sigkill();
    let before_recover = n.systemctl_calls().len();
    recover_and_classify(&n, &target, &old_rel, &old, &dated, before_recover)
}

fn recover_and_classify(
    n: &RNode,
    target: &Path,
    old_rel: &Path,
    old: &[u8],
    dated: &[String],
    calls_before: usize,
) -> Outcome {
    let r = n.run(&["recover"]);
    r.assert_ok("recover");
    let mut staged = Vec::new();
    staged_anywhere(&n.root, &mut staged);
    assert!(
        staged.is_empty(),
        "temp files left: {staged:?}\n{}",
        r.stderr
    );
    assert!(!n.p(JOURNAL).exists(), "the revival journal is left");
    // The old file is kept byte for byte, and backed up if the revival got that far.
    assert_eq!(std::fs::read(n.root.join(old_rel)).expect("old pem"), old);
    let calls: Vec<String> = n.systemctl_calls().split_off(calls_before);
    if n.link_target() == target {
        assert_eq!(
            n.dated(),
            dated,
            "a new pem without the link pointing at it"
        );
        assert!(calls.is_empty(), "recover restarted the kubelet: {calls:?}");
        return Outcome::Untouched;
    }
    assert!(
        backed_up_old(n, old_rel, old),
        "no backup holds the old pem"
    );
    let new = n.current_file();
    let ca = n.p(CA);
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().expect("utf-8"),
        new.to_str().expect("utf-8"),
    ]);
    assert!(ok && out.trim_end().ends_with(": OK"), "{out}");
    let (ok, key) = openssl(&["pkey", "-in", new.to_str().expect("utf-8"), "-pubout"]);
    let (ok2, crt) = openssl(&[
        "x509",
        "-in",
        new.to_str().expect("utf-8"),
        "-noout",
        "-pubkey",
    ]);
    assert!(ok && ok2 && key == crt, "the pair does not match");
    assert_eq!(n.dated().len(), dated.len() + 1);
    assert_eq!(
        calls.first().map(String::as_str),
        Some("restart kubelet"),
        "recover did not restart the kubelet it owed: {calls:?}\n{}",
        r.stderr
    );
    assert!(
        r.stdout.contains("finished interrupted revival"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    Outcome::Finished
}

fn journal(n: &RNode) -> bool {
    n.p(JOURNAL).exists()
}

#[test]
fn revive_after_backup() {
    let o = crash_then_recover(&format!("revive::after-backup={SPIN}"), |n| {
        n.p("var/lib/kubeadm-certd/backups").is_dir() && !journal(n)
    });
    assert_eq!(o, Outcome::Untouched);
}

/// Two backup copies (kubelet.conf, the old pem), then the staged new pem stops half-way.
#[test]
fn revive_mid_staged_write() {
    let o = crash_then_recover("atomic::mid-write=2*off->delay(60000)", |n| {
        let mut s = Vec::new();
        staged_anywhere(&n.p(KPKI), &mut s);
        !s.is_empty()
    });
    assert_eq!(o, Outcome::Untouched);
}

#[test]
fn revive_after_stage() {
    let o = crash_then_recover(&format!("revive::after-stage={SPIN}"), journal);
    assert_eq!(o, Outcome::Finished);
}

#[test]
fn revive_after_new_file() {
    let o = crash_then_recover(&format!("revive::after-new-file={SPIN}"), |n| {
        journal(n) && n.dated().len() == 2
    });
    assert_eq!(o, Outcome::Finished);
}

#[test]
fn revive_after_link() {
    let o = crash_then_recover(&format!("revive::after-link={SPIN}"), |n| {
        journal(n) && n.dated().len() == 2
    });
    assert_eq!(o, Outcome::Finished);
}

#[test]
fn revive_after_conf() {
    let o = crash_then_recover(&format!("revive::after-conf={SPIN}"), |n| {
        journal(n) && n.dated().len() == 2
    });
    assert_eq!(o, Outcome::Finished);
}

/// Killed while waiting for the restarted kubelet (it never becomes active): recover restarts
/// it again.
#[test]
fn revive_during_the_kubelet_wait() {
    let n = expired_node();
    let (target, old_file) = (n.link_target(), n.current_file());
    let old = std::fs::read(&old_file).expect("old pem");
    let old_rel = old_file
        .strip_prefix(&n.root)
        .expect("under root")
        .to_path_buf();
    let dated = n.dated();
    let mut env = n.env();
    env.push(("FAKE_SYSTEMCTL_STATE".into(), "activating".into()));
    let run: Running = spawn_at(&n.root, REVIVE, None, &env);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !n.systemctl_calls().iter().any(|c| c == "is-active kubelet") {
        assert!(
            Instant::now() < deadline,
            "no kubelet wait:\n{}",
            run.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        journal(&n),
        "the journal is gone before the kubelet is healthy"
    );
    run.sigkill();
    let calls = n.systemctl_calls().len();
    let o = recover_and_classify(&n, &target, &old_rel, &old, &dated, calls);
    assert_eq!(o, Outcome::Finished);
}

/// Killed with the new pem in place but the link not yet repointed; the daemon started again
/// (`run --once`) finishes the revival before its cycle, and the cycle finds nothing to do.
#[test]
fn daemon_after_a_crash_mid_revival() {
    let n = expired_node();
    let target = n.link_target();
    let point = format!("revive::after-new-file={SPIN}");
    let mut run = spawn_at(&n.root, REVIVE, Some(&point), &n.env());
    run.wait_at_point(&point, || journal(&n) && n.dated().len() == 2);
    run.sigkill();
    let calls = n.systemctl_calls().len();
    let r = n.run(&["run", "--once"]);
    r.assert_ok("run --once");
    assert!(
        r.stderr.contains("finished interrupted revival"),
        "{}",
        r.stderr
    );
    assert!(!journal(&n), "the revival journal is left");
    assert_ne!(n.link_target(), target);
    assert_eq!(n.dated().len(), 2, "revived twice: {:?}", n.dated());
    assert_sound_client(&n, &n.current_file(), "cp1");
    let restarts = n
        .systemctl_calls()
        .split_off(calls)
        .into_iter()
        .filter(|c| c == "restart kubelet")
        .count();
    assert_eq!(restarts, 1, "{:?}", n.systemctl_calls());
}
