//! Guard rails (issue 12) with real restarts: the daemon over several short intervals on a
//! node whose CAs end in 20 days renews and restarts at most once; the restart budget stops a
//! loop (forced with the `guard::force-due` failpoint, so that test needs `--features
//! failpoints`) and `run --once` says so. Python stand-ins under the stand-in kubelet, as in
//! restart.rs.

#[path = "support/kubelet.rs"]
mod kubelet;
mod restart_support;

use kubelet::KubeletHarness;
use restart_support::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

#[cfg_attr(feature = "failpoints", allow(dead_code))]
const DAY: Duration = Duration::from_secs(86_400);
const STATE: &str = "/var/lib/kubeadm-certd";

/// Append daemon settings for short intervals to the node's config.
fn fast_config(node: &Node) {
    let mut cfg = std::fs::read_to_string(&node.config).unwrap();
    // requireTimeSync: false, so that a test machine booted minutes ago with an
    // unsynchronised clock still renews (the clock guard has its own tests in guard.rs).
    cfg.push_str(
        "checkInterval: 2s\njitter: 0s\nrequireTimeSync: false\nmetrics:\n  textfile: \"\"\n",
    );
    std::fs::write(&node.config, cfg).unwrap();
}

/// Start `run` with stderr in a file; FAILPOINTS when given.
fn daemon(node: &Node, failpoints: Option<&str>) -> (Child, PathBuf) {
    let err = node.root.with_file_name("daemon.stderr");
    // -v: quiet cycles log their status line at debug level; the tests count them.
    let mut c = node.command(&["-v", "run"]);
    c.env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap());
    match failpoints {
        Some(f) => c.env("FAILPOINTS", f),
        None => c.env_remove("FAILPOINTS"),
    };
    (c.spawn().unwrap(), err)
}

fn log(err: &PathBuf) -> String {
    std::fs::read_to_string(err).unwrap_or_default()
}

/// Wait until the daemon has logged `n` cycle status lines.
fn wait_cycles(child: &mut Child, err: &PathBuf, n: usize) {
    let start = Instant::now();
    loop {
        let done = log(err).matches("certificates ok").count();
        if done >= n {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the daemon exited:\n{}",
            log(err)
        );
        assert!(
            start.elapsed() < LIMIT * 2,
            "only {done} of {n} cycles:\n{}",
            log(err)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(child: &mut Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Restarts by the daemon, per component: the stand-in kubelet stopped a pod because its
/// manifest was parked. (Starts are not counted: a stand-in that exits on its own under load
/// is started again by the kubelet, as a real kubelet would, and that is no restart of ours.)
fn counts(h: &KubeletHarness, mark: usize) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in &h.events()[mark..] {
        if e.kind == kubelet::EventKind::Stopped && e.detail.starts_with("manifest removed") {
            *m.entry(e.file.trim_end_matches(".yaml").to_string())
                .or_default() += 1;
        }
    }
    m
}

fn backup_sets(node: &Node) -> usize {
    std::fs::read_dir(node.host(&format!("{STATE}/backups")))
        .map(|r| r.count())
        .unwrap_or(0)
}

#[cfg_attr(feature = "failpoints", allow(dead_code))]
fn not_after(node: &Node, path: &str) -> time::OffsetDateTime {
    let der = node.cert_der(path);
    kubeadm_certd::pki::inspect::CertInfo::from_der(&der)
        .unwrap()
        .not_after
}

// Each restart test runs in one build only (scripts/test runs this file in both).
#[cfg(not(feature = "failpoints"))]
#[test]
fn near_expiry_ca_daemon_renews_and_restarts_at_most_once() {
    let node = Node::build(NodeOpts {
        ca_left: Some(20 * DAY),
        ..NodeOpts::default()
    });
    fast_config(&node);
    let h = node.kubelet();
    node.wait_healthy(&h);
    let mark = h.events().len();
    let (mut child, err) = daemon(&node, None);
    // The first cycle renews (clamped to the CAs' end) and restarts; five more follow.
    wait_cycles(&mut child, &err, 6);
    let fpc = "/etc/kubernetes/pki/front-proxy-client.crt";
    let after_first = node.cert_der(fpc);
    wait_cycles(&mut child, &err, 8);
    stop(&mut child);
    let text = log(&err);

    assert_eq!(
        node.cert_der(fpc),
        after_first,
        "front-proxy-client renewed again"
    );
    assert_eq!(
        not_after(&node, fpc),
        not_after(&node, "/etc/kubernetes/pki/front-proxy-ca.crt"),
        "front-proxy-client was not renewed up to its CA's end"
    );
    assert_eq!(backup_sets(&node), 1, "one renewal, one backup set\n{text}");
    let c = counts(&h, mark);
    assert_eq!(c.get("kube-apiserver"), Some(&1), "restarts {c:?}\n{text}");
    assert!(c.values().all(|n| *n == 1), "restarts {c:?}");
    assert!(
        text.contains("front-proxy-client is due but blocked by CA runway"),
        "{text}"
    );
    // Once a day, not once a cycle.
    assert_eq!(
        text.matches("front-proxy-client is due but blocked")
            .count(),
        1,
        "{text}"
    );
    assert!(text.contains(kubeadm_certd::logging::MSG_BLOCKED_BY_CA));
}

#[cfg(not(feature = "failpoints"))]
#[test]
fn run_once_past_the_budget_keeps_the_restart_owed_and_says_so() {
    let node = Node::build(NodeOpts::default());
    fast_config(&node);
    let h = node.kubelet();
    node.wait_healthy(&h);
    // The daemon already restarted kube-apiserver three times today.
    let now = time::OffsetDateTime::now_utc();
    let stamps: Vec<String> = (1..=3)
        .map(|i| {
            (now - Duration::from_secs(3600 * i))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        })
        .collect();
    std::fs::create_dir_all(node.host(STATE)).unwrap();
    std::fs::write(
        node.host(&format!("{STATE}/restarts.json")),
        serde_json::json!({ "kube-apiserver": stamps }).to_string(),
    )
    .unwrap();
    let mark = h.events().len();
    let out = node.run(&["run", "--once"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not restarting kube-apiserver")
            && stderr.contains(kubeadm_certd::logging::MSG_RESTART_BUDGET)
            && stderr.contains("restart.maxPerDay: 3"),
        "{stderr}"
    );
    let c = counts(&h, mark);
    assert_eq!(c.get("kube-apiserver"), None, "restarted past the budget");
    assert_eq!(c.get("kube-controller-manager"), Some(&1));
    assert_eq!(c.get("kube-scheduler"), Some(&1));
    let owed = std::fs::read_to_string(node.host(&format!("{STATE}/restarts-owed.json"))).unwrap();
    assert!(owed.contains("kube-apiserver"), "{owed}");
    // check-expiration says so too.
    let ce = node.run(&["check-expiration"]);
    let ce_err = String::from_utf8_lossy(&ce.stderr);
    assert!(
        ce_err.contains("restarted kube-apiserver 3 times")
            && ce_err.contains("restarts owed: kube-apiserver"),
        "{ce_err}"
    );
    // The way out is by hand: `recover` carries out the owed restart.
    let r = node.run(&["recover"]);
    assert!(r.status.success());
    assert_eq!(counts(&h, mark).get("kube-apiserver"), Some(&1));
    assert!(!node.host(&format!("{STATE}/restarts-owed.json")).exists());
}

#[cfg(feature = "failpoints")]
#[test]
fn a_forced_renewal_loop_stops_restarting_after_max_per_day() {
    let node = Node::build(NodeOpts {
        restart: vec!["timeout: 60s".into(), "maxPerDay: 2".into()],
        ..NodeOpts::default()
    });
    fast_config(&node);
    let h = node.kubelet();
    node.wait_healthy(&h);
    let mark = h.events().len();
    // front-proxy-client looks due every cycle, past the renewal memory: a loop nobody foresaw.
    let (mut child, err) = daemon(&node, Some("guard::force-due=return(front-proxy-client)"));
    let start = Instant::now();
    while !log(&err).contains(kubeadm_certd::logging::MSG_RESTART_BUDGET) {
        assert!(child.try_wait().unwrap().is_none(), "{}", log(&err));
        assert!(
            start.elapsed() < LIMIT * 3,
            "no budget stop:\n{}",
            log(&err)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let renewals_at_stop = backup_sets(&node);
    wait_cycles(
        &mut child,
        &err,
        log(&err).matches("certificates ok").count() + 2,
    );
    stop(&mut child);
    let text = log(&err);
    let c = counts(&h, mark);
    assert_eq!(c.get("kube-apiserver"), Some(&2), "restarts {c:?}\n{text}");
    assert_eq!(c.get("kube-controller-manager"), Some(&1), "{c:?}");
    // The loop goes on renewing (that is the bug the budget contains), restarting nothing.
    assert!(backup_sets(&node) > renewals_at_stop, "{text}");
    assert_eq!(
        text.matches("not restarting kube-apiserver").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("restart budget spent: kube-apiserver"),
        "{text}"
    );
    let owed = std::fs::read_to_string(node.host(&format!("{STATE}/restarts-owed.json"))).unwrap();
    assert!(owed.contains("kube-apiserver"), "{owed}");
}
