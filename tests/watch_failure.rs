//! The directory watch cannot be set up (inotify limits are common on busy Kubernetes
//! nodes): the daemon warns once, keeps renewing on its timer and retries the watch every
//! cycle. The failure is injected at the watcher seam with a failpoint, so this file only
//! has tests in the `failpoints` build (scripts/test runs it there).
#![cfg(feature = "failpoints")]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::daemon_node::{config, node, not_after};

const BIN: &str = env!("CARGO_BIN_EXE_kubeadm-certd");

fn watch_failure_keeps_the_timer(failpoint: &str) {
    let d = node(300);
    let cfg = config(
        d.path(),
        "checkInterval: 2s\njitter: 0s\nrestart:\n  enabled: false\nmetrics:\n  textfile: \"\"\n",
    );
    let mut child = Command::new(BIN)
        .args([
            "--root",
            d.path().to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "run",
        ])
        .env("FAILPOINTS", format!("{failpoint}=return"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&lines);
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    });
    // A due certificate appears behind the daemon's back: with no watch, only the timer can
    // find it.
    std::thread::sleep(Duration::from_secs(1));
    let crt = d.path().join("etc/kubernetes/pki/front-proxy-client.crt");
    let before = not_after(&crt);
    let short = node(1);
    // Same CA is needed for a renewal to be possible: copy the whole front-proxy PKI.
    for f in [
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "front-proxy-client.crt",
        "front-proxy-client.key",
    ] {
        std::fs::copy(
            short.path().join("etc/kubernetes/pki").join(f),
            d.path().join("etc/kubernetes/pki").join(f),
        )
        .unwrap();
    }
    let replaced = not_after(&crt);
    assert!(replaced < before);
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end && not_after(&crt) <= replaced {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        not_after(&crt) > replaced,
        "not renewed on the timer:\n{}",
        lines.lock().unwrap()
    );
    // Several more timer cycles, then stop.
    std::thread::sleep(Duration::from_secs(5));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let log = lines.lock().unwrap().clone();
    assert!(status.success(), "{log}");
    let warnings = log
        .lines()
        .filter(|l| l.contains("changes are picked up by the timer only"))
        .count();
    assert_eq!(
        warnings, 1,
        "the watch failure was not warned exactly once:\n{log}"
    );
    assert!(log.contains(failpoint), "{log}");
}

#[test]
fn no_inotify_instance_keeps_the_timer() {
    watch_failure_keeps_the_timer("watch::create");
}

#[test]
fn no_inotify_watch_keeps_the_timer() {
    watch_failure_keeps_the_timer("watch::add");
}
