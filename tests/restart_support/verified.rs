//! What "verified restart" claims, against kubelets that misbehave (issue 9, item 7): the old
//! process must be gone before the manifest goes back, and only a process started after the
//! manifest went back counts as the new one. Each test here failed with the matching mutation
//! of src/staticpods/restart.rs (see TESTING.md).

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubeadm_certd::act::staticpods::process::{is_alive, ProcInfo};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::kubelet::{EventKind, KubeletHarness};
use crate::restart_support::*;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Nothing in the output claims the component restarted.
fn assert_no_success(o: &Output, c: &str) {
    let (out, err) = (stdout(o), stderr(o));
    for text in [&out, &err] {
        assert!(
            !text.contains(&format!("{c} restarted")) && !text.contains("it came back"),
            "reported success:\n{out}\n{err}"
        );
    }
}

fn assert_manifest_back_and_parking_empty(node: &Node, c: &str) {
    assert!(node.manifest_path(c).exists(), "{c}: manifest not back");
    let left = std::fs::read_dir(node.parking()).map_or(0, |d| d.count());
    assert_eq!(left, 0, "parking directory not empty");
}

/// (a) The kubelet never notices the park: the old process keeps running. The restart fails
/// with "no new process" naming the old pid, rolls the certificate back, and says nothing of
/// success. Without the hold's wait for the old process the message loses the old pid; with
/// the old process also counted as new, the restart "succeeds".
#[test]
fn kubelet_that_never_reacts_to_the_park_fails_and_rolls_back() {
    let node = Node::build(NodeOpts {
        restart: vec!["timeout: 4s".into()],
        ..NodeOpts::default()
    });
    let h = node.kubelet();
    node.wait_healthy(&h);
    let conf = "/etc/kubernetes/scheduler.conf";
    let old_conf = node.read(conf);
    let old = node.process(&h, "kube-scheduler").expect("running");
    let mark = h.events().len();
    h.freeze();

    let out = node.run(&["renew", "scheduler.conf"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("kube-scheduler: did not come back healthy"),
        "names the component:\n{err}"
    );
    assert!(
        err.contains(&format!(
            "no new process: the old process (pid {}) still ran after the manifest was parked",
            old.pid
        )),
        "says why:\n{err}"
    );
    assert_no_success(&out, "kube-scheduler");
    // Rolled back: the previous kubeconfig (still valid) is in place again.
    assert_eq!(node.read(conf), old_conf);
    assert!(
        err.contains("restored /etc/kubernetes/scheduler.conf"),
        "{err}"
    );
    assert_manifest_back_and_parking_empty(&node, "kube-scheduler");
    // The kubelet did nothing at all: the same process runs on.
    assert!(
        events_after(&h, mark).is_empty(),
        "{:?}",
        events_after(&h, mark)
    );
    assert!(is_alive(Path::new("/proc"), &old));
}

/// (a) again, but the old process crashes during the hold and the kubelet, which still has
/// not noticed the park, starts it again from its cached spec. That process started before the
/// manifest went back: it is not proof of a restart, so the restart fails with "no new
/// process". Counting it as new (the pid/start-time filter short-circuited) reports success.
#[test]
fn pod_restarted_from_the_kubelets_cache_during_the_hold_is_not_the_new_process() {
    let node = Node::build(NodeOpts {
        restart: vec!["timeout: 4s".into(), "minHold: 6s".into()],
        ..NodeOpts::default()
    });
    let h = node.kubelet();
    node.wait_healthy(&h);
    let old = node.process(&h, "kube-scheduler").expect("running");
    h.freeze();
    let child = node
        .command(&["restart", "kube-scheduler"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let parked = node.parking().join("kube-scheduler.yaml");
    assert!(
        KubeletHarness::wait_until(LIMIT, || parked.exists()),
        "never parked"
    );
    // The old process dies; the kubelet brings it back from its cache, manifest or not.
    kill(Pid::from_raw(old.pid), Signal::SIGKILL).expect("SIGKILL the old scheduler");
    let file = "kube-scheduler.yaml";
    assert!(
        KubeletHarness::wait_until(LIMIT, || h.running_pid(file).is_some_and(|p| p != old.pid)),
        "the kubelet did not start it again: {:?}",
        h.events()
    );
    let cached = node.process(&h, "kube-scheduler").expect("running");
    // Proof the scenario held: it started while the manifest was still parked.
    assert!(parked.exists(), "the hold ended before the cached restart");

    let out = child.wait_with_output().expect("wait");
    eprintln!("{}\n{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("kube-scheduler: did not come back healthy") && err.contains("no new process"),
        "{err}"
    );
    assert_no_success(&out, "kube-scheduler");
    assert_manifest_back_and_parking_empty(&node, "kube-scheduler");
    assert_eq!(node.process(&h, "kube-scheduler"), Some(cached));
}

/// One look at the node: whether the manifest is in place and the old process alive.
struct Sample {
    at: Instant,
    manifest: bool,
    old_alive: bool,
}

/// Samples every 20 ms until stopped; the manifest is looked at before the process, so a
/// sample with both true means the manifest was back while the old process still ran.
fn sample(manifest: std::path::PathBuf, old: ProcInfo, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let mut v = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let at = Instant::now();
        let m = manifest.exists();
        let a = is_alive(Path::new("/proc"), &old);
        v.push(Sample {
            at,
            manifest: m,
            old_alive: a,
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    v
}

/// (b) The old process takes 4 s to exit after SIGTERM (the hold's minimum is 1 s): the
/// manifest goes back only after it has gone. Without the hold's wait it goes back at 1 s.
#[test]
fn manifest_goes_back_only_after_a_slow_old_process_has_exited() {
    let node = Node::build(NodeOpts {
        restart: vec!["timeout: 30s".into()],
        ..NodeOpts::default()
    });
    let h = node.kubelet();
    node.wait_healthy(&h);
    node.hook("kube-scheduler.slowexit", "4");
    let old = node.process(&h, "kube-scheduler").expect("running");
    let mark = h.events().len();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (m, s) = (node.manifest_path("kube-scheduler"), stop.clone());
        std::thread::spawn(move || sample(m, old, s))
    };
    let out = node.run(&["restart", "kube-scheduler"]);
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.join().expect("sampler");
    std::fs::remove_file(node.host("/etc/kubernetes/standin/kube-scheduler.slowexit"))
        .expect("remove hook");
    assert!(out.status.success(), "{}", stderr(&out));

    let parked = samples
        .iter()
        .position(|s| !s.manifest)
        .expect("the manifest was never seen parked");
    let after = &samples[parked..];
    let back = after
        .iter()
        .find(|s| s.manifest)
        .expect("the manifest was never seen back");
    // The scenario held: the old process outlived the 1 s minimum hold by seconds.
    let last_alive = after
        .iter()
        .rfind(|s| s.old_alive)
        .expect("the old process was never seen alive after the park");
    assert!(
        last_alive.at - after[0].at >= Duration::from_secs(3),
        "the old process exited {:?} after the park; the slow exit did not happen",
        last_alive.at - after[0].at
    );
    if let Some(s) = after.iter().find(|s| s.manifest && s.old_alive) {
        panic!(
            "the manifest was back {:?} after the park while the old pid {} still ran",
            s.at - after[0].at,
            old.pid
        );
    }
    assert!(back.at > last_alive.at);
    // The kubelet's own record agrees: the old pod stopped before the new one started.
    let ev = events_after(&h, mark);
    let stopped = ev
        .iter()
        .position(|e| e.kind == EventKind::Stopped && e.pid == old.pid)
        .expect("old pod stopped");
    let started = ev
        .iter()
        .position(|e| e.kind == EventKind::Started)
        .expect("new pod started");
    assert!(stopped < started, "{ev:?}");
    let new = node.process(&h, "kube-scheduler").expect("running");
    assert_replaced("kube-scheduler", &old, &new);
    assert!(node.healthy("kube-scheduler"));
}
