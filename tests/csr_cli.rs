//! `csr list [-o json]` and `csr approve NAME...` against the stand-in kube-apiserver (issue
//! 17): what an operator sees, exit codes, approval only of CSRs that pass every rule, and
//! SIGTERM while the API hangs.

mod support;

use std::time::Duration;
use support::kube::{Cluster, Proc, CSRS};

fn cluster() -> Cluster {
    let c = Cluster::new(300);
    c.good_csr("csr-good", "w1");
    c.kubelet_csr("csr-steal", "w2", &["w2"], &["127.0.0.2"]);
    c.good_csr("csr-done", "w2");
    c.api
        .set_condition("csr-done", "Approved", "Other", "by someone else")
        .unwrap();
    c.kubelet_csr("csr-denied", "w1", &["w1"], &["127.0.0.2"]);
    c.api
        .set_condition("csr-denied", "Denied", "Other", "by someone else")
        .unwrap();
    c.other_signer_csr("csr-client", "w1");
    c
}

#[test]
fn list_shows_every_kubelet_serving_csr_with_its_rules() {
    let c = cluster();
    let (code, out, err) = c.cli(&["csr", "list"]);
    eprintln!("{out}\n{err}");
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let head = lines[0];
    for col in ["NAME", "AGE", "REQUESTOR", "STATE", "SANS", "RULES"] {
        assert!(head.contains(col), "{head}");
    }
    let row = |n: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(&format!("{n} ")))
            .unwrap_or_else(|| panic!("no row {n}: {out}"))
    };
    let good = row("csr-good");
    assert!(
        good.contains("system:node:w1")
            && good.contains("Pending")
            && good.contains("w1,127.0.0.2")
            && good.ends_with("approvable"),
        "{good}"
    );
    let steal = row("csr-steal");
    assert!(
        steal.ends_with("rule (f) ip-sans: IP SAN 127.0.0.2 belongs to node w1"),
        "{steal}"
    );
    let done = row("csr-done");
    assert!(
        done.contains("Approved") && done.ends_with("decided; the other rules pass"),
        "{done}"
    );
    let denied = row("csr-denied");
    assert!(
        denied.contains("Denied") && denied.ends_with("decided; the other rules pass"),
        "{denied}"
    );
    // A decided CSR that our rules would refuse says so.
    c.kubelet_csr("csr-odd", "w2", &["w2"], &["127.0.0.2"]);
    c.api
        .set_condition("csr-odd", "Approved", "Other", "by someone else")
        .unwrap();
    let (_, out2, _) = c.cli(&["csr", "list"]);
    let odd = out2.lines().find(|l| l.starts_with("csr-odd ")).unwrap();
    assert!(
        odd.ends_with("decided; would fail rule (f) ip-sans: IP SAN 127.0.0.2 belongs to node w1"),
        "{odd}"
    );
    assert!(!out.contains("csr-client"), "another signer's CSR listed");
    // Each CSR's rules, one line each, below the table.
    let detail = out.split("\ncsr-steal:\n").nth(1).unwrap();
    for r in kubeadm_certd::plan::approve::Rule::ALL.map(|r| r.label()) {
        assert!(detail.contains(r), "{r} missing: {detail}");
    }
    // A decided CSR's rule (a) gives the decision, not a failure.
    let done = out
        .split("\ncsr-done:\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    assert!(
        done.contains("  (a) signer: n/a: decided: Approved by Other\n"),
        "{done}"
    );
    assert!(!done.contains("FAIL"), "{done}");
    // Read-only.
    assert!(c.writes().is_empty());
}

#[test]
fn list_json_gives_each_rule_s_result() {
    let c = cluster();
    let (code, out, err) = c.cli(&["csr", "list", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["nodes"], 3);
    let items = doc["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["csr-denied", "csr-done", "csr-good", "csr-steal"]);
    let steal = &items[3];
    assert_eq!(steal["requestor"], "system:node:w2");
    assert_eq!(steal["state"], "Pending");
    assert_eq!(steal["approvable"], false);
    assert_eq!(steal["sans"], serde_json::json!(["w2", "127.0.0.2"]));
    let created = steal["created"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");
    let ip = steal["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "ip-sans")
        .unwrap();
    assert_eq!(ip["result"], "fail", "{ip}");
    assert!(ip["message"].as_str().unwrap().contains("127.0.0.2"));
    assert_eq!(items[0]["state"], "Denied");
    // Decided: rule (a) is the decision, not a failure; still not approvable.
    let signer = &items[0]["rules"][0];
    assert_eq!(signer["rule"], "signer");
    assert_eq!(signer["result"], "not-applicable", "{signer}");
    assert_eq!(signer["message"], "decided: Denied by Other");
    assert_eq!(items[0]["approvable"], false);
    assert_eq!(items[2]["approvable"], true);
    assert_eq!(items[2]["rules"].as_array().unwrap().len(), 8);
}

#[test]
fn approve_approves_only_what_passes_and_exits_1_for_the_rest() {
    let c = cluster();
    let (code, out, err) = c.cli(&[
        "csr",
        "approve",
        "csr-good",
        "csr-steal",
        "csr-done",
        "csr-denied",
        "csr-nope",
    ]);
    eprintln!("{out}\n{err}");
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "approved csr-good (system:node:w1)",
            "refused csr-steal: rule (f) ip-sans: IP SAN 127.0.0.2 belongs to node w1",
            "csr-done is already decided: Approved",
            "refused csr-denied: it is already Denied, and a decided CSR cannot be approved",
            "refused csr-nope: no kubelet serving CSR of that name",
        ]
    );
    assert!(err.contains("3 of 5 CSR(s) not approved"), "{err}");
    assert_eq!(c.state("csr-good"), "Approved");
    let cond = &c.conditions("csr-good")[0];
    assert_eq!(cond["reason"], "KubeadmCertdApprove");
    assert!(cond["message"]
        .as_str()
        .unwrap()
        .starts_with("approved by kubeadm-certd on cp1: (a) signer ok"));
    assert_eq!(c.state("csr-steal"), "Pending");
    let writes = c.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].path_only(), format!("{CSRS}/csr-good/approval"));
    // All good: exit 0.
    c.good_csr("csr-w2", "w2");
    let (code, out, _) = c.cli(&["csr", "approve", "csr-w2"]);
    assert_eq!((code, out.trim()), (0, "approved csr-w2 (system:node:w2)"));
}

#[test]
fn without_a_kubeconfig_or_an_api_the_csr_commands_say_so() {
    let c = cluster();
    c.api.set_down(true);
    let (code, out, err) = c.cli(&["csr", "list"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    let line = err
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>();
    assert_eq!(line.len(), 1, "{err}");
    assert!(
        line[0].contains("is unreachable") && line[0].contains("Connection refused"),
        "{err}"
    );
    std::fs::remove_file(c.root().join(support::kube::ADMIN_CONF)).unwrap();
    let (code, _, err) = c.cli(&["csr", "approve", "x"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/etc/kubernetes/admin.conf does not exist here"),
        "{err}"
    );
}

#[test]
fn sigterm_while_the_api_hangs_ends_csr_list_within_1s() {
    let c = cluster();
    c.api.hang(CSRS, true);
    let mut p = Proc::start(c.root(), None, &["csr", "list"]);
    assert!(c
        .api
        .wait_request(Duration::from_secs(10), |r| r.status == 0)
        .is_some());
    let (took, code) = p.term();
    let took = took.expect("still running 10 s after SIGTERM");
    eprintln!("csr list exited {} ms after SIGTERM", took.as_millis());
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_ne!(code, Some(0));
    assert!(p.log().contains("interrupted"), "{}", p.log());
    eprintln!("{}", p.log());
}
