//! Shared helpers for the restart tests: a kubeadm node built with nodebuilder whose
//! manifests run real processes (Debian etcd, Python TLS stand-ins for the other three)
//! under the stand-in kubelet, plus ways to observe what was restarted and for how long.
//!
//! The including test crate must declare `#[path = "support/kubelet.rs"] mod kubelet;`.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kubeadm_certd::act::staticpods::probe::{probe, tls_peer_cert};
use kubeadm_certd::act::staticpods::process::{proc_info, ProcInfo};
use kubeadm_certd::node::manifests::{parse_manifest, Manifest, Probe};
use kubeadm_certd::testkit::nodebuilder::{build, NodeSpec, Ports};

use crate::kubelet::{Event, EventKind, HarnessOptions, KubeletHarness};

/// Bounds waits so a broken test fails instead of hanging; never a speed requirement.
pub const LIMIT: Duration = Duration::from_secs(90);

/// The control-plane components in restart order.
pub const ORDER: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

const STANDIN: &str = include_str!("standin.py");
/// Where the stand-in and its hooks live, as seen inside the pods' mount namespace.
pub const STANDIN_DIR: &str = "/etc/kubernetes/standin";

/// What node to build.
#[derive(Debug, Clone)]
pub struct NodeOpts {
    /// Run etcd (needs the etcd binary); without it the etcd manifest is removed.
    pub etcd: bool,
    /// Extra lines for the `restart:` section of the config file (e.g. "minHold: 30s").
    pub restart: Vec<String>,
    /// How long the CAs have left (default: nodebuilder's 10 years).
    pub ca_left: Option<Duration>,
}

impl Default for NodeOpts {
    fn default() -> Self {
        NodeOpts {
            etcd: false,
            restart: vec!["timeout: 60s".into()],
            ca_left: None,
        }
    }
}

/// A built node in a temp dir.
pub struct Node {
    _dir: tempfile::TempDir,
    /// The `--root`.
    pub root: PathBuf,
    /// The `--config` file (outside the root).
    pub config: PathBuf,
    /// Ports named in the manifests.
    pub ports: Ports,
}

/// Free loopback ports, all distinct (the listeners are held until every one is picked).
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    ls.iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in manifest:\n{text}");
    text.replacen(from, to, 1)
}

impl Node {
    /// Build a node with v1.31 manifests, rewritten so that each container command runs a
    /// real process here while keeping the flags that name the node's files.
    pub fn build(opts: NodeOpts) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("node");
        let p = free_ports(6);
        let ports = Ports {
            etcd_client: p[0],
            etcd_peer: p[1],
            etcd_metrics: p[2],
            apiserver: p[3],
            controller_manager: p[4],
            scheduler: p[5],
        };
        let mut spec = NodeSpec::new(time::OffsetDateTime::now_utc());
        spec.advertise = [127, 0, 0, 1].into();
        // RSA key generation is slow in debug builds; the restart machinery does not care.
        spec.key = kubeadm_certd::pki::inspect::KeyAlg::EcP256;
        spec.ports = ports;
        if let Some(left) = opts.ca_left {
            spec.ca_left = left;
        }
        build(&root, &spec).expect("build node");
        let node = Node {
            _dir: dir,
            root: root.clone(),
            config: root.with_file_name("config.yaml"),
            ports,
        };

        let standin = node.host(STANDIN_DIR);
        std::fs::create_dir_all(&standin).expect("standin dir");
        std::fs::write(standin.join("standin.py"), STANDIN).expect("write standin.py");
        let ck =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("self-signed");
        std::fs::write(standin.join("self.crt"), ck.cert.pem()).expect("self.crt");
        std::fs::write(standin.join("self.key"), ck.signing_key.serialize_pem()).expect("self.key");

        for name in &ORDER[1..] {
            let path = node.manifest_path(name);
            let text = std::fs::read_to_string(&path).expect("read manifest");
            let text = replace_once(
                &text,
                &format!("    - {name}\n"),
                &format!("    - /usr/bin/python3\n    - {STANDIN_DIR}/standin.py\n    - {name}\n"),
            );
            std::fs::write(&path, text).expect("write manifest");
        }
        let etcd = node.manifest_path("etcd");
        if opts.etcd {
            let data = format!("{STANDIN_DIR}/etcd-data");
            let text = std::fs::read_to_string(&etcd).expect("read etcd manifest");
            let text = replace_once(
                &text,
                "--data-dir=/var/lib/etcd",
                &format!("--data-dir={data}"),
            );
            let text = replace_once(&text, "path: /var/lib/etcd", &format!("path: {data}"));
            // etcd 3.4 (Debian) has /health, not /livez.
            let text = text.replace("path: /livez", "path: /health");
            std::fs::write(&etcd, text).expect("write etcd manifest");
        } else {
            std::fs::remove_file(&etcd).expect("remove etcd manifest");
        }
        for c in node.components() {
            let m = node.manifest(c);
            let want = if c == "etcd" {
                "etcd"
            } else {
                "/usr/bin/python3"
            };
            assert_eq!(m.command[0], want, "{c}: {:?}", m.command);
            assert!(m.probe_target().is_some(), "{c} has no probe");
        }

        let kc = node.root.join("var/lib/kubelet/config.yaml");
        let text = std::fs::read_to_string(&kc).expect("kubelet config");
        std::fs::write(
            &kc,
            replace_once(&text, "fileCheckFrequency: 0s", "fileCheckFrequency: 1s"),
        )
        .expect("kubelet config");

        let mut cfg = String::from("restart:\n");
        for l in &opts.restart {
            cfg.push_str(&format!("  {l}\n"));
        }
        std::fs::write(&node.config, cfg).expect("config");
        node
    }

    /// A host path (as named in manifests) inside this node.
    pub fn host(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The manifests directory.
    pub fn manifests(&self) -> PathBuf {
        self.host("/etc/kubernetes/manifests")
    }

    /// The default parking directory.
    pub fn parking(&self) -> PathBuf {
        self.host("/etc/kubernetes/tmp/kubeadm-certd-parked")
    }

    /// `manifests/<component>.yaml`.
    pub fn manifest_path(&self, component: &str) -> PathBuf {
        self.manifests().join(format!("{component}.yaml"))
    }

    /// A component's parsed manifest.
    pub fn manifest(&self, component: &str) -> Manifest {
        let bytes = std::fs::read(self.manifest_path(component)).expect("read manifest");
        parse_manifest(&bytes).expect("parse manifest")
    }

    /// Components that have a manifest, in restart order.
    pub fn components(&self) -> Vec<&'static str> {
        ORDER
            .into_iter()
            .filter(|c| self.manifest_path(c).exists())
            .collect()
    }

    /// Components with their probes, for a [`Monitor`].
    pub fn probes(&self) -> Vec<(String, Probe)> {
        self.components()
            .into_iter()
            .map(|c| {
                (
                    c.to_string(),
                    self.manifest(c).probe_target().cloned().expect("probe"),
                )
            })
            .collect()
    }

    /// Start the stand-in kubelet on this node (commands run with the node's etc at /etc).
    pub fn kubelet(&self) -> KubeletHarness {
        let opts = HarnessOptions {
            node_root: Some(self.root.clone()),
            ..HarnessOptions::default()
        };
        KubeletHarness::start(&self.manifests(), opts)
    }

    /// Whether a component's probe answers healthy now.
    pub fn healthy(&self, component: &str) -> bool {
        let m = self.manifest(component);
        m.probe_target()
            .is_some_and(|p| probe(p, "127.0.0.1", Duration::from_secs(2)).is_healthy())
    }

    /// Wait until every component runs and answers its probe.
    pub fn wait_healthy(&self, h: &KubeletHarness) {
        for c in self.components() {
            let file = format!("{c}.yaml");
            let ok = KubeletHarness::wait_until(LIMIT, || {
                h.running_pid(&file).is_some() && self.healthy(c)
            });
            assert!(
                ok,
                "{c} did not become healthy; events {:?}\n{}",
                h.events(),
                h.all_logs()
            );
        }
    }

    /// The process the harness runs for a component now.
    pub fn process(&self, h: &KubeletHarness, component: &str) -> Option<ProcInfo> {
        h.running_pid(&format!("{component}.yaml"))
            .and_then(|pid| proc_info(Path::new("/proc"), pid).ok())
    }

    /// Run kubeadm-certd on this node.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run kubeadm-certd");
        eprintln!(
            "$ kubeadm-certd {}\n-> {}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The command line, for tests that signal the process.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubeadm-certd"));
        c.arg("--root")
            .arg(&self.root)
            .arg("--config")
            .arg(&self.config)
            .args(args);
        c.env_remove("JOURNAL_STREAM")
            .env_remove("KUBEADM_CERTD_LOG");
        c
    }

    /// What a stand-in process loaded at start: {host path: content}.
    pub fn loaded(&self, component: &str, pid: i32) -> BTreeMap<String, String> {
        let p = self.host(&format!("{STANDIN_DIR}/{component}.{pid}.loaded"));
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).expect("loaded json")
    }

    /// The content of a node file named by its host path.
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.host(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// DER of the first certificate in a PEM file named by its host path.
    pub fn cert_der(&self, path: &str) -> Vec<u8> {
        pem::parse(self.read(path))
            .expect("pem")
            .contents()
            .to_vec()
    }

    /// DER of the certificate served on a loopback port.
    pub fn served_cert(&self, port: u16) -> Vec<u8> {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        tls_peer_cert(addr, Duration::from_secs(3)).expect("TLS handshake")
    }

    /// Write a stand-in hook file (`<component>.die`, `<component>.accept`).
    pub fn hook(&self, file: &str, content: &str) {
        std::fs::write(self.host(&format!("{STANDIN_DIR}/{file}")), content).expect("write hook");
    }
}

/// Started events after `mark` (an index into the harness's event list), as component names.
pub fn started_after(h: &KubeletHarness, mark: usize) -> Vec<String> {
    h.events()[mark..]
        .iter()
        .filter(|e| e.kind == EventKind::Started)
        .map(|e| e.file.trim_end_matches(".yaml").to_string())
        .collect()
}

/// Events after `mark`.
pub fn events_after(h: &KubeletHarness, mark: usize) -> Vec<Event> {
    h.events()[mark..].to_vec()
}

/// Proof that `new` replaced `old`: another pid, started later, and the old one gone.
pub fn assert_replaced(component: &str, old: &ProcInfo, new: &ProcInfo) {
    assert_ne!(old.pid, new.pid, "{component}: same pid");
    assert!(
        new.start_ticks > old.start_ticks,
        "{component}: {new:?} did not start after {old:?}"
    );
    assert!(
        new.start_time >= old.start_time,
        "{component}: start time went backwards"
    );
    assert!(
        !kubeadm_certd::act::staticpods::process::is_alive(Path::new("/proc"), old),
        "{component}: old process {} still runs",
        old.pid
    );
}

/// Probe answers over time: (when, healthy).
type Samples = Vec<(Instant, bool)>;

/// Probes every component in its own thread every 100 ms and records the outages.
pub struct Monitor {
    stop: Arc<AtomicBool>,
    threads: Vec<(String, JoinHandle<Samples>)>,
}

impl Monitor {
    /// Start probing.
    pub fn start(probes: Vec<(String, Probe)>) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = probes
            .into_iter()
            .map(|(name, p)| {
                let stop = stop.clone();
                let t = std::thread::spawn(move || {
                    let mut samples = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let ok = probe(&p, "127.0.0.1", Duration::from_secs(1)).is_healthy();
                        samples.push((Instant::now(), ok));
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    samples
                });
                (name, t)
            })
            .collect();
        Monitor { stop, threads }
    }

    /// Stop and return, per component, the longest time between a failed probe following a
    /// healthy one and the next healthy probe (None if it never went down).
    pub fn finish(self) -> BTreeMap<String, Option<Duration>> {
        self.stop.store(true, Ordering::SeqCst);
        let mut out = BTreeMap::new();
        for (name, t) in self.threads {
            let samples = t.join().expect("monitor thread");
            out.insert(name, longest_outage(&samples));
        }
        out
    }
}

/// The longest outage in a series of samples: from the last healthy sample before a failure
/// to the first healthy one after it (the true outage lies within one sample period of this).
fn longest_outage(samples: &[(Instant, bool)]) -> Option<Duration> {
    let mut best: Option<Duration> = None;
    let mut last_ok: Option<Instant> = None;
    let mut down = false;
    for &(at, ok) in samples {
        match (ok, down) {
            (true, true) => {
                if let Some(from) = last_ok {
                    let d = at - from;
                    best = Some(best.map_or(d, |b| b.max(d)));
                }
                down = false;
                last_ok = Some(at);
            }
            (true, false) => last_ok = Some(at),
            (false, _) => down = last_ok.is_some(),
        }
    }
    best
}

/// Print the measured outages as `DOWNTIME component=<name> seconds=<x>` lines.
pub fn print_downtime(outages: &BTreeMap<String, Option<Duration>>, only: &[&str]) {
    for c in ORDER.iter().filter(|c| only.contains(c)) {
        match outages.get(*c) {
            Some(Some(d)) => println!("DOWNTIME component={c} seconds={:.2}", d.as_secs_f64()),
            _ => println!("DOWNTIME component={c} seconds=none-observed"),
        }
    }
}

/// The downtime kubeadm-certd itself reported in its log ("<c> restarted (...), down for
/// 1s 234ms", a humantime duration).
pub fn reported_downtime(stderr: &str, component: &str) -> Option<f64> {
    stderr.lines().find_map(|l| {
        let rest = l.split_once(&format!("{component} restarted"))?.1;
        let x = rest.split_once("down for ")?.1.trim();
        humantime::parse_duration(x).ok().map(|d| d.as_secs_f64())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_measurement() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let s = [
            (at(0), true),
            (at(100), false),
            (at(200), false),
            (at(300), true),
            (at(400), false),
        ];
        assert_eq!(longest_outage(&s), Some(Duration::from_millis(300)));
        assert_eq!(longest_outage(&[(at(0), false), (at(100), true)]), None);
    }
}
