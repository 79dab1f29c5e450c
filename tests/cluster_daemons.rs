//! Issue 11's evidence: three real daemons (`run`) on three node roots sharing their CAs, each
//! with its own stand-in kubelet, where etcd.yaml runs a real member of a 3-member etcd 3.4
//! cluster over TLS and the other components are stand-ins. All certificates are due.

#[path = "support/cluster.rs"]
mod cluster_support;
#[path = "support/ha.rs"]
mod ha;
#[path = "support/kubelet.rs"]
mod kubelet;

use cluster_support::Daemon;
use ha::{assert_one_node_down_at_a_time, down_intervals, logs, Ha, Writer, FILES, LIMIT};
use kubelet::KubeletHarness;
use std::time::{Duration, SystemTime};

const COORD: &str = "coordination:\n  lockTTL: 5s\n  lockTimeout: 10m\n";

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
    let (gap, _) = writer.finish();
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
    assert_one_node_down_at_a_time(&per_node);
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
        let o = ha.cli(1, COORD, &["cluster", "status", "-o", "json"]);
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
    ha.assert_no_stops(&[1, 2], t0);
    for i in [1, 2] {
        assert!(
            ds[i - 1].log_text().contains("restarts are halted"),
            "{}",
            ds[i - 1].log_text()
        );
    }
    ha.wait_metric(1, "kubeadm_certd_halt_present 1");
    let text =
        String::from_utf8_lossy(&ha.cli(1, COORD, &["cluster", "status"]).stdout).to_string();
    assert!(text.contains("Halt: halted by cp1"), "{text}");
    // The operator fixes node 1 and resumes.
    ha.node(0).hook("kube-apiserver.die", None);
    let out = ha.cli(2, COORD, &["cluster", "resume"]);
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
    assert!(proceeded, "{}", logs(&ds.iter().collect::<Vec<_>>()));
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
    let out = ha.cli(0, COORD, &["recover"]);
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
