//! Issue 11's evidence: three real daemons (`run`) on three node roots sharing their CAs, each
//! with its own stand-in kubelet, where etcd.yaml runs a real member of a 3-member etcd 3.4
//! cluster over TLS and the other components are stand-ins. All certificates are due.

#[path = "support/cluster.rs"]
mod cluster_support;
#[path = "support/kubelet.rs"]
mod kubelet;

use cluster_support::{Cluster, ClusterNode, Daemon};
use kubeadm_certd::act::staticpods::probe::probe;
use kubeadm_certd::node::manifests::parse_manifest;
use kubelet::{Event, EventKind, HarnessOptions, KubeletHarness};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Bounds waits so that a broken test fails instead of hanging; never a speed requirement.
const LIMIT: Duration = Duration::from_secs(300);
const FILES: [&str; 4] = [
    "etcd.yaml",
    "kube-apiserver.yaml",
    "kube-controller-manager.yaml",
    "kube-scheduler.yaml",
];
const COORD: &str = "coordination:\n  lockTTL: 5s\n  lockTimeout: 10m\n";

/// The three nodes running under their kubelets (fields drop in order: kubelets first).
struct Ha {
    kubelets: Vec<KubeletHarness>,
    c: Cluster,
}

impl Ha {
    fn start() -> Option<Ha> {
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

    fn node(&self, i: usize) -> &ClusterNode {
        &self.c.nodes[i]
    }

    /// Every component of node i runs.
    fn wait_components(&self, i: usize) {
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
    fn stop_etcd(&self, i: usize) -> PathBuf {
        let aside = self.node(i).root.join("etcd.yaml.aside");
        std::fs::rename(self.node(i).manifest_path("etcd"), &aside).unwrap();
        let gone = KubeletHarness::wait_until(LIMIT, || {
            self.kubelets[i].running_pid("etcd.yaml").is_none() && !self.node(i).healthy()
        });
        assert!(gone, "node {} etcd did not stop", i + 1);
        aside
    }

    fn stops(&self, i: usize, file: &str, after: SystemTime) -> usize {
        self.kubelets[i]
            .events_for(file)
            .iter()
            .filter(|e| e.kind == EventKind::Stopped && e.at > after)
            .count()
    }

    /// Wait until node i owes nothing and each of `files` was stopped and started again
    /// after `after`.
    fn wait_restarted(&self, i: usize, files: &[&str], after: SystemTime, d: &[&Daemon]) {
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
            d.iter()
                .map(|d| d.log_text())
                .collect::<Vec<_>>()
                .join("\n-----\n")
        );
    }

    fn daemons(&self, which: &[usize], extra: &str) -> Vec<Daemon> {
        which
            .iter()
            .map(|&i| {
                let cfg = self.node(i).write_config(extra);
                self.node(i).daemon(&cfg)
            })
            .collect()
    }

    /// Wait until node i's metrics textfile holds `line`.
    fn wait_metric(&self, i: usize, line: &str) {
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

    fn cli(&self, i: usize, args: &[&str]) -> std::process::Output {
        let cfg = self.node(i).write_config(COORD);
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
}

/// Down intervals of one node: from a Stopped event to the next Started of the same file.
fn down_intervals(events: &[Event]) -> Vec<(String, SystemTime, SystemTime)> {
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

/// Puts a key every 100 ms through whichever member answers; the instants of the successes.
struct Writer {
    stop: Arc<AtomicBool>,
    t: std::thread::JoinHandle<Vec<Instant>>,
}

impl Writer {
    fn start(n: &ClusterNode) -> Writer {
        let pki = n.root.join("etc/kubernetes/pki/etcd");
        let tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(
                std::fs::read(pki.join("ca.crt")).unwrap(),
            ))
            .identity(etcd_client::Identity::from_pem(
                std::fs::read(pki.join("healthcheck-client.crt")).unwrap(),
                std::fs::read(pki.join("healthcheck-client.key")).unwrap(),
            ));
        let opts = etcd_client::ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(Duration::from_millis(500))
            .with_require_leader(true);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let urls: Vec<String> = cluster_support::IPS
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
                            let c = tokio::time::timeout(
                                Duration::from_millis(500),
                                etcd_client::Client::connect(
                                    [urls[j].as_str()],
                                    Some(opts.clone()),
                                ),
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

    /// Stop; the longest time between two successful writes.
    fn finish(self) -> Duration {
        self.stop.store(true, Ordering::SeqCst);
        let ok = self.t.join().unwrap();
        assert!(ok.len() > 10, "the writer hardly wrote: {}", ok.len());
        ok.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
    }
}

#[test]
fn three_daemons_all_due_restart_one_node_at_a_time_and_etcd_stays_writable() {
    let Some(ha) = Ha::start() else { return };
    let t0 = SystemTime::now();
    let writer = Writer::start(ha.node(0));
    let mut ds = ha.daemons(&[0, 1, 2], COORD);
    let refs: Vec<&Daemon> = ds.iter().collect();
    for i in 0..3 {
        ha.wait_restarted(i, &FILES, t0, &refs);
    }
    let gap = writer.finish();
    for i in 0..3 {
        ha.wait_metric(i, "kubeadm_certd_etcd_members_healthy 3");
        ha.wait_metric(i, "kubeadm_certd_lock_held 0");
        ha.wait_metric(i, "kubeadm_certd_halt_present 0");
    }
    for d in &mut ds {
        d.stop();
    }
    // No two nodes ever had a component down at the same time.
    let per_node: Vec<Vec<(String, SystemTime, SystemTime)>> = ha
        .kubelets
        .iter()
        .map(|h| down_intervals(&h.events()))
        .collect();
    for a in 0..3 {
        for b in a + 1..3 {
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
    // Each node restarted every component exactly once.
    for (i, v) in per_node.iter().enumerate() {
        for f in FILES {
            assert_eq!(
                v.iter().filter(|(x, _, _)| x == f).count(),
                1,
                "node {} {f}: {v:?}",
                i + 1
            );
        }
    }
    println!("LONGEST_WRITE_GAP seconds={:.2}", gap.as_secs_f64());
    assert!(
        gap <= Duration::from_secs(3),
        "etcd was not writable for {gap:?}"
    );
    // Figures for the benchmark: rollout wall time vs the sum of each node's own sequence.
    let span = |v: &[(String, SystemTime, SystemTime)]| {
        let s = v.iter().map(|x| x.1).min().unwrap();
        let e = v.iter().map(|x| x.2).max().unwrap();
        (s, e)
    };
    let spans: Vec<_> = per_node.iter().map(|v| span(v)).collect();
    let own: f64 = spans
        .iter()
        .map(|(s, e)| e.duration_since(*s).unwrap().as_secs_f64())
        .sum();
    let first = spans.iter().map(|x| x.0).min().unwrap();
    let last = spans.iter().map(|x| x.1).max().unwrap();
    println!(
        "BENCH ha_rollout_seconds={:.2} sum_of_node_sequences_seconds={:.2}",
        last.duration_since(first).unwrap().as_secs_f64(),
        own
    );
    let log = ds[0].log_text() + &ds[1].log_text() + &ds[2].log_text();
    assert!(log.contains("acquired the restart lock"), "{log}");
    assert!(log.contains("released the restart lock"), "{log}");
}

#[test]
fn halt_on_node1_stops_the_others_until_cluster_resume() {
    let Some(ha) = Ha::start() else { return };
    let t0 = SystemTime::now();
    // kube-apiserver on node 1 will not come back.
    ha.node(0).hook("kube-apiserver.die", Some("x"));
    let _d1 = {
        let cfg = ha.node(0).write_config("");
        // Replace the restart section with a short timeout so the failure comes soon.
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("timeout: 60s", "timeout: 10s");
        std::fs::write(&cfg, format!("{text}{COORD}")).unwrap();
        ha.node(0).daemon(&cfg)
    };
    let halted = KubeletHarness::wait_until(LIMIT, || {
        let o = ha.cli(1, &["cluster", "status", "-o", "json"]);
        String::from_utf8_lossy(&o.stdout).contains("\"component\": \"kube-apiserver\"")
    });
    assert!(halted, "no halt record; node 1 log:\n{}", _d1.log_text());
    let t_halt = SystemTime::now();
    let ds = ha.daemons(&[1, 2], COORD);
    // Several cycles pass: nodes 2 and 3 renew but restart nothing, and owe their restarts.
    let owed = KubeletHarness::wait_until(LIMIT, || {
        ha.node(1).owed().len() == 4 && ha.node(2).owed().len() == 4
    });
    assert!(
        owed,
        "owed: {:?} {:?}",
        ha.node(1).owed(),
        ha.node(2).owed()
    );
    std::thread::sleep(Duration::from_secs(6));
    for i in [1, 2] {
        for f in FILES {
            assert_eq!(
                ha.stops(i, f, t0),
                0,
                "node {} stopped {f} during the halt",
                i + 1
            );
        }
        assert!(
            ds[i - 1].log_text().contains("restarts are halted"),
            "{}",
            ds[i - 1].log_text()
        );
    }
    ha.wait_metric(1, "kubeadm_certd_halt_present 1");
    let text = String::from_utf8_lossy(&ha.cli(1, &["cluster", "status"]).stdout).to_string();
    assert!(text.contains("Halt: halted by cp1"), "{text}");
    // The operator fixes node 1 and resumes.
    ha.node(0).hook("kube-apiserver.die", None);
    let out = ha.cli(2, &["cluster", "resume"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("Restarts are halted: halted by cp1") && said.contains("cleared"),
        "{said}"
    );
    let refs: Vec<&Daemon> = ds.iter().collect();
    ha.wait_restarted(1, &FILES, t_halt, &refs);
    ha.wait_restarted(2, &FILES, t_halt, &refs);
}

#[test]
fn quorum_guard_defers_etcd_while_a_member_is_down() {
    let Some(ha) = Ha::start() else { return };
    let t0 = SystemTime::now();
    // Node 3's etcd is stopped (its manifest moved away, as during a restart).
    let aside = ha.stop_etcd(2);
    let ds = ha.daemons(&[1], COORD);
    let others = [
        "kube-apiserver.yaml",
        "kube-controller-manager.yaml",
        "kube-scheduler.yaml",
    ];
    let ok = KubeletHarness::wait_until(LIMIT, || {
        others.iter().all(|f| ha.stops(1, f, t0) > 0) && ha.node(1).owed() == ["etcd"]
    });
    assert!(ok, "owed {:?}\n{}", ha.node(1).owed(), ds[0].log_text());
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        ha.stops(1, "etcd.yaml", t0),
        0,
        "etcd restarted without quorum to spare"
    );
    assert_eq!(ha.node(1).owed(), ["etcd"]);
    let log = ds[0].log_text();
    assert!(
        log.contains("etcd restart deferred") && log.contains("cp3"),
        "{log}"
    );
    // Once the member is back, node 2 restarts its etcd.
    std::fs::rename(&aside, ha.node(2).manifest_path("etcd")).unwrap();
    let refs: Vec<&Daemon> = ds.iter().collect();
    ha.wait_restarted(1, &["etcd.yaml"], t0, &refs);
}

#[test]
fn killed_holder_releases_after_the_ttl_and_recover_restores_its_manifest() {
    let Some(ha) = Ha::start() else { return };
    let t0 = SystemTime::now();
    let mut d1 = ha.daemons(&[0], COORD).pop().unwrap();
    // Mid-hold: a manifest of node 1 is parked.
    let parked = KubeletHarness::wait_until(LIMIT, || {
        std::fs::read_dir(ha.node(0).parking())
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".yaml"))
            })
            .unwrap_or(false)
    });
    assert!(parked, "{}", d1.log_text());
    d1.kill();
    let ds = ha.daemons(&[1, 2], COORD);
    // The others proceed once the dead holder's lease has expired. Node 1's etcd was the
    // manifest parked, so its member is down: their own etcd restarts wait (quorum guard).
    let others = [
        "kube-apiserver.yaml",
        "kube-controller-manager.yaml",
        "kube-scheduler.yaml",
    ];
    let parked_etcd = !ha.node(0).manifest_path("etcd").exists();
    let proceeded = KubeletHarness::wait_until(LIMIT, || {
        [1, 2]
            .iter()
            .all(|&i| others.iter().all(|f| ha.stops(i, f, t0) > 0))
    });
    assert!(
        proceeded,
        "{}",
        ds.iter()
            .map(|d| d.log_text())
            .collect::<Vec<_>>()
            .join("\n-----\n")
    );
    if parked_etcd {
        for i in [1, 2] {
            let only_etcd = KubeletHarness::wait_until(LIMIT, || ha.node(i).owed() == ["etcd"]);
            assert!(only_etcd, "node {}: owed {:?}", i + 1, ha.node(i).owed());
            assert_eq!(
                ha.stops(i, "etcd.yaml", t0),
                0,
                "node {} restarted etcd",
                i + 1
            );
        }
    }
    // `recover` on the killed node puts its manifest back.
    let out = ha.cli(0, &["recover"]);
    assert!(out.status.success());
    let left: Vec<_> = std::fs::read_dir(ha.node(0).parking())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "still parked: {left:?}");
    for f in FILES {
        assert!(
            ha.node(0)
                .root
                .join("etc/kubernetes/manifests")
                .join(f)
                .exists(),
            "{f}"
        );
    }
    // With node 1's member back, every node finishes.
    let refs: Vec<&Daemon> = ds.iter().collect();
    ha.wait_restarted(1, &FILES, t0, &refs);
    ha.wait_restarted(2, &FILES, t0, &refs);
}

#[test]
fn break_glass_restarts_without_quorum_and_says_so() {
    let Some(ha) = Ha::start() else { return };
    let t0 = SystemTime::now();
    // Two of three members down: no quorum anywhere.
    for i in [1, 2] {
        ha.stop_etcd(i);
    }
    let cfg = "coordination:\n  lockTTL: 5s\n  lockTimeout: 2s\n  breakGlassAfter: 6s\n";
    let ds = ha.daemons(&[0], cfg);
    let refs: Vec<&Daemon> = ds.iter().collect();
    ha.wait_restarted(0, &FILES, t0, &refs);
    let log = ds[0].log_text();
    assert!(log.contains("break glass"), "{log}");
}

#[test]
fn a_long_wait_for_the_lock_shows_in_the_metrics_while_it_lasts() {
    use kubeadm_certd::cluster::settings::Coordination;
    use kubeadm_certd::cluster::Coordinator;
    let Some(ha) = Ha::start() else { return };
    let t0 = SystemTime::now();
    // Node 3 holds the lock, taken through the library as its daemon would take it.
    let s = Coordination {
        lock_ttl: Duration::from_secs(5),
        lock_timeout: Duration::from_secs(60),
        ..Coordination::default()
    };
    let holder = Coordinator::connect(&ha.node(2).paths(), &s)
        .expect("connect")
        .expect("coordinated");
    let now = time::OffsetDateTime::now_utc();
    let permit = holder
        .acquire("cp3", &|| false, now, &|_, _| {})
        .expect("the free lock");
    let ds = ha.daemons(&[0], COORD);
    // While node 1 waits, its wait gauge grows past 6 s (LockWaitTooLong can fire during the
    // wait, not only after it), and it restarts nothing.
    let prom = ha.node(0).root.join("var/lib/kubeadm-certd/metrics.prom");
    let waited = |t: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix("kubeadm_certd_lock_wait_seconds "))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let grew = KubeletHarness::wait_until(LIMIT, || {
        std::fs::read_to_string(&prom).is_ok_and(|t| waited(&t).is_some_and(|w| w >= 6.0))
    });
    let text = std::fs::read_to_string(&prom).unwrap_or_default();
    assert!(
        grew,
        "no growing lock wait in\n{text}\n{}",
        ds[0].log_text()
    );
    assert!(
        text.lines().any(|l| l == "kubeadm_certd_lock_held 0"),
        "{text}"
    );
    for f in FILES {
        assert_eq!(
            ha.stops(0, f, t0),
            0,
            "{f} restarted while cp3 held the lock"
        );
    }
    assert!(
        ds[0]
            .log_text()
            .contains("waiting for the restart lock, held by cp3"),
        "{}",
        ds[0].log_text()
    );
    permit.release().expect("release");
    let refs: Vec<&Daemon> = ds.iter().collect();
    ha.wait_restarted(0, &FILES, t0, &refs);
    ha.wait_metric(0, "kubeadm_certd_lock_held 0");
    // Not waiting any more: the gauge drops, so the alert resolves.
    ha.wait_metric(0, "kubeadm_certd_lock_wait_seconds 0.000");
}
