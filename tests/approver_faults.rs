//! The daemon's CSR approver against the stand-in kube-apiserver (issue 17), when the API
//! misbehaves: a watch the server closes, a compacted history (410), a server that goes down
//! and comes back, watches ended at once again and again. The API being down never holds up a
//! renewal and is logged once, and SIGTERM ends the daemon within 1 s even while calls hang.

mod support;

use kubeadm_certd::logging;
use std::time::{Duration, Instant};
use support::kube::{lists, wait_for, watches, Cluster, Proc, APPROVER_ON, CSRS};

/// The bound from a CSR's creation to its decision.
const DECIDE: Duration = Duration::from_secs(10);

#[test]
fn the_watch_reconnects_after_a_close_re_lists_after_410_and_survives_a_restart() {
    let c = Cluster::new(300);
    let mut d = Proc::daemon(&c, APPROVER_ON);
    assert!(c.api.wait_watches(1, DECIDE), "no watch: {}", d.log());
    let (l0, w0) = (lists(&c), watches(&c));
    // 1. The server ends the watch cleanly (as at timeoutSeconds): a new watch, no new list.
    c.api.close_watches();
    assert!(
        wait_for(DECIDE, || watches(&c) > w0 && c.api.open_watches() == 1),
        "{}",
        d.log()
    );
    assert_eq!(lists(&c), l0, "a clean end re-listed");
    c.good_csr("csr-1", "w1");
    assert!(
        c.wait_decided("csr-1", DECIDE).is_some(),
        "after a close: {}",
        d.log()
    );
    // 2. History compacted, then the watch ends: reopening from the old resourceVersion gets
    // 410 Gone, and the approver lists again.
    let l1 = lists(&c);
    c.api.compact();
    c.api.close_watches();
    assert!(
        wait_for(DECIDE, || lists(&c) > l1 && c.api.open_watches() == 1),
        "no re-list after 410: {}",
        d.log()
    );
    c.good_csr("csr-2", "w2");
    assert!(
        c.wait_decided("csr-2", DECIDE).is_some(),
        "after 410: {}",
        d.log()
    );
    // 3. The server goes away for 3 s (kube-rs ends the stream cleanly, or with an error) and
    // comes back on the same port.
    c.api.set_down(true);
    std::thread::sleep(Duration::from_secs(3));
    c.good_csr("csr-3", "w1");
    c.api.set_down(false);
    let back = Instant::now();
    assert!(
        c.wait_decided("csr-3", Duration::from_secs(20)).is_some(),
        "after down/up: {}",
        d.log()
    );
    eprintln!(
        "csr-3 approved {} ms after the server came back",
        back.elapsed().as_millis()
    );
    c.good_csr("csr-4", "w2");
    assert!(c.wait_decided("csr-4", DECIDE).is_some(), "{}", d.log());
    d.term();
    let log = d.log();
    assert_eq!(d.with_id(logging::MSG_API_UNREACHABLE).len(), 1, "{log}");
    assert_eq!(d.with_id(logging::MSG_API_REACHABLE).len(), 1, "{log}");
    assert!(d.with_id(logging::MSG_APPROVER_FAILED).is_empty(), "{log}");
    for n in ["csr-1", "csr-2", "csr-3", "csr-4"] {
        assert_eq!(c.state(n), "Approved", "{n}");
    }
}

#[test]
fn api_down_a_due_certificate_is_still_renewed_and_the_problem_logged_once() {
    let c = Cluster::new(3);
    c.api.set_down(true);
    let crt = c.root().join("etc/kubernetes/pki/apiserver.crt");
    let before = support::daemon_node::not_after(&crt);
    let (cfg, prom) =
        c.with_textfile(&APPROVER_ON.replace("checkInterval: 1h", "checkInterval: 1s"));
    // The node file already has the key (no kubelet restart here); the ConfigMap does not.
    c.node_file_has_server_tls_bootstrap();
    // The log as an operator gets it (info and up, every crate).
    let cfg = c.config(&format!("{cfg}kubelet:\n  serverTLSBootstrap: true\n"));
    let mut d = Proc::start_with(c.root(), Some(&cfg), &["run"], false);
    assert!(
        wait_for(DECIDE, || support::daemon_node::not_after(&crt) > before),
        "not renewed with the API down: {}",
        d.log()
    );
    // Several cycles and approver retries later, the API problem is still one line.
    let cycles = || {
        prom.text()
            .lines()
            .filter_map(|l| l.strip_prefix("kubeadm_certd_cycles_total{trigger=\"timer\"} "))
            .filter_map(|v| v.parse::<u64>().ok())
            .next()
            .unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(20), || cycles() >= 5),
        "{}",
        d.log()
    );
    let text = prom.text();
    assert!(text.contains("kubeadm_certd_api_reachable 0"), "{text}");
    let down = d.with_id(logging::MSG_API_UNREACHABLE);
    assert_eq!(down.len(), 1, "{}", d.log());
    assert!(
        down[0].contains("renewals and restarts go on without it"),
        "{}",
        down[0]
    );
    assert_eq!(
        d.with_id(logging::MSG_KUBELET_CONFIGMAP_PENDING).len(),
        1,
        "{}",
        d.log()
    );
    assert!(d.with_id(logging::MSG_RENEWED).len() >= 10);
    // Nothing else about the API: no line per retry from kube-client, no other error.
    let log = d.log();
    let about_api: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("127.0.0.1:") || l.contains(" ERROR ") || l.contains("onnect"))
        .collect();
    assert_eq!(about_api.len(), 2, "{log}");
    // The API comes back: said once, and both tasks catch up.
    c.api.put_configmap(
        "kube-system",
        "kubelet-config",
        &[(
            "kubelet",
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n",
        )],
    );
    c.good_csr("csr-late", "w1");
    c.api.set_down(false);
    assert!(
        c.wait_decided("csr-late", Duration::from_secs(90))
            .is_some(),
        "{}",
        d.log()
    );
    assert!(
        d.wait_log(logging::MSG_KUBELET_CONFIGMAP_SET, Duration::from_secs(90)),
        "{}",
        d.log()
    );
    assert!(wait_for(DECIDE, || prom
        .text()
        .contains("kubeadm_certd_api_reachable 1")));
    d.term();
    assert_eq!(d.with_id(logging::MSG_API_UNREACHABLE).len(), 1);
    assert_eq!(
        d.with_id(logging::MSG_API_REACHABLE).len(),
        1,
        "{}",
        d.log()
    );
    let kc = c.api.configmap("kube-system", "kubelet-config").unwrap();
    assert!(kc["data"]["kubelet"]
        .as_str()
        .unwrap()
        .contains("serverTLSBootstrap: true"));
}

#[test]
fn sigterm_during_a_hung_api_call_exits_within_1s() {
    let c = Cluster::new(300);
    c.api.hang(CSRS, true);
    c.api
        .hang("/api/v1/namespaces/kube-system/configmaps", true);
    c.api.put_configmap(
        "kube-system",
        "kubelet-config",
        &[("kubelet", "kind: KubeletConfiguration\n")],
    );
    c.node_file_has_server_tls_bootstrap();
    let mut d = Proc::daemon(
        &c,
        &format!("{APPROVER_ON}kubelet:\n  serverTLSBootstrap: true\n"),
    );
    let hung = |p: &str| {
        let p = p.to_string();
        c.api.wait_request(DECIDE, move |r| {
            r.status == 0 && r.path_only().starts_with(&p)
        })
    };
    assert!(hung(CSRS).is_some(), "the list never hung: {}", d.log());
    assert!(
        hung("/api/v1/namespaces/kube-system/configmaps").is_some(),
        "{}",
        d.log()
    );
    assert!(d.wait_log("certificates ok", DECIDE), "{}", d.log());
    let (took, code) = d.term();
    let took = took.expect("still running 10 s after SIGTERM");
    eprintln!("daemon exited {} ms after SIGTERM", took.as_millis());
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(code, Some(0), "{}", d.log());
}

#[test]
fn a_watch_the_server_keeps_ending_at_once_is_reopened_with_backoff_not_in_a_loop() {
    let c = Cluster::new(300);
    let mut d = Proc::daemon(&c, APPROVER_ON);
    assert!(c.api.wait_watches(1, DECIDE), "{}", d.log());
    let w0 = watches(&c);
    // A proxy that cuts every watch at once, for 4 s.
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        c.api.close_watches();
        std::thread::sleep(Duration::from_millis(20));
    }
    let reopened = watches(&c) - w0;
    // Backoff 1 s, 2 s, 4 s (+ up to 25 %): at most 3 in 4 s; at full speed it would be ~200.
    assert!((1..=4).contains(&reopened), "{reopened} watches in 4 s");
    // Once the watches stay open, it works as before.
    assert!(
        c.api.wait_watches(1, Duration::from_secs(15)),
        "{}",
        d.log()
    );
    c.good_csr("csr-after", "w1");
    assert!(c.wait_decided("csr-after", DECIDE).is_some(), "{}", d.log());
    d.term();
}

/// A SIGHUP that leaves the approver's settings alone keeps it running: the counters go on
/// from where they were, and neither "API unreachable" nor the approver's start is said
/// again. One that changes them (`deny`) restarts the approver, and the counters still stay.
#[test]
fn a_reload_keeps_the_approvers_counters_and_standing_conditions() {
    let c = Cluster::new(300);
    let (cfg, prom) =
        c.with_textfile(&APPROVER_ON.replace("checkInterval: 1h", "checkInterval: 1s"));
    c.good_csr("csr-good", "w1");
    let mut d = Proc::daemon(&c, &cfg);
    let text = || prom.text();
    let has = |s: &str| prom.has(s);
    assert!(
        wait_for(DECIDE, || has("kubeadm_certd_csr_approved_total 1")),
        "{}",
        d.log()
    );
    c.api.set_down(true);
    assert!(
        wait_for(DECIDE, || has("kubeadm_certd_api_reachable 0")),
        "{}",
        d.log()
    );
    let reloads = |d: &Proc| {
        d.log()
            .lines()
            .filter(|l| l.contains("configuration reloaded"))
            .count()
    };
    let hup = |d: &Proc| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(d.child.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
    };
    hup(&d);
    assert!(wait_for(DECIDE, || reloads(&d) == 1), "{}", d.log());
    // The cycles after the reload write the textfile again, the approver retries meanwhile.
    std::fs::remove_file(&prom.0).unwrap();
    assert!(
        wait_for(DECIDE, || has("kubeadm_certd_api_reachable 0")),
        "{}",
        d.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(has("kubeadm_certd_csr_approved_total 1"), "{}", text());
    assert_eq!(
        d.with_id(logging::MSG_API_UNREACHABLE).len(),
        1,
        "{}",
        d.log()
    );
    assert_eq!(
        d.with_id(logging::MSG_APPROVER_STATE).len(),
        1,
        "{}",
        d.log()
    );
    // Now the approver's settings change: it restarts, the counters stay.
    c.config(&format!("{cfg}  deny: true\n"));
    hup(&d);
    assert!(wait_for(DECIDE, || reloads(&d) == 2), "{}", d.log());
    c.api.set_down(false);
    assert!(
        wait_for(Duration::from_secs(30), || d
            .with_id(logging::MSG_APPROVER_STATE)
            .len()
            == 2),
        "{}",
        d.log()
    );
    std::fs::remove_file(&prom.0).unwrap();
    assert!(
        wait_for(DECIDE, || has("kubeadm_certd_api_reachable 1")),
        "{}",
        d.log()
    );
    assert!(has("kubeadm_certd_csr_approved_total 1"), "{}", text());
    d.term();
    assert_eq!(d.with_id(logging::MSG_API_UNREACHABLE).len(), 1);
    assert_eq!(d.with_id(logging::MSG_API_REACHABLE).len(), 1);
}

#[test]
fn a_renewed_admin_conf_gives_the_approver_its_new_credentials() {
    // Every leaf, admin.conf's client certificate included, expires 30 s from now: the
    // daemon's first cycle renews them all. The approver connected before that cycle, with the
    // old certificate; once it has expired, the API server refuses it on a new connection.
    let dir = tempfile::tempdir().unwrap();
    let mut spec =
        kubeadm_certd::testkit::nodebuilder::NodeSpec::new(time::OffsetDateTime::now_utc());
    spec.leaf_left = Duration::from_secs(30);
    spec.key = kubeadm_certd::pki::inspect::KeyAlg::EcP256;
    kubeadm_certd::testkit::nodebuilder::build(dir.path(), &spec).unwrap();
    let expires = Instant::now() + Duration::from_secs(30);
    let c = Cluster::with_leaves(dir);
    let mut d = Proc::daemon(&c, &format!("{APPROVER_ON}requireTimeSync: false\n"));
    assert!(
        d.wait_log(
            "API client now uses its new credentials",
            Duration::from_secs(60)
        ),
        "{}",
        d.log()
    );
    // Past the old certificate's end, every connection is new.
    while Instant::now() < expires + Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(200));
    }
    c.api.set_down(true);
    std::thread::sleep(Duration::from_millis(500));
    c.api.set_down(false);
    c.good_csr("csr-after-renewal", "w1");
    assert!(
        c.wait_decided("csr-after-renewal", Duration::from_secs(30))
            .is_some(),
        "not decided with the renewed admin.conf: {}",
        d.log()
    );
    assert_eq!(c.state("csr-after-renewal"), "Approved");
    d.term();
}
