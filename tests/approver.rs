//! The daemon's CSR approver against the stand-in kube-apiserver (issue 17): it decides CSRs
//! that existed before it started and new ones as they come, writes only through
//! `/approval`, leaves a bad CSR pending (or denies it) naming the rule and value, and keeps
//! going through faults: a 503 or 409 on the approval, a watch the server closes, a
//! compacted history (410), a server that goes down and comes back. The API being down never
//! holds up a renewal, and SIGTERM ends the daemon within 1 s even while a call hangs.

mod support;

use kubeadm_certd::logging;
use kubeadm_certd::testkit::apiserver::Recorded;
use std::time::{Duration, Instant};
use support::kube::{wait_for, Cluster, Proc, APPROVER_ON, CSRS};

/// The bound from a CSR's creation to its decision.
const DECIDE: Duration = Duration::from_secs(10);

fn approval(name: &str) -> String {
    format!("{CSRS}/{name}/approval")
}

/// The requests about one CSR (its object and its subresources), in order.
fn about(c: &Cluster, name: &str) -> Vec<Recorded> {
    let obj = format!("{CSRS}/{name}");
    c.api
        .requests()
        .into_iter()
        .filter(|r| r.path_only() == obj || r.path_only().starts_with(&format!("{obj}/")))
        .collect()
}

fn calls(rs: &[Recorded]) -> Vec<String> {
    rs.iter()
        .map(|r| {
            let sub = if r.path_only().ends_with("/approval") {
                " approval"
            } else {
                ""
            };
            format!("{}{sub} {}", r.method, r.status)
        })
        .collect()
}

/// Every write the server saw was a PUT on a kubelet-serving CSR's /approval, by admin.conf's
/// user, carrying the CSR's spec unchanged.
fn only_approval_writes(c: &Cluster) {
    for w in c.writes() {
        assert!(
            w.method == "PUT"
                && w.path_only().starts_with(CSRS)
                && w.path_only().ends_with("/approval"),
            "a write other than an approval: {} {}",
            w.method,
            w.path
        );
        assert_eq!(w.user.as_deref(), Some("kubernetes-admin"));
        let body: serde_json::Value = serde_json::from_str(&w.body).unwrap();
        let name = body["metadata"]["name"].as_str().unwrap();
        let stored = c.api.csr(name).unwrap();
        assert_eq!(body["spec"]["signerName"], "kubernetes.io/kubelet-serving");
        assert_eq!(
            body["spec"]["request"], stored["spec"]["request"],
            "{name}: spec.request changed"
        );
        assert_eq!(body["spec"]["username"], stored["spec"]["username"]);
    }
}

#[test]
fn decides_csrs_from_before_the_start_and_new_ones_within_10s() {
    let c = Cluster::new(300);
    c.good_csr("csr-before", "w1");
    // w2 asks for w1's address: rule (f).
    c.kubelet_csr("csr-steal", "w2", &["w2"], &["127.0.0.2"]);
    // cp1 (this node) lists 127.0.0.9 on its Node, but no interface of this host holds it.
    c.api.add_node(
        "cp1",
        &[
            ("InternalIP", "127.0.0.1"),
            ("InternalIP", "127.0.0.9"),
            ("Hostname", "cp1"),
        ],
    );
    c.kubelet_csr("csr-own-unheld", "cp1", &["cp1"], &["127.0.0.9"]);
    // Another signer's CSR is never written.
    c.other_signer_csr("csr-client", "w1");
    let mut d = Proc::daemon(&c, APPROVER_ON);
    assert!(
        c.wait_decided("csr-before", DECIDE).is_some(),
        "not decided: {}",
        d.log()
    );
    assert_eq!(c.state("csr-before"), "Approved");
    let cond = &c.conditions("csr-before")[0];
    assert_eq!(cond["status"], "True");
    assert_eq!(cond["reason"], "KubeadmCertdApprove");
    let msg = cond["message"].as_str().unwrap();
    assert!(
        msg.contains("on cp1")
            && msg.contains("(f) ip-sans ok")
            && msg.contains("(h) attested n/a"),
        "{msg}"
    );
    // New ones: a worker's and cp1's own (127.0.0.1 is on this host's lo).
    c.good_csr("csr-new", "w2");
    c.good_csr("csr-own", "cp1");
    let took = c
        .wait_decided("csr-new", DECIDE)
        .expect("csr-new not decided");
    assert!(c.wait_decided("csr-own", DECIDE).is_some(), "{}", d.log());
    eprintln!("csr-new decided {} ms after its creation", took.as_millis());
    assert_eq!(c.state("csr-new"), "Approved");
    assert_eq!(c.state("csr-own"), "Approved", "{}", d.log());
    let own = c.conditions("csr-own")[0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(own.contains("(h) attested ok"), "{own}");
    assert!(d.wait_log("csr-own-unheld", DECIDE), "{}", d.log());
    let (t, code) = d.term();
    assert!(t.is_some() && code == Some(0), "{t:?} {code:?}");
    let log = d.log();
    assert_eq!(c.state("csr-steal"), "Pending");
    assert_eq!(c.state("csr-own-unheld"), "Pending");
    assert_eq!(c.state("csr-client"), "Pending");
    let pending = d.with_id(logging::MSG_CSR_LEFT_PENDING);
    assert_eq!(pending.len(), 2, "each left-pending CSR logged once: {log}");
    let line = |n: &str| {
        pending
            .iter()
            .find(|l| l.contains(&format!("CSR={n:?}")))
            .unwrap()
            .clone()
    };
    let steal = line("csr-steal");
    assert!(
        steal.contains("rule (f) ip-sans: IP SAN 127.0.0.2 belongs to node w1"),
        "{steal}"
    );
    let unheld = line("csr-own-unheld");
    assert!(
        unheld.contains("rule (h) attested") && unheld.contains("127.0.0.9"),
        "{unheld}"
    );
    assert_eq!(d.with_id(logging::MSG_CSR_APPROVED).len(), 3, "{log}");
    only_approval_writes(&c);
    // The other signer's CSR is filtered out by the server (fieldSelector) and never named.
    assert!(c
        .api
        .requests()
        .iter()
        .all(|r| !r.path.contains("csr-client")));
    assert!(c
        .api
        .requests()
        .iter()
        .filter(|r| r.path_only() == CSRS && r.method == "GET")
        .all(|r| r
            .path
            .contains("fieldSelector=spec.signerName%3Dkubernetes.io%2Fkubelet-serving")
            || r.path
                .contains("fieldSelector=spec.signerName=kubernetes.io/kubelet-serving")));
}

#[test]
fn with_deny_a_bad_csr_is_denied_naming_the_rule_and_value() {
    let c = Cluster::new(300);
    c.kubelet_csr("csr-steal", "w2", &["w2"], &["127.0.0.2"]);
    c.kubelet_csr("csr-wild", "w1", &["*.w1"], &["127.0.0.2"]);
    c.good_csr("csr-good", "w1");
    let mut d = Proc::daemon(&c, &format!("{APPROVER_ON}  deny: true\n"));
    for n in ["csr-steal", "csr-wild", "csr-good"] {
        assert!(c.wait_decided(n, DECIDE).is_some(), "{n}: {}", d.log());
    }
    d.term();
    assert_eq!(c.state("csr-good"), "Approved");
    for (n, want) in [
        (
            "csr-steal",
            "rule (f) ip-sans: IP SAN 127.0.0.2 belongs to node w1",
        ),
        ("csr-wild", "rule (g) dns-sans:"),
    ] {
        let conds = c.conditions(n);
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0]["type"], "Denied");
        assert_eq!(conds[0]["status"], "True");
        assert_eq!(conds[0]["reason"], "KubeadmCertdDeny");
        let m = conds[0]["message"].as_str().unwrap();
        assert!(
            m.starts_with("denied by kubeadm-certd on cp1: ") && m.contains(want),
            "{m}"
        );
    }
    assert!(c.conditions("csr-wild")[0]["message"]
        .as_str()
        .unwrap()
        .contains("*.w1"));
    let denied = d.with_id(logging::MSG_CSR_DENIED);
    assert_eq!(denied.len(), 2, "{}", d.log());
    assert!(d.with_id(logging::MSG_CSR_LEFT_PENDING).is_empty());
    only_approval_writes(&c);
}

#[test]
fn a_503_is_retried_a_409_re_reads_and_neither_is_an_error() {
    let c = Cluster::new(300);
    c.api.fail_next("PUT", &approval("csr-503"), 503, 1);
    c.api.conflict_next("PUT", &approval("csr-409"), 1);
    c.good_csr("csr-503", "w1");
    c.good_csr("csr-409", "w2");
    let mut d = Proc::daemon(&c, APPROVER_ON);
    assert!(c.wait_decided("csr-503", DECIDE).is_some(), "{}", d.log());
    assert!(c.wait_decided("csr-409", DECIDE).is_some(), "{}", d.log());
    d.term();
    assert_eq!(c.state("csr-503"), "Approved");
    assert_eq!(c.state("csr-409"), "Approved");
    // Retried by the approver itself (it re-reads in between), not inside kube-client,
    // whose own retry layer is off.
    assert_eq!(
        calls(&about(&c, "csr-503")),
        ["PUT approval 503", "GET 200", "PUT approval 200"],
        "{}",
        d.log()
    );
    assert_eq!(
        calls(&about(&c, "csr-409")),
        ["PUT approval 409", "GET 200", "PUT approval 200"]
    );
    assert!(
        d.with_id(logging::MSG_APPROVER_FAILED).is_empty(),
        "{}",
        d.log()
    );
    assert_eq!(d.with_id(logging::MSG_CSR_APPROVED).len(), 2);
    only_approval_writes(&c);
}

/// The number of list (not watch) requests for CSRs so far.
fn lists(c: &Cluster) -> usize {
    c.api
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path_only() == CSRS && !r.path.contains("watch="))
        .count()
}

fn watches(c: &Cluster) -> usize {
    c.api
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path_only() == CSRS && r.path.contains("watch="))
        .count()
}

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
    let cfg = APPROVER_ON.replace("checkInterval: 1h", "checkInterval: 1s");
    let textfile = "/var/lib/node_exporter/textfile_collector/kubeadm_certd.prom";
    std::fs::create_dir_all(c.root().join("var/lib/node_exporter/textfile_collector")).unwrap();
    let cfg = cfg.replace("textfile: \"\"", &format!("textfile: {textfile}"));
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
    let prom = c.root().join(textfile.trim_start_matches('/'));
    let cycles = || {
        std::fs::read_to_string(&prom)
            .unwrap_or_default()
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
    let text = std::fs::read_to_string(&prom).unwrap();
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
    assert!(wait_for(DECIDE, || std::fs::read_to_string(&prom)
        .unwrap_or_default()
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
fn the_flood_guard_approves_nothing_until_fewer_are_pending() {
    let c = Cluster::new(300);
    // 3 Nodes: more than 103 pending is a flood.
    for i in 0..104 {
        c.good_csr(&format!("csr-{i:03}"), "w1");
    }
    let mut d = Proc::daemon(&c, APPROVER_ON);
    assert!(d.wait_log(logging::MSG_CSR_FLOOD, DECIDE), "{}", d.log());
    std::thread::sleep(Duration::from_secs(1));
    assert!(c.writes().is_empty(), "approved during a flood");
    // Someone cleans up: 94 left, within the bound again. Every pending one is decided,
    // not only the next one to arrive.
    for i in 0..10 {
        assert!(c.api.delete_csr(&format!("csr-{i:03}")));
    }
    c.good_csr("csr-late", "w2");
    assert!(
        wait_for(DECIDE, || c.writes().len() == 95),
        "{} approvals: {}",
        c.writes().len(),
        d.log()
    );
    d.term();
    let flood = d.with_id(logging::MSG_CSR_FLOOD);
    assert_eq!(flood.len(), 2, "one warning, one all-clear: {}", d.log());
    assert!(
        flood[0].contains(" WARN ") && flood[0].contains("104 kubelet serving CSRs are pending"),
        "{}",
        flood[0]
    );
    assert_eq!(d.with_id(logging::MSG_CSR_APPROVED).len(), 95);
    only_approval_writes(&c);
}

#[test]
fn metrics_count_decisions_stale_csrs_and_reachability() {
    let c = Cluster::new(300);
    let textfile = "/var/lib/node_exporter/textfile_collector/kubeadm_certd.prom";
    std::fs::create_dir_all(c.root().join("var/lib/node_exporter/textfile_collector")).unwrap();
    let cfg = APPROVER_ON
        .replace("checkInterval: 1h", "checkInterval: 1s")
        .replace("textfile: \"\"", &format!("textfile: {textfile}"));
    c.good_csr("csr-good", "w1");
    c.kubelet_csr("csr-steal", "w2", &["w2"], &["127.0.0.2"]);
    let mut d = Proc::daemon(&c, &cfg);
    let prom = c.root().join(textfile.trim_start_matches('/'));
    let has = |s: &str| {
        std::fs::read_to_string(&prom)
            .unwrap_or_default()
            .lines()
            .any(|l| l == s)
    };
    assert!(
        wait_for(DECIDE, || has("kubeadm_certd_csr_approved_total 1")),
        "{}",
        d.log()
    );
    assert!(wait_for(DECIDE, || has(
        "kubeadm_certd_csr_denied_total{rule=\"ip-sans\",action=\"left_pending\"} 1"
    )));
    assert!(has("kubeadm_certd_api_reachable 1"));
    assert!(has("kubeadm_certd_csr_pending_stale 0"));
    // The bad CSR has been pending for 6 minutes.
    assert!(c.api.backdate_csr("csr-steal", Duration::from_secs(360)));
    assert!(
        wait_for(DECIDE, || has("kubeadm_certd_csr_pending_stale 1")),
        "{}",
        std::fs::read_to_string(&prom).unwrap()
    );
    c.api.set_down(true);
    assert!(
        wait_for(Duration::from_secs(20), || has(
            "kubeadm_certd_api_reachable 0"
        )),
        "{}",
        d.log()
    );
    d.term();
    // Counted once, though looked at again and again.
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("kubeadm_certd_csr_denied_total{rule=\"ip-sans\",action=\"left_pending\"} 1"),
        "{text}"
    );
}

#[test]
fn two_control_plane_daemons_decide_each_csr_once_without_errors() {
    let c = Cluster::new(300);
    // cp2: the same cluster CA (its admin.conf is trusted by the stand-in), its own root.
    let cp2 = tempfile::tempdir().unwrap();
    let mut spec =
        kubeadm_certd::testkit::nodebuilder::NodeSpec::new(time::OffsetDateTime::now_utc());
    spec.key = kubeadm_certd::pki::inspect::KeyAlg::EcP256;
    spec.leaf_left = Duration::from_secs(300 * 86_400);
    spec.node_name = "cp2".into();
    spec.shared_cas = Some(c.root().to_path_buf());
    kubeadm_certd::testkit::nodebuilder::build(cp2.path(), &spec).unwrap();
    c.api
        .point_kubeconfig(&cp2.path().join(support::kube::ADMIN_CONF))
        .unwrap();
    let cfg2 = support::daemon_node::config(cp2.path(), APPROVER_ON);
    let mut d1 = Proc::daemon(&c, APPROVER_ON);
    let mut d2 = Proc::start(cp2.path(), Some(&cfg2), &["run"]);
    assert!(c.api.wait_watches(2, DECIDE), "{}\n{}", d1.log(), d2.log());
    let names: Vec<String> = (0..10).map(|i| format!("csr-{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        c.good_csr(n, if i % 2 == 0 { "w1" } else { "w2" });
    }
    for n in &names {
        assert!(c.wait_decided(n, DECIDE).is_some(), "{n}");
    }
    std::thread::sleep(Duration::from_millis(500));
    d1.term();
    d2.term();
    for n in &names {
        let conds = c.conditions(n);
        assert_eq!(conds.len(), 1, "{n}: {conds:?}");
        assert_eq!(conds[0]["type"], "Approved");
    }
    let approved =
        d1.with_id(logging::MSG_CSR_APPROVED).len() + d2.with_id(logging::MSG_CSR_APPROVED).len();
    assert_eq!(
        approved, 10,
        "each CSR logged as approved by the daemon whose write landed"
    );
    for d in [&d1, &d2] {
        assert!(
            d.with_id(logging::MSG_APPROVER_FAILED).is_empty(),
            "{}",
            d.log()
        );
    }
    let ok = c.writes().iter().filter(|w| w.status == 200).count();
    assert_eq!(ok, 10, "one successful approval per CSR");
    eprintln!(
        "cp1 approved {}, cp2 {}; {} approval writes met a 409",
        d1.with_id(logging::MSG_CSR_APPROVED).len(),
        d2.with_id(logging::MSG_CSR_APPROVED).len(),
        c.writes().iter().filter(|w| w.status == 409).count()
    );
    only_approval_writes(&c);
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
