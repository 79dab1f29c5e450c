//! Static-pod restarts with a real etcd (Debian etcd-server) among the components: `renew all`
//! restarts the four components once each, in order, and each serves or loaded the renewed
//! files; `renew etcd-server` restarts etcd alone.

#[path = "support/kubelet.rs"]
mod kubelet;
mod restart_support;
mod support;

use kubelet::EventKind;
use restart_support::*;

fn etcd_node() -> Option<Node> {
    if !support::etcd::require_etcd() {
        eprintln!("etcd/etcdctl not installed; skipping");
        return None;
    }
    Some(Node::build(NodeOpts {
        etcd: true,
        ..NodeOpts::default()
    }))
}

/// `etcdctl endpoint health` against the node's etcd with the node's healthcheck-client cert.
fn etcd_health(node: &Node) -> bool {
    let pki = node.host("/etc/kubernetes/pki/etcd");
    support::etcd::etcdctl_health(
        &format!("https://127.0.0.1:{}", node.ports.etcd_client),
        &pki.join("ca.crt"),
        &pki.join("healthcheck-client.crt"),
        &pki.join("healthcheck-client.key"),
    )
    .expect("run etcdctl")
}

#[test]
fn renew_all_restarts_each_component_once_in_order_with_proof() {
    let Some(node) = etcd_node() else { return };
    let h = node.kubelet();
    node.wait_healthy(&h);
    assert!(etcd_health(&node), "etcd answers before the renewal");
    let old: Vec<_> = ORDER
        .iter()
        .map(|c| node.process(&h, c).expect("running"))
        .collect();
    let etcd_cert = "/etc/kubernetes/pki/etcd/server.crt";
    let api_cert = "/etc/kubernetes/pki/apiserver.crt";
    let hc_cert = "/etc/kubernetes/pki/etcd/healthcheck-client.crt";
    let (old_etcd, old_api, old_hc) = (
        node.cert_der(etcd_cert),
        node.cert_der(api_cert),
        node.cert_der(hc_cert),
    );
    assert_eq!(node.served_cert(node.ports.etcd_client), old_etcd);
    assert_eq!(node.served_cert(node.ports.apiserver), old_api);
    let old_confs: Vec<String> = [
        "/etc/kubernetes/controller-manager.conf",
        "/etc/kubernetes/scheduler.conf",
    ]
    .iter()
    .map(|p| node.read(p))
    .collect();
    let mark = h.events().len();
    let mon = Monitor::start(node.probes());

    let out = node.run(&["renew", "all"]);
    let outages = mon.finish();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        h.all_logs()
    );

    // Each once, in order, one at a time.
    assert_eq!(
        started_after(&h, mark),
        ORDER,
        "{:?}",
        events_after(&h, mark)
    );
    let ev = events_after(&h, mark);
    let idx = |kind: EventKind, c: &str| {
        let f = format!("{c}.yaml");
        ev.iter()
            .position(|e| e.kind == kind && e.file == f)
            .expect("event")
    };
    for w in ORDER.windows(2) {
        assert!(
            idx(EventKind::Started, w[0]) < idx(EventKind::Stopped, w[1]),
            "{} stopped before {} was back: {ev:?}",
            w[1],
            w[0]
        );
    }
    for (c, old) in ORDER.iter().zip(&old) {
        let new = node.process(&h, c).expect("running");
        assert_replaced(c, old, &new);
        assert!(node.healthy(c), "{c} probe");
    }

    // etcd serves its renewed certificate and accepts the renewed healthcheck-client one.
    let new_hc = node.cert_der(hc_cert);
    assert_ne!(new_hc, old_hc, "healthcheck-client was renewed");
    let new_etcd = node.cert_der(etcd_cert);
    assert_ne!(new_etcd, old_etcd);
    assert_eq!(
        node.served_cert(node.ports.etcd_client),
        new_etcd,
        "etcd serves the renewed server.crt"
    );
    assert!(
        etcd_health(&node),
        "TLS handshake with the renewed healthcheck-client cert"
    );
    // The apiserver serves its renewed certificate and loaded its renewed client certs.
    let new_api = node.cert_der(api_cert);
    assert_ne!(new_api, old_api);
    assert_eq!(node.served_cert(node.ports.apiserver), new_api);
    for c in &ORDER[1..] {
        let pid = node.process(&h, c).expect("running").pid;
        let loaded = node.loaded(c, pid);
        assert!(!loaded.is_empty());
        for (path, content) in loaded {
            assert_eq!(content, node.read(&path), "{c} loaded a stale {path}");
        }
    }
    let new_confs: Vec<String> = [
        "/etc/kubernetes/controller-manager.conf",
        "/etc/kubernetes/scheduler.conf",
    ]
    .iter()
    .map(|p| node.read(p))
    .collect();
    assert_ne!(new_confs[0], old_confs[0]);
    assert_ne!(new_confs[1], old_confs[1]);

    print_downtime(&outages, &ORDER);
    let err = String::from_utf8_lossy(&out.stderr);
    for c in ORDER {
        let r = reported_downtime(&err, c);
        assert!(r.is_some(), "no downtime reported for {c}:\n{err}");
        println!(
            "REPORTED component={c} seconds={:.1} (kubeadm-certd's own figure: park to healthy)",
            r.unwrap_or_default()
        );
    }
}

#[test]
fn renew_etcd_server_restarts_only_etcd() {
    let Some(node) = etcd_node() else { return };
    let h = node.kubelet();
    node.wait_healthy(&h);
    let old: Vec<_> = ORDER
        .iter()
        .map(|c| node.process(&h, c).expect("running"))
        .collect();
    let mark = h.events().len();
    let out = node.run(&["renew", "etcd-server"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        started_after(&h, mark),
        ["etcd"],
        "{:?}",
        events_after(&h, mark)
    );
    assert_replaced("etcd", &old[0], &node.process(&h, "etcd").expect("running"));
    for (c, o) in ORDER.iter().zip(&old).skip(1) {
        assert_eq!(node.process(&h, c).as_ref(), Some(o), "{c} restarted");
    }
    assert_eq!(
        node.served_cert(node.ports.etcd_client),
        node.cert_der("/etc/kubernetes/pki/etcd/server.crt")
    );
    assert!(etcd_health(&node));
}
