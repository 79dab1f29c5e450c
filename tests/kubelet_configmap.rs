//! `kubelet-serving-certs enable|disable` and the cluster's kubelet-config ConfigMap, against
//! the stand-in kube-apiserver (issue 17, item 5): one key changes and every other byte of
//! the embedded KubeletConfiguration stays; the write carries the resourceVersion read and a
//! 409 is retried; `--node-only` does not touch the API; with the API down the node part is
//! done, the cluster part recorded as pending and done by the daemon once the API answers
//! (also by a daemon already running); the versioned name of old clusters.

mod support;

use kubeadm_certd::logging;
use std::time::Duration;
use support::kube::{wait_for, Cluster, Proc, APPROVER_ON};

const CM: &str = "/api/v1/namespaces/kube-system/configmaps/kubelet-config";
const PENDING: &str = "var/lib/kubeadm-certd/kubelet-config-pending.json";

/// The kubelet-config ConfigMap as kubeadm uploads it: the node's KubeletConfiguration with a
/// comment and a second key that must survive, seeded into the stand-in. Its text.
fn seed(c: &Cluster, name: &str) -> String {
    let node = std::fs::read_to_string(c.root().join("var/lib/kubelet/config.yaml")).unwrap();
    let text = format!("# managed by kubeadm; edited by hand too\n{node}");
    c.api.put_configmap(
        "kube-system",
        name,
        &[("kubelet", &text), ("other", "keep: me\n")],
    );
    text
}

fn kubelet_text(c: &Cluster, name: &str) -> String {
    c.api.configmap("kube-system", name).unwrap()["data"]["kubelet"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Lines of `new` not in `old`, and of `old` not in `new`, compared line by line in order.
fn changed_lines(old: &str, new: &str) -> (Vec<String>, Vec<String>) {
    let (o, n): (Vec<&str>, Vec<&str>) = (
        old.split_inclusive('\n').collect(),
        new.split_inclusive('\n').collect(),
    );
    let added = n
        .iter()
        .filter(|l| !o.contains(l))
        .map(|l| l.to_string())
        .collect();
    let removed = o
        .iter()
        .filter(|l| !n.contains(l))
        .map(|l| l.to_string())
        .collect();
    (added, removed)
}

fn cm_calls(c: &Cluster) -> Vec<String> {
    c.api
        .requests()
        .iter()
        .filter(|r| {
            r.path_only()
                .starts_with("/api/v1/namespaces/kube-system/configmaps")
        })
        .map(|r| {
            format!(
                "{} {} {}",
                r.method,
                r.path_only().rsplit('/').next().unwrap(),
                r.status
            )
        })
        .collect()
}

#[test]
fn enable_changes_one_line_of_the_configmap_and_disable_puts_it_back() {
    let c = Cluster::new(300);
    let before = seed(&c, "kubelet-config");
    let (code, out, err) = c.cli(&["kubelet-serving-certs", "enable", "--no-restart"]);
    eprintln!("{out}\n{err}");
    assert_eq!(code, 0, "{out}{err}");
    let after = kubelet_text(&c, "kubelet-config");
    // One line added, every other byte as it was, in the same order.
    let (added, removed) = changed_lines(&before, &after);
    assert_eq!(added, ["serverTLSBootstrap: true\n"]);
    assert!(removed.is_empty());
    assert_eq!(after.replace("serverTLSBootstrap: true\n", ""), before);
    let cm = c.api.configmap("kube-system", "kubelet-config").unwrap();
    assert_eq!(cm["data"]["other"], "keep: me\n");
    assert!(
        out.contains("Set serverTLSBootstrap: true in ConfigMap kube-system/kubelet-config"),
        "{out}"
    );
    assert!(
        out.contains("+serverTLSBootstrap: true"),
        "the diff is shown: {out}"
    );
    // Read, then written with the resourceVersion read.
    assert_eq!(
        cm_calls(&c),
        ["GET kubelet-config 200", "PUT kubelet-config 200"]
    );
    let put = c
        .api
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&put.body).unwrap();
    assert!(body["metadata"]["resourceVersion"].is_string(), "{body}");
    assert!(!c.root().join(PENDING).exists());
    // Again: nothing to do, nothing written.
    c.api.clear_requests();
    let (code, out, _) = c.cli(&["kubelet-serving-certs", "enable", "--no-restart"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("serverTLSBootstrap is already true in ConfigMap kube-system/kubelet-config"),
        "{out}"
    );
    assert!(c.writes().is_empty());
    // disable: the same line now says false; the rest stays.
    let (code, _, err) = c.cli(&["kubelet-serving-certs", "disable", "--no-restart"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        kubelet_text(&c, "kubelet-config").replace("serverTLSBootstrap: false\n", ""),
        before
    );
}

#[test]
fn a_409_is_retried_with_a_fresh_read() {
    let c = Cluster::new(300);
    let before = seed(&c, "kubelet-config");
    // Someone else writes the ConfigMap between our read and our write, twice.
    c.api.conflict_next("PUT", CM, 2);
    let (code, out, err) = c.cli(&["kubelet-serving-certs", "enable", "--no-restart"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        cm_calls(&c),
        [
            "GET kubelet-config 200",
            "PUT kubelet-config 409",
            "GET kubelet-config 200",
            "PUT kubelet-config 409",
            "GET kubelet-config 200",
            "PUT kubelet-config 200"
        ]
    );
    assert_eq!(
        kubelet_text(&c, "kubelet-config").replace("serverTLSBootstrap: true\n", ""),
        before
    );
}

#[test]
fn node_only_does_not_touch_the_api() {
    let c = Cluster::new(300);
    let before = seed(&c, "kubelet-config");
    let (code, out, err) = c.cli(&[
        "kubelet-serving-certs",
        "enable",
        "--no-restart",
        "--node-only",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let node = std::fs::read_to_string(c.root().join("var/lib/kubelet/config.yaml")).unwrap();
    assert!(node.contains("serverTLSBootstrap: true"));
    assert!(c.api.requests().is_empty(), "{:?}", c.api.requests());
    assert_eq!(kubelet_text(&c, "kubelet-config"), before);
}

/// The daemon `d` runs while the API is down and a value is pending: once it has said so,
/// the API comes back; the ConfigMap gets the key (one line, every other byte as `before`),
/// the pending file goes, and the daemon said "pending", "set" and "API unreachable" once
/// each. Returns the "API unreachable" line.
fn api_back_the_daemon_sets_it_once(c: &Cluster, d: &mut Proc, before: &str) -> String {
    assert!(
        d.wait_log(
            logging::MSG_KUBELET_CONFIGMAP_PENDING,
            Duration::from_secs(10)
        ),
        "the daemon did not say the value is pending: {}",
        d.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    c.api.set_down(false);
    assert!(
        wait_for(Duration::from_secs(30), || kubelet_text(
            c,
            "kubelet-config"
        )
        .contains("serverTLSBootstrap: true")),
        "{}",
        d.log()
    );
    assert!(wait_for(Duration::from_secs(5), || !c
        .root()
        .join(PENDING)
        .exists()));
    d.term();
    assert_eq!(
        kubelet_text(c, "kubelet-config").replace("serverTLSBootstrap: true\n", ""),
        before
    );
    for id in [
        logging::MSG_KUBELET_CONFIGMAP_PENDING,
        logging::MSG_KUBELET_CONFIGMAP_SET,
        logging::MSG_API_UNREACHABLE,
    ] {
        assert_eq!(d.with_id(id).len(), 1, "{id}: {}", d.log());
    }
    d.with_id(logging::MSG_API_UNREACHABLE).remove(0)
}

#[test]
fn api_down_the_node_part_is_done_and_the_daemon_does_the_cluster_part_later() {
    let c = Cluster::new(300);
    let before = seed(&c, "kubelet-config");
    c.api.set_down(true);
    let (code, out, err) = c.cli(&["kubelet-serving-certs", "enable", "--no-restart"]);
    eprintln!("{out}\n{err}");
    assert_eq!(code, 0, "{out}{err}");
    let node = std::fs::read_to_string(c.root().join("var/lib/kubelet/config.yaml")).unwrap();
    assert!(node.contains("serverTLSBootstrap: true"));
    assert!(
        out.contains("The cluster part is pending: the API server at https://127.0.0.1:"),
        "{out}"
    );
    assert!(c.root().join(PENDING).exists());
    // The daemon (approver off, no kubelet setting: only the pending file asks for it)
    // waits for the API, then sets the ConfigMap and forgets the pending file.
    let cfg = APPROVER_ON.replace("mode: on", "mode: off");
    let mut d = Proc::daemon(&c, &cfg);
    let down = api_back_the_daemon_sets_it_once(&c, &mut d, &before);
    // What waits: the ConfigMap and the ClusterConfiguration, not the approver.
    assert!(
        down.contains("serverTLSBootstrap: true in the cluster's kubelet-config ConfigMap and reading the cluster's ClusterConfiguration")
            && !down.contains("approving"),
        "{down}"
    );
    // The approver was off: no CSR was listed.
    assert!(c
        .api
        .requests()
        .iter()
        .all(|r| !r.path.contains("certificatesigningrequests")));
}

/// The same with the daemon already running: it takes the pending value up after the cycle
/// the node file's change starts (not only at its next start or reload), and sets it once the
/// API answers. Its one "API unreachable" line names what waits: not the approver, which is
/// off here.
#[test]
fn a_running_daemon_takes_up_a_value_left_pending() {
    let c = Cluster::new(300);
    let before = seed(&c, "kubelet-config");
    c.api.set_down(true);
    let cfg = APPROVER_ON.replace("mode: on", "mode: off");
    let mut d = Proc::daemon(&c, &cfg);
    assert!(
        d.wait_log(logging::MSG_API_UNREACHABLE, Duration::from_secs(10)),
        "{}",
        d.log()
    );
    let (code, out, err) = c.cli(&["kubelet-serving-certs", "enable", "--no-restart"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("The cluster part is pending"), "{out}");
    let down = api_back_the_daemon_sets_it_once(&c, &mut d, &before);
    assert!(
        down.contains("reading the cluster's ClusterConfiguration")
            && !down.contains("approving kubelet serving CSRs"),
        "{down}"
    );
}

#[test]
fn an_old_cluster_s_versioned_configmap_is_found_by_the_server_version() {
    let c = Cluster::new(300);
    c.api.set_version("v1.23.17");
    let before = seed(&c, "kubelet-config-1.23");
    let (code, out, err) = c.cli(&["kubelet-serving-certs", "enable", "--no-restart"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ConfigMap kube-system/kubelet-config-1.23"),
        "{out}"
    );
    assert_eq!(
        kubelet_text(&c, "kubelet-config-1.23").replace("serverTLSBootstrap: true\n", ""),
        before
    );
    assert_eq!(
        cm_calls(&c),
        [
            "GET kubelet-config 404",
            "GET kubelet-config-1.23 200",
            "PUT kubelet-config-1.23 200"
        ]
    );
}

#[test]
fn no_kubelet_configmap_at_all_is_one_clear_error_after_the_node_part() {
    let c = Cluster::new(300);
    let (code, out, err) = c.cli(&["kubelet-serving-certs", "enable", "--no-restart"]);
    assert_eq!(code, 1, "{out}{err}");
    let node = std::fs::read_to_string(c.root().join("var/lib/kubelet/config.yaml")).unwrap();
    assert!(node.contains("serverTLSBootstrap: true"));
    let errs: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errs.len(), 1, "{err}");
    assert!(errs[0].contains("no kubelet ConfigMap in kube-system (looked for kubelet-config and kubelet-config-1.34)"), "{err}");
}

#[test]
fn sigterm_while_the_configmap_read_hangs_exits_within_1s() {
    let c = Cluster::new(300);
    seed(&c, "kubelet-config");
    c.api.hang(CM, true);
    let mut p = Proc::start(
        c.root(),
        None,
        &["kubelet-serving-certs", "enable", "--no-restart"],
    );
    assert!(
        c.api
            .wait_request(Duration::from_secs(10), |r| r.status == 0)
            .is_some(),
        "{}",
        p.log()
    );
    let (took, _) = p.term();
    let took = took.expect("still running 10 s after SIGTERM");
    assert!(took < Duration::from_secs(1), "{took:?}");
}
