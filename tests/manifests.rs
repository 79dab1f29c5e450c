//! Parsing kubeadm's static pod manifests across versions.

use std::path::PathBuf;

use kubeadm_certd::node::manifests::{parse_manifest, Manifest, ManifestError, Probe, Scheme};

const ADV: &str = "192.168.56.10";

fn fixture(rel: &str) -> Manifest {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/manifests")
        .join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_manifest(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn probe(scheme: Scheme, host: &str, port: u16, path: &str) -> Probe {
    Probe {
        scheme,
        host: Some(host.to_owned()),
        port,
        path: path.to_owned(),
    }
}

/// What each version's manifests must yield: the probe kubeadm-certd should poll
/// (startupProbe where kubeadm writes one, else livenessProbe).
struct Expect {
    version: &'static str,
    apiserver_path: &'static str,
    etcd_path: &'static str,
}

const VERSIONS: [Expect; 4] = [
    Expect {
        version: "v1.18",
        apiserver_path: "/healthz",
        etcd_path: "/health",
    },
    Expect {
        version: "v1.24",
        apiserver_path: "/livez",
        etcd_path: "/health?serializable=false",
    },
    Expect {
        version: "v1.29",
        apiserver_path: "/livez",
        etcd_path: "/health?serializable=false",
    },
    Expect {
        version: "v1.31",
        apiserver_path: "/livez",
        etcd_path: "/readyz",
    },
];

#[test]
fn kube_apiserver() {
    for v in &VERSIONS {
        let m = fixture(&format!("{}/kube-apiserver.yaml", v.version));
        assert_eq!(m.name, "kube-apiserver", "{}", v.version);
        assert_eq!(m.component.as_deref(), Some("kube-apiserver"));
        assert_eq!(m.command[0], "kube-apiserver");
        assert_eq!(m.command[1], format!("--advertise-address={ADV}"));
        assert_eq!(
            m.command.last().map(String::as_str),
            Some("--tls-private-key-file=/etc/kubernetes/pki/apiserver.key")
        );
        assert!(
            m.uses_file("/etc/kubernetes/pki/apiserver-etcd-client.crt"),
            "{}",
            v.version
        );
        assert!(m.uses_file("/etc/kubernetes/pki/apiserver.crt"));
        assert!(m.host_paths.iter().any(|p| p == "/etc/kubernetes/pki"));
        assert!(!m.uses_file("/etc/kubernetes/scheduler.conf"));
        assert!(!m.uses_file("/etc/kubernetes/controller-manager.conf"));
        assert_eq!(
            m.probe_target(),
            Some(&probe(Scheme::Https, ADV, 6443, v.apiserver_path)),
            "{}",
            v.version
        );
    }
}

#[test]
fn kube_controller_manager() {
    for v in &VERSIONS {
        let m = fixture(&format!("{}/kube-controller-manager.yaml", v.version));
        assert_eq!(m.name, "kube-controller-manager", "{}", v.version);
        assert_eq!(m.component.as_deref(), Some("kube-controller-manager"));
        assert_eq!(m.command[0], "kube-controller-manager");
        assert!(m
            .command
            .contains(&"--kubeconfig=/etc/kubernetes/controller-manager.conf".to_owned()));
        assert!(
            m.uses_file("/etc/kubernetes/controller-manager.conf"),
            "{}",
            v.version
        );
        // Signs CSRs with the cluster CA.
        assert!(m.uses_file("/etc/kubernetes/pki/ca.key"));
        assert!(!m.uses_file("/etc/kubernetes/scheduler.conf"));
        assert!(!m.uses_file("/etc/kubernetes/admin.conf"));
        assert_eq!(
            m.probe_target(),
            Some(&probe(Scheme::Https, "127.0.0.1", 10257, "/healthz")),
            "{}",
            v.version
        );
    }
}

#[test]
fn kube_scheduler() {
    for v in &VERSIONS {
        let m = fixture(&format!("{}/kube-scheduler.yaml", v.version));
        assert_eq!(m.name, "kube-scheduler", "{}", v.version);
        assert_eq!(m.command[0], "kube-scheduler");
        assert!(m.command.contains(&"--leader-elect=true".to_owned()));
        assert!(
            m.uses_file("/etc/kubernetes/scheduler.conf"),
            "{}",
            v.version
        );
        assert_eq!(
            m.host_paths,
            vec!["/etc/kubernetes/scheduler.conf".to_owned()]
        );
        // The scheduler mounts no PKI directory.
        assert!(!m.uses_file("/etc/kubernetes/pki/ca.crt"));
        assert!(!m.uses_file("/etc/kubernetes/controller-manager.conf"));
        assert_eq!(
            m.probe_target(),
            Some(&probe(Scheme::Https, "127.0.0.1", 10259, "/healthz")),
            "{}",
            v.version
        );
    }
}

#[test]
fn etcd() {
    for v in &VERSIONS {
        let m = fixture(&format!("{}/etcd.yaml", v.version));
        assert_eq!(m.name, "etcd", "{}", v.version);
        assert_eq!(m.component.as_deref(), Some("etcd"));
        assert_eq!(m.command[0], "etcd");
        assert!(m
            .command
            .contains(&"--listen-metrics-urls=http://127.0.0.1:2381".to_owned()));
        assert!(
            m.uses_file("/etc/kubernetes/pki/etcd/server.crt"),
            "{}",
            v.version
        );
        assert!(m.uses_file("/etc/kubernetes/pki/etcd/peer.key"));
        assert!(!m.uses_file("/etc/kubernetes/pki/apiserver-etcd-client.crt"));
        assert!(!m.uses_file("/etc/kubernetes/pki/ca.crt"));
        assert_eq!(
            m.probe_target(),
            Some(&probe(Scheme::Http, "127.0.0.1", 2381, v.etcd_path)),
            "{}",
            v.version
        );
    }
}

#[test]
fn named_probe_port_v1_34() {
    let m = fixture("v1.34/kube-scheduler.yaml");
    assert_eq!(
        m.probe_target(),
        Some(&probe(Scheme::Https, "127.0.0.1", 10259, "/healthz"))
    );
}

#[test]
fn json_manifest() {
    let m = fixture("json/kube-controller-manager.json");
    assert_eq!(m, fixture("v1.29/kube-controller-manager.yaml"));
    assert!(m.uses_file("/etc/kubernetes/controller-manager.conf"));
}

#[test]
fn args_follow_command() {
    let m = parse_manifest(
        b"metadata: {name: x}\nspec:\n  containers:\n  - command: [etcd]\n    args: [--cert-file=/p/s.crt, --key-file, /p/s.key]\n",
    )
    .unwrap();
    assert_eq!(
        m.command,
        ["etcd", "--cert-file=/p/s.crt", "--key-file", "/p/s.key"]
    );
    assert!(m.uses_file("/p/s.key"));
    assert_eq!(m.probe_target(), None);
}

#[test]
fn not_yaml() {
    let e = parse_manifest(b"apiVersion: v1\nkind: Pod\n  metadata: [unclosed\n").unwrap_err();
    assert!(matches!(e, ManifestError::Parse(_)), "{e:?}");
    assert!(e.to_string().starts_with("not a valid pod manifest"), "{e}");
    let e = parse_manifest(b"just a string").unwrap_err();
    assert!(matches!(e, ManifestError::Parse(_)), "{e:?}");
    let e = parse_manifest(&[0xff, 0xfe, 0x00]).unwrap_err();
    assert!(matches!(e, ManifestError::Parse(_)), "{e:?}");
}

#[test]
fn no_containers() {
    for doc in [
        &b"metadata: {name: etcd}\nspec: {}\n"[..],
        b"metadata: {name: etcd}\nspec: {containers: []}\n",
        b"metadata: {name: etcd}\n",
    ] {
        let e = parse_manifest(doc).unwrap_err();
        assert!(
            matches!(&e, ManifestError::NoContainers { pod } if pod == "etcd"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "pod \"etcd\" has no containers");
    }
}

#[test]
fn unresolvable_named_port() {
    let doc = b"metadata: {name: kube-scheduler}
spec:
  containers:
  - name: kube-scheduler
    ports: [{name: metrics, containerPort: 10259}]
    startupProbe: {httpGet: {port: probe-port, path: /healthz, scheme: HTTPS}}
";
    let e = parse_manifest(doc).unwrap_err();
    match &e {
        ManifestError::UnresolvedPort {
            pod,
            container,
            port,
        } => {
            assert_eq!(
                (pod.as_str(), container.as_str(), port.as_str()),
                ("kube-scheduler", "kube-scheduler", "probe-port")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        e.to_string().contains("\"probe-port\" is not a named port"),
        "{e}"
    );
}
