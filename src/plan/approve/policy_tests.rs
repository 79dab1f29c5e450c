//! The rules against the API server's names, the operator's policies, IPv6 forms, the flood
//! guard, rendering, and a property over random clusters.

use super::tests::{api, cluster, csr, eval, fails_only, host_cp1, ips};
use super::*;
use std::net::IpAddr;

#[test]
fn api_server_names_are_refused_unless_own() {
    // cp2's own address, in apiserver.crt on cp2's side: fine for the labelled control-plane
    // node, judged from anywhere.
    let mut a = api();
    a.ips.push("127.0.0.12".parse().unwrap());
    let v = evaluate(
        &csr("cp2", &["cp2", "cp2.example.com"], &["127.0.0.12"]),
        &cluster(),
        &a,
        Some(&host_cp1()),
        &Policy::default(),
    );
    assert!(v.approvable(), "{:#?}", v.lines());
    // A worker whose Node (written by its own kubelet) claims the VIP gets nothing.
    let mut nodes = cluster();
    nodes[2]
        .addresses
        .push(("InternalIP".into(), "127.0.0.100".into()));
    nodes[2]
        .addresses
        .push(("InternalDNS".into(), "k8s-api.example.com".into()));
    let run = |c: &CsrView, host: Option<&HostView>| {
        evaluate(c, &nodes, &api(), host, &Policy::default())
    };
    fails_only(
        &run(&csr("w1", &["w1"], &["127.0.0.100"]), None),
        Rule::IpSans,
        "IP SAN 127.0.0.100 is an address of the API server (apiserver.crt, the kubernetes Service or controlPlaneEndpoint), and Node w1 is not a control-plane node holding it",
    );
    fails_only(
        &run(&csr("w1", &["k8s-api.example.com"], &["127.0.0.21"]), None),
        Rule::DnsSans,
        "DNS SAN k8s-api.example.com is a name of the API server",
    );
    // A joining control-plane node not yet labelled: its own daemon, seeing the address on
    // its interfaces, may approve it; nobody else may.
    let mut nodes = cluster();
    nodes[0].control_plane = false;
    let c = csr("cp1", &["cp1"], &["127.0.0.11"]);
    let v = evaluate(&c, &nodes, &api(), Some(&host_cp1()), &Policy::default());
    assert!(v.approvable(), "{:#?}", v.lines());
    let v = evaluate(&c, &nodes, &api(), None, &Policy::default());
    fails_only(&v, Rule::IpSans, "is an address of the API server");
    // Another node's name that is also an API server name fails as another node's.
    fails_only(
        &eval(&csr("w1", &["cp1"], &["127.0.0.21"])),
        Rule::DnsSans,
        "DNS SAN cp1 belongs to node cp1",
    );
}

#[test]
fn prefix_and_pattern_policies() {
    let settings = crate::config::Settings::parse(
        "approver:\n  ipPrefixes: [127.0.0.16/28, \"fd00::/64\"]\n  dnsPattern: 'w[0-9]+(\\.example\\.com)?'\n",
    )
    .unwrap();
    let policy = Policy::from_settings(&settings.approver);
    let run = |c: &CsrView| evaluate(c, &cluster(), &api(), None, &policy);
    let v = run(&csr(
        "w1",
        &["w1", "W1.example.com."],
        &["127.0.0.21", "fd00::21"],
    ));
    assert!(v.approvable(), "{:#?}", v.lines());
    assert!(v.lines()[5].contains("within approver.ipPrefixes"));
    assert!(v.lines()[6].contains("matching approver.dnsPattern"));
    fails_only(
        &run(&csr("w1", &["w1"], &["127.0.0.121"])),
        Rule::IpSans,
        "IP SAN 127.0.0.121 is outside approver.ipPrefixes (127.0.0.16/28, fd00::/64)",
    );
    // The Node's own name, too, must match a pattern the operator set.
    let mut nodes = cluster();
    nodes[2]
        .addresses
        .push(("InternalDNS".into(), "w1.example.com.evil.org".into()));
    let v = evaluate(
        &csr("w1", &["w1.example.com.evil.org"], &["127.0.0.21"]),
        &nodes,
        &api(),
        None,
        &policy,
    );
    fails_only(
        &v,
        Rule::DnsSans,
        "DNS SAN w1.example.com.evil.org does not match approver.dnsPattern w[0-9]+(\\.example\\.com)?",
    );
}

#[test]
fn ipv6_forms_do_not_slip_past() {
    // Written differently from the Node's "fd00:0:0::21": the same address, w1's own.
    assert!(eval(&csr("w1", &["w1"], &["fd00::21"])).approvable());
    // w2's "fd00::22" asked as the long form.
    fails_only(
        &eval(&csr("w1", &["w1"], &["fd00:0000:0:0:0:0:0:22"])),
        Rule::IpSans,
        "IP SAN fd00::22 belongs to node w2",
    );
    // cp2's IPv4 address, mapped into IPv6.
    fails_only(
        &eval(&csr("w1", &["w1"], &["::ffff:127.0.0.12"])),
        Rule::IpSans,
        "IP SAN ::ffff:127.0.0.12 (127.0.0.12) belongs to node cp2",
    );
    // The Service IP, mapped.
    fails_only(
        &eval(&csr("w1", &["w1"], &["::ffff:10.96.0.1"])),
        Rule::IpSans,
        "is an address of the API server",
    );
    // A mapped form of the node's own address is its own address (Go treats them as equal).
    assert!(eval(&csr("w1", &["w1"], &["::ffff:127.0.0.21"])).approvable());
    // On the node itself, the mapped form is checked against the interfaces as IPv4.
    let v = eval(&csr("cp1", &["cp1"], &["::ffff:127.0.0.11"]));
    assert!(v.approvable(), "{:#?}", v.lines());
}

#[test]
fn flood_threshold_boundaries() {
    assert!(!flood(0, 0));
    assert!(!flood(100, 0));
    assert!(flood(101, 0));
    assert!(!flood(103, 3));
    assert!(flood(104, 3));
    assert!(!flood(usize::MAX, usize::MAX), "no overflow");
}

#[test]
fn endpoints_and_api_names() {
    let h = |s: &str| endpoint_host(s);
    let ip = |s: &str| Some(Host::Ip(s.parse().unwrap()));
    let name = |s: &str| Some(Host::Name(s.into()));
    assert_eq!(h("10.0.0.10:6443"), ip("10.0.0.10"));
    assert_eq!(h("10.0.0.10"), ip("10.0.0.10"));
    assert_eq!(h("[fd00::10]:6443"), ip("fd00::10"));
    assert_eq!(h("fd00::10"), ip("fd00::10"));
    assert_eq!(h("https://[fd00::10]:6443/"), ip("fd00::10"));
    assert_eq!(h("https://API.Example.com.:6443"), name("api.example.com"));
    assert_eq!(h("api.example.com"), name("api.example.com"));
    assert_eq!(h(""), None);
    assert_eq!(h(":6443"), None);
    let a = api();
    assert_eq!(a.ips, ips(&["10.96.0.1", "127.0.0.11", "127.0.0.100"]));
    assert!(a.dns.contains(&"k8s-api.example.com".to_string()));
    assert!(a.has_dns("K8S-API.example.com."));
    assert!(a.has_ip("::ffff:127.0.0.100".parse().unwrap()));
    // The Service names count even when apiserver.crt could not be read.
    let bare = api_server_names(&[], &[], &[], None);
    assert!(bare.has_dns("kubernetes") && bare.has_dns("kubernetes.default.svc.k8s.lan"));
    assert!(!bare.has_dns("kubernetes-dashboard"));
}

#[test]
fn control_plane_labels() {
    assert!(is_control_plane([
        "kubernetes.io/os",
        "node-role.kubernetes.io/control-plane"
    ]));
    assert!(is_control_plane(["node-role.kubernetes.io/master"]));
    assert!(!is_control_plane([
        "node-role.kubernetes.io/worker",
        "kubernetes.io/hostname"
    ]));
}

#[test]
fn a_verdict_renders_as_lines_and_json() {
    let v = eval(&csr("w1", &["w1"], &["127.0.0.21", "127.0.0.12"]));
    let lines = v.lines();
    assert_eq!(lines.len(), 8);
    assert!(lines[0].starts_with("(a) signer: pass: "), "{}", lines[0]);
    assert_eq!(
        lines[5],
        "(f) ip-sans: FAIL: IP SAN 127.0.0.12 belongs to node cp2"
    );
    assert!(lines[7].starts_with("(h) attested: n/a: "), "{}", lines[7]);
    assert_eq!(
        v.summary(),
        "rule (f) ip-sans fails: IP SAN 127.0.0.12 belongs to node cp2"
    );
    assert_eq!(
        v.denial_message().unwrap(),
        "kubeadm-certd: rule (f) ip-sans: IP SAN 127.0.0.12 belongs to node cp2"
    );
    let j = serde_json::to_value(&v).unwrap();
    assert_eq!(j["approvable"], false);
    assert_eq!(j["node"], "w1");
    assert_eq!(j["checks"][5]["rule"], "ip-sans");
    assert_eq!(j["checks"][5]["letter"], "f");
    assert_eq!(j["checks"][5]["result"], "fail");
    assert_eq!(j["checks"][7]["result"], "not-applicable");
    assert_eq!(j["request"]["ips"][1], "127.0.0.12");
    assert_eq!(j["request"]["commonNames"][0], "system:node:w1");
    let labels: Vec<String> = Rule::ALL.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        labels,
        [
            "signer",
            "requestor",
            "usages",
            "sans",
            "node-exists",
            "ip-sans",
            "dns-sans",
            "attested"
        ]
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    const POOL_IPS: [&str; 6] = [
        "127.0.0.1",
        "127.0.0.2",
        "127.0.0.3",
        "::ffff:127.0.0.2",
        "fd00::1",
        "fd00:0::2",
    ];
    const POOL_NAMES: [&str; 5] = ["n0", "n1", "n2", "n1.lan", "api"];
    const TYPES: [&str; 5] = [
        "InternalIP",
        "ExternalIP",
        "Hostname",
        "InternalDNS",
        "ExternalDNS",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever the cluster claims, an approvable CSR holds only the node's own
        /// addresses and names, none that any other Node lists, and no API server address
        /// unless the node is a control-plane node.
        #[test]
        fn approvable_means_every_san_is_the_nodes_alone(
            addrs in proptest::collection::vec(
                (0usize..3, 0usize..5, 0usize..(POOL_IPS.len() + POOL_NAMES.len())), 0..10),
            cps in any::<u8>(),
            from_own in any::<u16>(),
            extra in proptest::option::of(0usize..(POOL_IPS.len() + POOL_NAMES.len())),
        ) {
            let mut nodes: Vec<NodeView> = (0..3)
                .map(|i| NodeView { name: format!("n{i}"), control_plane: cps & (1 << i) != 0, ..NodeView::default() })
                .collect();
            let value = |v: usize| if v < POOL_IPS.len() { POOL_IPS[v] } else { POOL_NAMES[v - POOL_IPS.len()] };
            for (n, t, v) in addrs {
                nodes[n].addresses.push((TYPES[t].to_string(), value(v).to_string()));
            }
            let api = api_server_names(&ips(&["127.0.0.3"]), &["api".to_string()], &[], None);
            // Mostly what n1's Node claims (so that some CSRs pass), plus perhaps one more.
            let mut wanted: Vec<&str> = nodes[1]
                .addresses
                .iter()
                .enumerate()
                .filter(|(i, _)| from_own & (1 << i) != 0)
                .map(|(_, (_, a))| a.as_str())
                .chain(extra.map(value))
                .collect();
            wanted.dedup();
            let (sans_ip, sans_dns): (Vec<&str>, Vec<&str>) =
                wanted.into_iter().partition(|a| a.parse::<IpAddr>().is_ok());
            let c = csr("n1", &sans_dns, &sans_ip);
            let v = evaluate(&c, &nodes, &api, None, &Policy::default());
            if v.approvable() {
                let me = &nodes[1];
                let canon = |s: &str| s.parse::<IpAddr>().ok().map(|i| i.to_canonical());
                for ip in &sans_ip {
                    let ip = canon(ip);
                    prop_assert!(me.addresses.iter().any(|(t, a)| (t == "InternalIP" || t == "ExternalIP") && canon(a) == ip));
                    for o in nodes.iter().filter(|o| o.name != "n1") {
                        prop_assert!(!o.addresses.iter().any(|(_, a)| canon(a) == ip));
                    }
                    prop_assert!(me.control_plane || !api.has_ip(ip.unwrap()));
                }
                for d in &sans_dns {
                    prop_assert!(*d == "n1" || me.addresses.iter().any(|(t, a)| t != "InternalIP" && t != "ExternalIP" && a == d));
                    prop_assert!(*d != "api");
                    for o in nodes.iter().filter(|o| o.name != "n1") {
                        prop_assert!(o.name != *d);
                        prop_assert!(*d == "n1" || !o.addresses.iter().any(|(_, a)| a == d));
                    }
                }
                prop_assert!(!sans_ip.is_empty() || !sans_dns.is_empty());
            }
        }
    }
}
