//! The 3-node cluster under three stand-in kubelets, with what the HA daemon tests
//! (`cluster_daemons`, `ca_rotation_ha`) observe: a writer putting a key every 100 ms, each
//! node's down intervals from its kubelet's events, restarts, owed restarts, metrics. The including crate declares `cluster_support` (support/cluster.rs) and `kubelet`
//! (support/kubelet.rs).
#![allow(dead_code)]

use crate::cluster_support::{Cluster, ClusterNode, Daemon};
use crate::kubelet::{Event, EventKind, HarnessOptions, KubeletHarness};
use kubeadm_certd::act::staticpods::probe::probe;
use kubeadm_certd::node::manifests::parse_manifest;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Bounds waits so that a broken test fails instead of hanging; never a speed requirement.
pub const LIMIT: Duration = Duration::from_secs(300);
/// The four manifests.
pub const FILES: [&str; 4] = [
    "etcd.yaml",
    "kube-apiserver.yaml",
    "kube-controller-manager.yaml",
    "kube-scheduler.yaml",
];

/// The three nodes running under their kubelets (fields drop in order: kubelets first).
pub struct Ha {
    /// One stand-in kubelet per node.
    pub kubelets: Vec<KubeletHarness>,
    /// The cluster.
    pub c: Cluster,
}

impl Ha {
    /// Build, start the kubelets, wait until every component of every node is healthy.
    pub fn start() -> Option<Ha> {
        let c = Cluster::build_for_kubelets()?;
        let kubelets = c
            .nodes
            .iter()
            .map(|n| {
                let opts = HarnessOptions {
                    node_root: Some(n.root.clone()),
                    ..HarnessOptions::default()
                };
                KubeletHarness::start(&n.root.join("etc/kubernetes/manifests"), opts)
            })
            .collect();
        let mut ha = Ha { kubelets, c };
        ha.c.wait_healthy(&[0, 1, 2]);
        for i in 0..3 {
            ha.wait_components(i);
        }
        Some(ha)
    }

    /// Node i.
    pub fn node(&self, i: usize) -> &ClusterNode {
        &self.c.nodes[i]
    }

    /// Every component of node i runs and answers its probe.
    pub fn wait_components(&self, i: usize) {
        let h = &self.kubelets[i];
        let dir = self.node(i).root.join("etc/kubernetes/manifests");
        let healthy = |f: &str| {
            let m = parse_manifest(&std::fs::read(dir.join(f)).unwrap()).unwrap();
            m.probe_target()
                .is_some_and(|p| probe(p, "127.0.0.1", Duration::from_secs(2)).is_healthy())
        };
        let ok = KubeletHarness::wait_until(LIMIT, || {
            FILES
                .iter()
                .all(|f| h.running_pid(f).is_some() && healthy(f))
        });
        assert!(
            ok,
            "node {} components not running: {:?}\n{}",
            i + 1,
            h.events(),
            h.all_logs()
        );
    }

    /// Stop node i's etcd member as a parked manifest would, and wait until its process is
    /// gone: a daemon started earlier could still see the member and take the lock with
    /// quorum, which is not the situation the caller sets up. Returns where the manifest is.
    pub fn stop_etcd(&self, i: usize) -> PathBuf {
        let aside = self.node(i).root.join("etcd.yaml.aside");
        std::fs::rename(self.node(i).manifest_path("etcd"), &aside).unwrap();
        let gone = KubeletHarness::wait_until(LIMIT, || {
            self.kubelets[i].running_pid("etcd.yaml").is_none() && !self.node(i).healthy()
        });
        assert!(gone, "node {} etcd did not stop", i + 1);
        aside
    }

    /// Wait until node i owes nothing and each of `files` was stopped and started again
    /// after `after`.
    pub fn wait_restarted(&self, i: usize, files: &[&str], after: SystemTime, d: &[&Daemon]) {
        let ok = KubeletHarness::wait_until(LIMIT, || {
            self.node(i).owed().is_empty()
                && files.iter().all(|f| self.stops(i, f, after) > 0)
                && files
                    .iter()
                    .all(|f| self.kubelets[i].running_pid(f).is_some())
        });
        assert!(
            ok,
            "node {} not restarted: owed {:?}, events {:?}\n{}",
            i + 1,
            self.node(i).owed(),
            self.kubelets[i].events(),
            logs(d)
        );
    }

    /// Wait until node i's metrics textfile holds `line`.
    pub fn wait_metric(&self, i: usize, line: &str) {
        let p = self.node(i).root.join("var/lib/kubeadm-certd/metrics.prom");
        let ok = KubeletHarness::wait_until(LIMIT, || {
            std::fs::read_to_string(&p).is_ok_and(|t| t.lines().any(|l| l == line))
        });
        assert!(
            ok,
            "node {}: no {line:?} in\n{}",
            i + 1,
            std::fs::read_to_string(&p).unwrap_or_default()
        );
    }

    /// Times node i's kubelet stopped `file` after `after`.
    pub fn stops(&self, i: usize, file: &str, after: SystemTime) -> usize {
        self.kubelets[i]
            .events_for(file)
            .iter()
            .filter(|e| e.kind == EventKind::Stopped && e.at > after)
            .count()
    }

    /// None of `nodes` stopped any component after `after` (a halt stands).
    pub fn assert_no_stops(&self, nodes: &[usize], after: SystemTime) {
        for &i in nodes {
            for f in FILES {
                assert_eq!(
                    self.stops(i, f, after),
                    0,
                    "node {} stopped {f} during the halt",
                    i + 1
                );
            }
        }
    }

    /// Start a daemon on each node of `which`, its config ending with `extra`.
    pub fn daemons(&self, which: &[usize], extra: &str) -> Vec<Daemon> {
        which
            .iter()
            .map(|&i| {
                let cfg = self.node(i).write_config(extra);
                self.node(i).daemon(&cfg)
            })
            .collect()
    }

    /// Run kubeadm-certd on node i with the config ending with `extra`.
    pub fn cli(&self, i: usize, extra: &str, args: &[&str]) -> std::process::Output {
        let cfg = self.node(i).write_config(extra);
        let out = self.node(i).command(&cfg, args).output().unwrap();
        eprintln!(
            "$ kubeadm-certd {} (node {})\n{}{}",
            args.join(" "),
            i + 1,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Every node's down intervals since the start.
    pub fn down(&self) -> Vec<Vec<(String, SystemTime, SystemTime)>> {
        self.kubelets
            .iter()
            .map(|h| down_intervals(&h.events()))
            .collect()
    }
}

/// The daemons' logs, for failure messages.
pub fn logs(ds: &[&Daemon]) -> String {
    ds.iter()
        .map(|d| d.log_text())
        .collect::<Vec<_>>()
        .join("\n-----\n")
}

/// Down intervals of one node: from a Stopped event to the next Started of the same file.
pub fn down_intervals(events: &[Event]) -> Vec<(String, SystemTime, SystemTime)> {
    let mut out = Vec::new();
    for (k, e) in events.iter().enumerate() {
        if e.kind != EventKind::Stopped {
            continue;
        }
        let back = events[k..]
            .iter()
            .find(|s| s.kind == EventKind::Started && s.file == e.file)
            .map(|s| s.at);
        out.push((e.file.clone(), e.at, back.unwrap_or_else(SystemTime::now)));
    }
    out
}

/// Panics if two nodes ever had a component down at the same time.
pub fn assert_one_node_down_at_a_time(per_node: &[Vec<(String, SystemTime, SystemTime)>]) {
    for a in 0..per_node.len() {
        for b in a + 1..per_node.len() {
            for (fa, sa, ea) in &per_node[a] {
                for (fb, sb, eb) in &per_node[b] {
                    assert!(
                        ea <= sb || eb <= sa,
                        "node {} {fa} down {sa:?}..{ea:?} overlaps node {} {fb} down {sb:?}..{eb:?}",
                        a + 1,
                        b + 1
                    );
                }
            }
        }
    }
}

/// Puts a key every 100 ms through whichever member answers; the instants of the successes.
/// Each new connection reads its identity afresh from a node's files (`etcd/ca.crt`,
/// `etcd/healthcheck-client.{crt,key}`), as a kube-apiserver restarted at that moment would:
/// during a CA rotation the writer then shows whether the files of a node, whatever phase it
/// is in, are accepted by every member.
pub struct Writer {
    stop: Arc<AtomicBool>,
    t: std::thread::JoinHandle<Vec<Instant>>,
}

fn options(pki: &std::path::Path) -> Option<etcd_client::ConnectOptions> {
    let read = |f: &str| std::fs::read(pki.join(f)).ok();
    let tls = etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(read("etcd/ca.crt")?))
        .identity(etcd_client::Identity::from_pem(
            read("etcd/healthcheck-client.crt")?,
            read("etcd/healthcheck-client.key")?,
        ));
    Some(
        etcd_client::ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(Duration::from_millis(500))
            .with_require_leader(true),
    )
}

impl Writer {
    /// Start, with node `n`'s files as the identity.
    pub fn start(n: &ClusterNode) -> Writer {
        let pki = n.root.join("etc/kubernetes/pki");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let urls: Vec<String> = crate::cluster_support::IPS
                    .iter()
                    .map(|ip| format!("https://{ip}:2379"))
                    .collect();
                let mut clients: Vec<Option<etcd_client::Client>> = vec![None, None, None];
                let mut ok = Vec::new();
                let mut cur = 0;
                let mut i = 0u64;
                while !s.load(Ordering::SeqCst) {
                    i += 1;
                    for k in 0..3 {
                        let j = (cur + k) % 3;
                        if clients[j].is_none() {
                            let Some(opts) = options(&pki) else { continue };
                            let c = tokio::time::timeout(
                                Duration::from_millis(500),
                                etcd_client::Client::connect([urls[j].as_str()], Some(opts)),
                            )
                            .await;
                            clients[j] = c.ok().and_then(|c| c.ok());
                        }
                        let Some(c) = clients[j].as_mut() else {
                            continue;
                        };
                        let put = c.put("/test/writer", i.to_string(), None);
                        match tokio::time::timeout(Duration::from_millis(700), put).await {
                            Ok(Ok(_)) => {
                                ok.push(Instant::now());
                                cur = j;
                                break;
                            }
                            _ => clients[j] = None,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                ok
            })
        });
        Writer { stop, t }
    }

    /// Stop; the longest time between two successful writes, and how many succeeded.
    pub fn finish(self) -> (Duration, usize) {
        self.stop.store(true, Ordering::SeqCst);
        let ok = self.t.join().unwrap();
        assert!(ok.len() > 10, "the writer hardly wrote: {}", ok.len());
        let gap = ok.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
        (gap, ok.len())
    }
}
