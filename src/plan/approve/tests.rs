//! The rules, one broken at a time. CSRs are real PKCS#10 requests made with rcgen.

use super::*;
use crate::pki::csr_request::tests::{tampered, Spec};
use std::net::IpAddr;

pub(super) fn node(name: &str, cp: bool, addrs: &[(&str, &str)]) -> NodeView {
    NodeView {
        name: name.into(),
        addresses: addrs
            .iter()
            .map(|(t, a)| (t.to_string(), a.to_string()))
            .collect(),
        control_plane: cp,
    }
}

/// Two control-plane nodes and two workers, addresses on loopback (never dialled: data).
pub(super) fn cluster() -> Vec<NodeView> {
    vec![
        node(
            "cp1",
            true,
            &[("InternalIP", "127.0.0.11"), ("Hostname", "cp1")],
        ),
        node(
            "cp2",
            true,
            &[
                ("InternalIP", "127.0.0.12"),
                ("Hostname", "cp2"),
                ("InternalDNS", "cp2.example.com"),
            ],
        ),
        node(
            "w1",
            false,
            &[
                ("InternalIP", "127.0.0.21"),
                ("ExternalIP", "127.0.0.121"),
                ("InternalIP", "fd00:0:0::21"),
                ("Hostname", "w1"),
                ("InternalDNS", "w1.example.com"),
            ],
        ),
        node(
            "w2",
            false,
            &[
                ("InternalIP", "127.0.0.22"),
                ("InternalIP", "fd00::22"),
                ("Hostname", "w2"),
            ],
        ),
    ]
}

pub(super) fn ips(v: &[&str]) -> Vec<IpAddr> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

/// As on cp1: apiserver.crt has cp1's address and a VIP (certSANs), the Service IP is
/// 10.96.0.1, controlPlaneEndpoint is a name.
pub(super) fn api() -> ApiServerNames {
    let dns: Vec<String> = [
        "cp1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    api_server_names(
        &ips(&["127.0.0.11", "127.0.0.100", "10.96.0.1"]),
        &dns,
        &ips(&["10.96.0.1"]),
        Some("https://K8s-API.example.com.:6443"),
    )
}

pub(super) fn host_cp1() -> HostView {
    HostView {
        node_name: "cp1".into(),
        hostname: "cp1".into(),
        fqdn: Some("cp1.example.com".into()),
        addrs: ips(&["127.0.0.1", "127.0.0.11", "::1"]),
    }
}

pub(super) fn csr_of(node: &str, spec: &Spec) -> CsrView {
    CsrView {
        name: format!("csr-{node}"),
        signer_name: KUBELET_SERVING_SIGNER.into(),
        username: format!("system:node:{node}"),
        groups: vec!["system:nodes".into(), "system:authenticated".into()],
        usages: vec!["digital signature".into(), "server auth".into()],
        request_pem: spec.pem(),
        ..CsrView::default()
    }
}

pub(super) fn csr(node: &str, dns: &[&str], ip: &[&str]) -> CsrView {
    csr_of(node, &Spec::kubelet(node, dns, ip))
}

pub(super) fn eval(c: &CsrView) -> Verdict {
    evaluate(c, &cluster(), &api(), Some(&host_cp1()), &Policy::default())
}

/// `v` fails `rule` and no other, with a message containing `says`.
#[track_caller]
pub(super) fn fails_only(v: &Verdict, rule: Rule, says: &str) {
    let failing: Vec<Rule> = v
        .checks
        .iter()
        .filter(|(_, o)| o.is_fail())
        .map(|(r, _)| *r)
        .collect();
    assert_eq!(failing, [rule], "{:#?}", v.lines());
    let (r, m) = v.first_failure().unwrap();
    assert_eq!(r, rule);
    assert!(m.contains(says), "{m:?} should say {says:?}");
    assert!(!v.approvable());
    let denial = v.denial_message().unwrap();
    assert!(
        denial.contains(&format!("rule ({}) {}", rule.letter(), rule.label())),
        "{denial}"
    );
}

#[test]
fn a_good_worker_csr_is_approved() {
    let v = eval(&csr(
        "w1",
        &["w1", "w1.example.com"],
        &["127.0.0.21", "127.0.0.121"],
    ));
    assert!(v.approvable(), "{:#?}", v.lines());
    assert!(matches!(
        v.outcome(Rule::Attested),
        Some(Outcome::NotApplicable(m)) if m.contains("not this node (cp1)")
    ));
    assert!(v.approval_message().contains("(g) dns-sans"));
    assert!(v.approval_message().contains("(h) attested not applicable"));
    assert_eq!(v.denial_message(), None);
    // Without any host view (a CLI elsewhere), too.
    let v = evaluate(
        &csr("w1", &["w1"], &["127.0.0.21"]),
        &cluster(),
        &api(),
        None,
        &Policy::default(),
    );
    assert!(v.approvable(), "{:#?}", v.lines());
}

#[test]
fn a_good_own_node_csr_is_approved() {
    // cp1's own address is in apiserver.crt and its name is a DNS SAN there: both its own.
    let v = eval(&csr("cp1", &["cp1", "cp1.example.com"], &["127.0.0.11"]));
    // cp1.example.com is attested by the host's FQDN but the Node does not list it.
    fails_only(&v, Rule::DnsSans, "DNS SAN cp1.example.com is not the name");
    let v = eval(&csr("cp1", &["cp1"], &["127.0.0.11"]));
    assert!(v.approvable(), "{:#?}", v.lines());
    assert!(matches!(v.outcome(Rule::Attested), Some(Outcome::Pass(_))));
    // What csr list shows says why the API server's address and name are allowed here.
    assert_eq!(
        v.outcome(Rule::IpSans).unwrap().message(),
        "IP SANs 127.0.0.11: Node cp1's own, no other Node's; 127.0.0.11 is also the API server's, allowed as this control-plane node's own"
    );
    assert_eq!(
        v.outcome(Rule::DnsSans).unwrap().message(),
        "DNS SANs cp1: Node cp1's own, no other Node's; cp1 is also the API server's, allowed as the node's own name"
    );
    assert!(v.approval_message().contains("(h) attested"));
}

#[test]
fn rule_a_signer_and_state() {
    let mut c = csr("w1", &["w1"], &["127.0.0.21"]);
    c.signer_name = "kubernetes.io/kube-apiserver-client-kubelet".into();
    fails_only(
        &eval(&c),
        Rule::Signer,
        "signer kubernetes.io/kube-apiserver-client-kubelet is not kubernetes.io/kubelet-serving",
    );
    type Set = fn(&mut CsrView);
    let states: [(Set, &str); 4] = [
        (|c| c.approved = true, "already Approved"),
        (|c| c.denied = true, "already Denied"),
        (|c| c.failed = true, "already Failed"),
        (|c| c.has_certificate = true, "already has a certificate"),
    ];
    for (set, says) in states {
        let mut c = csr("w1", &["w1"], &["127.0.0.21"]);
        set(&mut c);
        fails_only(&eval(&c), Rule::Signer, says);
    }
}

#[test]
fn rule_b_requestor() {
    let mut c = csr("w1", &["w1"], &["127.0.0.21"]);
    c.username = "alice".into();
    fails_only(
        &eval(&c),
        Rule::Requestor,
        "username alice is not system:node:NAME",
    );

    let mut c = csr("w1", &["w1"], &["127.0.0.21"]);
    c.groups = vec!["system:authenticated".into()];
    fails_only(&eval(&c), Rule::Requestor, "do not include system:nodes");

    // w1's credentials asking for a certificate in w2's name.
    let mut c = csr_of("w1", &Spec::kubelet("w2", &["w1"], &["127.0.0.21"]));
    c.username = "system:node:w1".into();
    fails_only(
        &eval(&c),
        Rule::Requestor,
        "subject CN system:node:w2 is not the requester system:node:w1",
    );

    let mut s = Spec::kubelet("w1", &["w1"], &["127.0.0.21"]);
    s.cns.push("system:node:w2".into());
    fails_only(
        &eval(&csr_of("w1", &s)),
        Rule::Requestor,
        "subject has 2 CNs",
    );

    let mut s = Spec::kubelet("w1", &["w1"], &["127.0.0.21"]);
    s.orgs.push("system:masters".into());
    fails_only(
        &eval(&csr_of("w1", &s)),
        Rule::Requestor,
        "subject O system:nodes, system:masters is not exactly system:nodes",
    );

    let mut s = Spec::kubelet("w1", &["w1"], &["127.0.0.21"]);
    s.orgs.clear();
    fails_only(
        &eval(&csr_of("w1", &s)),
        Rule::Requestor,
        "subject O (none)",
    );

    let mut c = csr("w1", &["w1"], &["127.0.0.21"]);
    c.request_pem = tampered(&c.request_pem);
    fails_only(&eval(&c), Rule::Requestor, "self-signature does not verify");

    let mut c = csr("w1", &["w1"], &["127.0.0.21"]);
    c.request_pem =
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".to_vec();
    let v = eval(&c);
    fails_only(&v, Rule::Requestor, "the request does not decode");
    assert!(matches!(
        v.outcome(Rule::IpSans),
        Some(Outcome::NotApplicable(_))
    ));
    assert_eq!(v.request, None);
}

#[test]
fn rule_c_usages() {
    for (usages, says) in [
        (
            vec!["digital signature", "server auth", "client auth"],
            "usage client auth is not one the kubelet-serving signer accepts",
        ),
        (
            vec!["digital signature", "key encipherment"],
            "lack server auth",
        ),
        (vec!["server auth"], "lack digital signature"),
        (vec![], "(none) lack server auth"),
    ] {
        let mut c = csr("w1", &["w1"], &["127.0.0.21"]);
        c.usages = usages.iter().map(|s| s.to_string()).collect();
        fails_only(&eval(&c), Rule::Usages, says);
    }
    // Both sets the signer accepts pass.
    let mut c = csr("w1", &["w1"], &["127.0.0.21"]);
    c.usages = vec![
        "key encipherment".into(),
        "digital signature".into(),
        "server auth".into(),
    ];
    assert!(eval(&c).approvable());
}

#[test]
fn rule_d_sans() {
    fails_only(&eval(&csr("w1", &[], &[])), Rule::Sans, "no DNS or IP SAN");
    let mut s = Spec::kubelet("w1", &["w1"], &["127.0.0.21"]);
    s.emails.push("root@w1.example.com".into());
    fails_only(
        &eval(&csr_of("w1", &s)),
        Rule::Sans,
        "email SAN root@w1.example.com is not allowed",
    );
    let mut s = Spec::kubelet("w1", &["w1"], &["127.0.0.21"]);
    s.uris.push("spiffe://cluster.local/ns/kube-system".into());
    fails_only(&eval(&csr_of("w1", &s)), Rule::Sans, "URI SAN spiffe://");
}

#[test]
fn rule_e_node_exists() {
    let v = eval(&csr("w9", &["w9"], &["127.0.0.29"]));
    fails_only(&v, Rule::NodeExists, "Node w9 does not exist");
}

#[test]
fn rule_f_ip_sans() {
    let cases = [
        (
            "127.0.0.99",
            "IP SAN 127.0.0.99 is not an InternalIP or ExternalIP of Node w1",
        ),
        ("127.0.0.12", "IP SAN 127.0.0.12 belongs to node cp2"),
        ("127.0.0.22", "IP SAN 127.0.0.22 belongs to node w2"),
        (
            "127.0.0.100",
            "IP SAN 127.0.0.100 is an address of the API server",
        ),
        (
            "10.96.0.1",
            "IP SAN 10.96.0.1 is an address of the API server",
        ),
    ];
    for (ip, says) in cases {
        fails_only(
            &eval(&csr("w1", &["w1"], &["127.0.0.21", ip])),
            Rule::IpSans,
            says,
        );
    }
}

#[test]
fn rule_g_dns_sans() {
    let cases = [
        ("evil", "DNS SAN evil is not the name, or a Hostname, InternalDNS or ExternalDNS address, of Node w1"),
        ("cp2", "DNS SAN cp2 belongs to node cp2"),
        ("CP2.example.COM.", "DNS SAN CP2.example.COM. belongs to node cp2"),
        ("k8s-api.example.com", "is a name of the API server"),
        ("kubernetes.default.svc.cluster.local", "is a name of the API server"),
        ("kubernetes.default.svc.corp.internal", "is a name of the API server"),
        ("*.example.com", "DNS SAN *.example.com is a wildcard"),
        ("w*1", "DNS SAN w*1 is a wildcard"),
        ("w1..example.com", "is not a valid DNS name"),
        ("w1\nexample.com", "DNS SAN w1\\nexample.com is not a valid DNS name"),
    ];
    for (dns, says) in cases {
        fails_only(
            &eval(&csr("w1", &["w1", dns], &["127.0.0.21"])),
            Rule::DnsSans,
            says,
        );
    }
}

#[test]
fn rule_h_the_own_node_asking_for_an_address_its_host_does_not_hold() {
    // The Node (written by the kubelet) claims 127.0.0.13; the host has no such address.
    let mut nodes = cluster();
    nodes[0]
        .addresses
        .push(("InternalIP".into(), "127.0.0.13".into()));
    nodes[0]
        .addresses
        .push(("InternalDNS".into(), "cp1.evil.example.com".into()));
    let host = host_cp1();
    let run = |c: &CsrView| evaluate(c, &nodes, &api(), Some(&host), &Policy::default());
    let v = run(&csr("cp1", &["cp1"], &["127.0.0.11", "127.0.0.13"]));
    fails_only(
        &v,
        Rule::Attested,
        "IP SAN 127.0.0.13 is not assigned to any interface of this host",
    );
    let v = run(&csr(
        "cp1",
        &["cp1", "cp1.evil.example.com"],
        &["127.0.0.11"],
    ));
    fails_only(
        &v,
        Rule::Attested,
        "DNS SAN cp1.evil.example.com is not this host's node name, hostname or FQDN (cp1, cp1, cp1.example.com)",
    );
    // Elsewhere (no host view, or another node's daemon) the same CSR passes (f) and (g):
    // only the node itself can tell.
    let v = evaluate(
        &csr("cp1", &["cp1"], &["127.0.0.11", "127.0.0.13"]),
        &nodes,
        &api(),
        None,
        &Policy::default(),
    );
    assert!(v.approvable(), "{:#?}", v.lines());
}

#[test]
fn two_nodes_claiming_one_ip_both_fail() {
    let mut nodes = cluster();
    nodes[2]
        .addresses
        .push(("InternalIP".into(), "127.0.0.30".into()));
    nodes[3]
        .addresses
        .push(("ExternalIP".into(), "127.0.0.30".into()));
    for (me, other) in [("w1", "w2"), ("w2", "w1")] {
        let v = evaluate(
            &csr(me, &[me], &["127.0.0.30"]),
            &nodes,
            &api(),
            None,
            &Policy::default(),
        );
        fails_only(
            &v,
            Rule::IpSans,
            &format!("IP SAN 127.0.0.30 belongs to node {other}"),
        );
    }
}
