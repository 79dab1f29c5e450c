//! Issue 14: the rules and dashboard in monitoring/. promtool checks the rules; promtool unit
//! tests, whose input series come from textfiles the REAL binary wrote for test nodes, show
//! each alert firing and staying silent; the dashboard's PromQL parses; and every metric and
//! label the rules and the dashboard use exists in what the binary writes.

mod monitoring_support;

use monitoring_support::names::{as_promql, dashboard, strings_of, unknown_names};
use monitoring_support::nodes::Fleet;
use monitoring_support::promtool::{
    group, promtool, require_promtool, rules, rules_file, run_tests, Expected, Timeline,
};
use monitoring_support::textfile::{Labels, Textfile};
use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn promtool_check_rules_passes() {
    if !require_promtool() {
        return;
    }
    let out = promtool(&["check", "rules", rules_file().to_str().unwrap()]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// With the scrape labels, minus the metric name.
fn labels_of(t: &Timeline, l: &Labels) -> Labels {
    let mut l = l.clone();
    l.insert("instance".into(), t.instance.clone());
    l.insert("job".into(), "node".into());
    l
}

/// The certificates at these host paths in snapshot `i` of `t`, each with its time left (or,
/// `expired`, time since expiry) at `eval_min`, read from the binary's x509_cert_not_after.
fn certs(t: &Timeline, i: usize, paths: &[&str], eval_min: u64, expired: bool) -> Vec<Expected> {
    let file = t.snaps[i].1;
    paths
        .iter()
        .map(|p| {
            let s = file.one("x509_cert_not_after", &[("filepath", p)]);
            let left = t.value(i, &s.name, s.value) - (eval_min * 60) as f64;
            Expected {
                labels: labels_of(t, &s.labels),
                value: if expired { -left } else { left },
            }
        })
        .collect()
}

const APISERVER: &str = "/etc/kubernetes/pki/apiserver.crt";
const KUBELET_CLIENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

fn one(name: &str, f: &'static Textfile) -> Timeline<'static> {
    Timeline::new(name, &[(0, f)])
}

/// Fire and silent groups for `alert`, run by promtool.
fn check(alert: &str, groups: Vec<serde_json::Value>) {
    if !require_promtool() {
        return;
    }
    // KEEP_PROMTOOL_TESTS=DIR keeps the generated files there, to read or rerun by hand.
    let dir = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("KEEP_PROMTOOL_TESTS").map(std::path::PathBuf::from);
    let out = run_tests(keep.as_deref().unwrap_or(dir.path()), alert, groups);
    assert!(out.contains("SUCCESS"), "{out}");
}

fn silent(t: &[Timeline], alert: &str, eval_min: u64) -> serde_json::Value {
    group(t, alert, eval_min, &[])
}

#[test]
fn certificate_expiring_soon() {
    let f = Fleet::get();
    let a = "KubeadmCertdCertificateExpiringSoon";
    let t = one("expiring", &f.expiring);
    // The excluded apiserver certificate only: the rest was renewed, and the kubelet's client
    // certificate (10 days too) has its own alert.
    let exp = certs(&t, 0, &[APISERVER], 70, false);
    let fire = group(&[t], a, 70, &exp);
    // Before `for` (1h) has passed.
    let early = silent(&[one("expiring", &f.expiring)], a, 50);
    // Renewed: nothing below 15 days but the kubelet client certificate (3 days).
    let renewed = silent(&[one("renewed", &f.renewed)], a, 70);
    check(a, vec![fire, early, renewed]);
}

#[test]
fn certificate_expired() {
    let f = Fleet::get();
    let a = "KubeadmCertdCertificateExpired";
    let t = one("expired", &f.expired);
    let exp = certs(&t, 0, &[APISERVER, KUBELET_CLIENT], 10, true);
    let fire = group(&[t], a, 10, &exp);
    let expiring = silent(&[one("expiring", &f.expiring)], a, 10);
    check(a, vec![fire, expiring]);
}

/// The samples of `name` with labels `with` in snapshot `i`, as expected alerts.
fn counter(t: &Timeline, i: usize, name: &str, with: &[(&str, &str)]) -> Vec<Expected> {
    t.snaps[i]
        .1
        .matching(name, with)
        .into_iter()
        .map(|s| Expected {
            labels: labels_of(t, &s.labels),
            value: s.value,
        })
        .collect()
}

#[test]
fn renewal_failed() {
    let f = Fleet::get();
    let a = "KubeadmCertdRenewalFailed";
    let [before, after] = &f.failed;
    assert_eq!(
        before
            .one("kubeadm_certd_renewals_total", &[("result", "failed")])
            .value,
        0.0
    );
    assert_eq!(
        after
            .one("kubeadm_certd_renewals_total", &[("result", "failed")])
            .value,
        1.0
    );
    let tl = || Timeline::new("failed", &[(0, before), (60, after)]);
    let name = "kubeadm_certd_renewals_total";
    let exp = counter(&tl(), 1, name, &[("result", "failed")]);
    // The failure counted in the second file, while the 3h window holds it.
    let fire = group(&[tl()], a, 90, &exp);
    // A daemon whose first cycle failed: the series starts at 1.
    let fresh = group(
        &[one("failed", after)],
        a,
        30,
        &counter(&one("failed", after), 0, name, &[("result", "failed")]),
    );
    // Before the failure, and once the window has passed without another one.
    let before_it = silent(&[tl()], a, 59);
    let later = silent(&[tl()], a, 60 + 180 + 5);
    let renewed = silent(&[one("renewed", &f.renewed)], a, 30);
    check(a, vec![fire, fresh, before_it, later, renewed]);
}

#[test]
fn renewal_refused() {
    let f = Fleet::get();
    let a = "KubeadmCertdRenewalRefused";
    let t = one("refused", &f.refused);
    let exp: Vec<Expected> = f
        .refused
        .matching("kubeadm_certd_renewal_refused", &[])
        .into_iter()
        .map(|s| Expected {
            labels: labels_of(&t, &s.labels),
            value: s.value,
        })
        .collect();
    assert_eq!(exp.len(), 1, "{:?}", f.refused.samples);
    assert_eq!(
        exp[0].labels.get("cert").map(String::as_str),
        Some("apiserver")
    );
    // A refusal stands until fixed: it fires once `for` (10m) has passed.
    let fire = group(&[one("refused", &f.refused)], a, 15, &exp);
    let early = silent(&[one("refused", &f.refused)], a, 5);
    let renewed = silent(&[one("renewed", &f.renewed)], a, 15);
    let failed = silent(&[one("failed", &f.failed[1])], a, 15);
    check(a, vec![fire, early, renewed, failed]);
    assert_eq!(
        f.refused
            .one("kubeadm_certd_renewals_total", &[("result", "failed")])
            .value,
        0.0,
        "a standing refusal is not a failed renewal attempt"
    );
}

/// A gauge alert: it fires with the series' labels once `for` has passed, and stays silent
/// on the healthy node.
fn gauge_alert(alert: &str, metric: &str, case: &str, file: &'static Textfile, fire_at: u64) {
    let f = Fleet::get();
    let t = one(case, file);
    let exp: Vec<Expected> = file
        .matching(metric, &[])
        .into_iter()
        .filter(|s| s.value == 1.0)
        .map(|s| Expected {
            labels: labels_of(&t, &s.labels),
            value: s.value,
        })
        .collect();
    assert!(
        !exp.is_empty(),
        "{metric} not 1 in {case}: {:?}",
        file.samples
    );
    let fire = group(&[one(case, file)], alert, fire_at, &exp);
    let healthy = silent(&[one("healthy", &f.healthy)], alert, fire_at);
    let renewed = silent(&[one("renewed", &f.renewed)], alert, fire_at);
    let mut groups = vec![fire, healthy, renewed];
    if fire_at > 5 {
        groups.push(silent(&[one(case, file)], alert, 1));
    }
    check(alert, groups);
}

#[test]
fn restart_budget_exhausted() {
    let f = Fleet::get();
    gauge_alert(
        "KubeadmCertdRestartBudgetExhausted",
        "kubeadm_certd_restart_budget_exhausted",
        "budget-spent",
        &f.budget_spent,
        5,
    );
    assert_eq!(
        f.budget_spent
            .matching("kubeadm_certd_restarts_total", &[])
            .iter()
            .map(|s| s.value)
            .sum::<f64>(),
        0.0,
        "a spent budget restarted something"
    );
}

#[test]
fn renewal_blocked_by_ca() {
    let f = Fleet::get();
    gauge_alert(
        "KubeadmCertdRenewalBlockedByCA",
        "kubeadm_certd_renewal_blocked_by_ca",
        "ca-blocked",
        &f.ca_blocked,
        70,
    );
}

#[test]
fn clock_deferred() {
    let f = Fleet::get();
    gauge_alert(
        "KubeadmCertdClockDeferred",
        "kubeadm_certd_clock_deferred",
        "clock-behind",
        &f.clock_behind,
        40,
    );
}

#[test]
fn restart_rolled_back() {
    let f = Fleet::get();
    let a = "KubeadmCertdRestartRolledBack";
    let t = one("rolled-back", &f.rolled_back);
    let exp: Vec<Expected> = counter(
        &t,
        0,
        "kubeadm_certd_restarts_total",
        &[("result", "failed")],
    )
    .into_iter()
    .filter(|e| e.value > 0.0)
    .collect();
    assert!(
        !exp.is_empty(),
        "no failed restart in {:?}",
        f.rolled_back.samples
    );
    let fire = group(&[one("rolled-back", &f.rolled_back)], a, 10, &exp);
    let later = silent(&[one("rolled-back", &f.rolled_back)], a, 200);
    let renewed = silent(&[one("renewed", &f.renewed)], a, 10);
    check(a, vec![fire, later, renewed]);
}

#[test]
fn not_scanning() {
    let f = Fleet::get();
    let a = "KubeadmCertdNotScanning";
    // The daemon stopped after its scan at minute 0; node_exporter keeps exporting the file.
    let t = one("healthy", &f.healthy);
    let s = f
        .healthy
        .one("kubeadm_certd_last_scan_timestamp_seconds", &[]);
    let exp = [Expected {
        labels: labels_of(&t, &s.labels),
        value: 200.0 * 60.0,
    }];
    let fire = group(&[t], a, 200, &exp);
    // 2 hours (< 3 x checkInterval), and 3h05 (over, but not yet for 15 minutes).
    let fresh = silent(&[one("healthy", &f.healthy)], a, 120);
    let pending = silent(&[one("healthy", &f.healthy)], a, 185);
    check(a, vec![fire, fresh, pending]);
}

#[test]
fn metrics_missing() {
    let f = Fleet::get();
    let a = "KubeadmCertdMetricsMissing";
    // A second node_exporter target, up, whose node has no kubeadm-certd textfile.
    let empty: &'static Textfile = Box::leak(Box::default());
    let bare = || Timeline::new("worker", &[(0, empty)]);
    let exp = [Expected {
        labels: labels_of(&bare(), &Labels::new()),
        value: 1.0,
    }];
    let fire = group(&[one("healthy", &f.healthy), bare()], a, 40, &exp);
    let pending = silent(&[one("healthy", &f.healthy), bare()], a, 20);
    let ok = silent(&[one("healthy", &f.healthy)], a, 40);
    check(a, vec![fire, pending, ok]);
}

#[test]
fn ca_runway_low() {
    let f = Fleet::get();
    let a = "KubeadmCertdCARunwayLow";
    let t = one("ca-short", &f.ca_short);
    let cas = [
        "/etc/kubernetes/pki/ca.crt",
        "/etc/kubernetes/pki/etcd/ca.crt",
        "/etc/kubernetes/pki/front-proxy-ca.crt",
    ];
    let fire = group(
        &[one("ca-short", &f.ca_short)],
        a,
        70,
        &certs(&t, 0, &cas, 70, false),
    );
    let healthy = silent(&[one("healthy", &f.healthy)], a, 70);
    check(a, vec![fire, healthy]);
}

#[test]
fn kubelet_client_cert_expiring() {
    let f = Fleet::get();
    let a = "KubeadmCertdKubeletClientCertExpiring";
    let t = one("renewed", &f.renewed);
    let fire = group(
        &[one("renewed", &f.renewed)],
        a,
        70,
        &certs(&t, 0, &[KUBELET_CLIENT], 70, false),
    );
    let healthy = silent(&[one("healthy", &f.healthy)], a, 70);
    check(a, vec![fire, healthy]);
}

/// Every rule of the groups `pick` selects: (expressions, label and annotation templates).
fn rule_texts(pick: impl Fn(&str) -> bool) -> (Vec<String>, Vec<String>, BTreeSet<String>) {
    let (mut exprs, mut templates, mut recorded) = (Vec::new(), Vec::new(), BTreeSet::new());
    for g in rules()["groups"].as_array().unwrap() {
        if !pick(g["name"].as_str().unwrap()) {
            continue;
        }
        for r in g["rules"].as_array().unwrap() {
            exprs.push(r["expr"].as_str().unwrap().to_string());
            if let Some(name) = r["record"].as_str() {
                recorded.insert(name.to_string());
            }
            for k in ["labels", "annotations"] {
                if let Some(m) = r[k].as_object() {
                    templates.extend(m.values().filter_map(|v| v.as_str().map(String::from)));
                }
            }
        }
    }
    (exprs, templates, recorded)
}

const COORDINATION: &str = "kubeadm-certd-coordination";

#[test]
fn rules_use_only_what_the_binary_writes() {
    let (exprs, templates, _) = rule_texts(|g| g != COORDINATION);
    let (_, _, mut allowed) = rule_texts(|_| true);
    // node_exporter's own target health, used to find nodes without kubeadm-certd metrics.
    allowed.insert("up".into());
    assert!(exprs.len() > 10, "{exprs:?}");
    let bad = unknown_names(&exprs, &templates, &allowed);
    assert!(bad.is_empty(), "not in the binary's textfile: {bad:#?}");
}

/// The names #11 adds, written by a coordinated node of the fleet.
#[test]
fn coordination_names_exist_in_the_textfile() {
    let f = Fleet::get();
    for name in [
        "kubeadm_certd_lock_wait_seconds",
        "kubeadm_certd_lock_held",
        "kubeadm_certd_halt_present",
        "kubeadm_certd_etcd_members_healthy",
    ] {
        assert!(
            !f.coordinated.matching(name, &[]).is_empty(),
            "{name} missing from a coordinated node's textfile"
        );
    }
    assert_eq!(
        f.coordinated
            .one("kubeadm_certd_etcd_members_healthy", &[])
            .value,
        0.0,
        "no etcd member answers in this node"
    );
    let (exprs, templates, _) = rule_texts(|g| g == COORDINATION);
    let (_, _, allowed) = rule_texts(|_| true);
    assert!(!exprs.is_empty());
    let bad = unknown_names(&exprs, &templates, &allowed);
    assert!(bad.is_empty(), "not in the binary's textfile: {bad:#?}");
}

#[test]
fn coordination_alerts_promtool_unit_tests() {
    if !require_promtool() {
        return;
    }
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/monitoring/coordination.test.yaml");
    let out = promtool(&["test", "rules", f.to_str().unwrap()]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn dashboard_promql_parses_and_uses_only_what_the_binary_writes() {
    let d = dashboard();
    let mut exprs = Vec::new();
    strings_of(&d["panels"], "expr", &mut exprs);
    assert!(exprs.len() >= 8, "{exprs:?}");
    let exprs: Vec<String> = exprs.iter().map(|e| as_promql(e)).collect();
    // The node variable: label_values(METRIC, LABEL).
    let q = d["templating"]["list"][1]["query"]["query"]
        .as_str()
        .unwrap();
    let (metric, label) = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|r| r.split_once(", "))
        .unwrap_or_else(|| panic!("{q}"));
    let mut checked = exprs.clone();
    checked.push(format!("count by ({label}) ({metric})"));
    let mut legends = Vec::new();
    strings_of(&d["panels"], "legendFormat", &mut legends);
    let bad = unknown_names(&checked, &legends, &BTreeSet::new());
    assert!(bad.is_empty(), "not in the binary's textfile: {bad:#?}");

    // Every expression through promtool's parser, as recording rules of a temporary file.
    if !require_promtool() {
        return;
    }
    let rules: Vec<serde_json::Value> = checked
        .iter()
        .enumerate()
        .map(|(i, e)| serde_json::json!({"record": format!("dashboard:expr_{i}"), "expr": e}))
        .collect();
    let doc = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("dashboard.rules.yaml");
    std::fs::write(&p, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let out = promtool(&["check", "rules", p.to_str().unwrap()]);
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", checked.len())),
        "{out}"
    );
}

#[test]
fn every_alert_has_annotations_and_a_runbook_section() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring/README.md"))
            .unwrap();
    let mut n = 0;
    for g in rules()["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let Some(alert) = r["alert"].as_str() else {
                continue;
            };
            n += 1;
            let a = &r["annotations"];
            for k in ["summary", "description"] {
                assert!(a[k].as_str().is_some_and(|s| s.len() > 20), "{alert}: {k}");
            }
            assert!(["warning", "critical"].contains(&r["labels"]["severity"].as_str().unwrap()));
            assert_eq!(
                a["runbook"].as_str(),
                Some(format!("README.md#{}", alert.to_lowercase()).as_str()),
                "{alert}"
            );
            // GitHub's anchor of "### AlertName" is its lower-case name.
            let head = format!("\n### {alert}\n");
            let at = readme
                .find(&head)
                .unwrap_or_else(|| panic!("no runbook {head:?}"));
            let section = readme[at + head.len()..].split("\n### ").next().unwrap();
            for part in ["Meaning", "Check", "Do"] {
                assert!(
                    section.contains(&format!("**{part}**")),
                    "{alert}: no {part}"
                );
            }
            assert!(
                section.contains("journalctl") || section.contains("kubeadm-certd "),
                "{alert}"
            );
        }
    }
    assert_eq!(n, 16);
}

/// The approver's series (issue 17), written by a real daemon on a control-plane node whose
/// API does not answer, and by one whose approver left a CSR pending against the stand-in
/// kube-apiserver; the CSR alert fires on the latter once the CSR is 15 minutes old, and
/// stays silent on the others.
#[test]
fn approver_series_exist_in_the_textfile() {
    let f = Fleet::get();
    for name in [
        "kubeadm_certd_csr_approved_total",
        "kubeadm_certd_csr_pending_stale",
        "kubeadm_certd_api_reachable",
    ] {
        assert!(
            !f.approver.matching(name, &[]).is_empty(),
            "{name} missing from the approver node's textfile"
        );
    }
    assert_eq!(
        f.approver.one("kubeadm_certd_api_reachable", &[]).value,
        0.0
    );
    assert_eq!(
        f.approver.one("kubeadm_certd_csr_pending_stale", &[]).value,
        0.0
    );
    // Nodes without a Kubernetes client write none of them.
    assert!(f
        .healthy
        .matching("kubeadm_certd_api_reachable", &[])
        .is_empty());
    let [fresh, stale, decided] = &f.csr;
    assert_eq!(fresh.one("kubeadm_certd_api_reachable", &[]).value, 1.0);
    assert_eq!(stale.one("kubeadm_certd_csr_pending_stale", &[]).value, 1.0);
    assert_eq!(
        decided.one("kubeadm_certd_csr_approved_total", &[]).value,
        0.0
    );
    let a = "KubeadmCertdCSRPendingTooLong";
    // The CSR is created at minute 0 and counts as stale (over 5 minutes) from minute 5.
    let pending = || Timeline::new("cp1", &[(0, fresh), (5, stale)]);
    let t = pending();
    let exp = vec![Expected {
        labels: labels_of(&t, &Labels::new()),
        value: 1.0,
    }];
    let fire = group(&[t], a, 16, &exp);
    // Pending 5 + 9 minutes: not yet.
    let early = silent(&[pending()], a, 14);
    // Approved by someone else after 12 minutes: never fires.
    let decided_in_time = silent(
        &[Timeline::new(
            "cp1",
            &[(0, fresh), (5, stale), (12, decided)],
        )],
        a,
        30,
    );
    let unreachable = silent(&[one("approver", &f.approver)], a, 30);
    check(a, vec![fire, early, decided_in_time, unreachable]);
}

#[test]
fn ca_rotation_stalled() {
    let f = Fleet::get();
    let a = "KubeadmCertdCARotationStalled";
    let name = "kubeadm_certd_ca_rotation_last_progress_timestamp_seconds";
    let t = one("rotating", &f.rotating);
    let s = f.rotating.one(name, &[("ca", "etcd-ca")]);
    assert_eq!(
        f.rotating
            .one("kubeadm_certd_ca_rotation_phase", &[("ca", "etcd-ca")])
            .value,
        1.0,
        "trust-both"
    );
    assert_eq!(
        f.rotating
            .one("kubeadm_certd_ca_rotation_progress", &[("ca", "etcd-ca")])
            .value,
        0.0
    );
    // Since the last progress, as the test clock sees it at minute 40.
    let since = 40.0 * 60.0 - t.value(0, name, s.value);
    let exp = [Expected {
        labels: labels_of(&t, &s.labels),
        value: since,
    }];
    let fire = group(&[t], a, 40, &exp);
    // 20 minutes without progress is not yet a stall; no rotation is never one.
    let early = silent(&[one("rotating", &f.rotating)], a, 20);
    let none = silent(&[one("healthy", &f.healthy)], a, 40);
    assert_eq!(
        f.healthy
            .one("kubeadm_certd_ca_rotation_phase", &[("ca", "etcd-ca")])
            .value,
        0.0
    );
    check(a, vec![fire, early, none]);
}
