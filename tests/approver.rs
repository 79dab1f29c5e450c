//! The daemon's CSR approver against the stand-in kube-apiserver (issue 17), deciding: CSRs
//! that existed before it started and new ones as they come are decided; writes go only
//! through `/approval`; a bad CSR is left pending (or denied) naming the rule and value; a 503
//! or 409 on the approval is retried; the flood guard; the metrics; two control-plane daemons
//! at once. Faults of the API itself are in approver_faults.rs.

mod support;

use kubeadm_certd::logging;
use std::time::Duration;
use support::kube::{
    about, approval, calls, only_approval_writes, wait_for, Cluster, Proc, APPROVER_ON, CSRS,
};

/// The bound from a CSR's creation to its decision.
const DECIDE: Duration = Duration::from_secs(10);

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
    let (cfg, prom) =
        c.with_textfile(&APPROVER_ON.replace("checkInterval: 1h", "checkInterval: 1s"));
    c.good_csr("csr-good", "w1");
    c.kubelet_csr("csr-steal", "w2", &["w2"], &["127.0.0.2"]);
    let mut d = Proc::daemon(&c, &cfg);
    let has = |s: &str| prom.has(s);
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
        prom.text()
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
    let text = prom.text();
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

/// The idle release of the executable's pages (issue 19) follows the approver's work too: a
/// CSR decided long after the last cycle is followed by another release, with no cycle between.
#[test]
fn a_decision_after_the_idle_release_is_followed_by_another_release() {
    let c = Cluster::new(300);
    let mut d = Proc::daemon(&c, APPROVER_ON);
    let count = |d: &Proc, what: &str| d.log().lines().filter(|l| l.contains(what)).count();
    assert!(
        d.wait_log("idle: released", Duration::from_secs(20)),
        "{}",
        d.log()
    );
    let (released, cycles) = (count(&d, "idle: released"), count(&d, "cycle ("));
    c.good_csr("csr-late", "w1");
    assert!(c.wait_decided("csr-late", DECIDE).is_some(), "{}", d.log());
    wait_for(Duration::from_secs(15), || {
        count(&d, "idle: released") > released
    });
    d.term();
    let log = d.log();
    assert!(count(&d, "idle: released") > released, "{log}");
    assert_eq!(count(&d, "cycle ("), cycles, "a cycle ran meanwhile: {log}");
}
