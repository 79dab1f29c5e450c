//! The coordination layer against a real 3-member etcd 3.4 cluster over TLS (no mocks):
//! discovery, the restart lock, a dead holder, the quorum guard, halt, break glass, and the
//! `auto` mode decisions.

#[path = "support/cluster.rs"]
mod cluster_support;
mod support;

use cluster_support::{Cluster, ClusterNode};
use kubeadm_certd::cluster::halt::Halt;
use kubeadm_certd::cluster::settings::{Coordination, Mode};
use kubeadm_certd::cluster::{endpoints, Coordinator, Wait};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

fn settings(f: impl Fn(&mut Coordination)) -> Coordination {
    let mut c = Coordination {
        lock_ttl: Duration::from_secs(5),
        lock_timeout: Duration::from_secs(60),
        ..Coordination::default()
    };
    f(&mut c);
    c
}

fn coord(n: &ClusterNode, s: &Coordination) -> Coordinator {
    Coordinator::connect(&n.paths(), s)
        .expect("connect")
        .expect("a 3-member cluster is coordinated")
}

fn never() -> bool {
    false
}
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[test]
fn discovers_every_member_from_the_manifest_and_member_list() {
    let Some(c) = Cluster::start() else { return };
    let view = endpoints::local_view(&c.nodes[1].paths());
    assert_eq!(
        view.local_client_urls,
        vec!["https://127.0.0.12:2379".to_string()]
    );
    assert_eq!(view.initial_cluster, vec!["cp1", "cp2", "cp3"]);
    let co = coord(&c.nodes[1], &settings(|_| {}));
    let st = co.status().expect("status");
    let mut names: Vec<String> = st.members.iter().map(|h| h.member.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["cp1", "cp2", "cp3"]);
    for h in &st.members {
        let s = h.status.as_ref().expect("every member answers");
        assert!(s.version.starts_with("3.4"), "{}", s.version);
        assert_ne!(s.leader, 0);
    }
    assert!(st.queue.is_empty());
    assert!(st.halt.is_none());
    assert_eq!(co.healthy_members(), Some(3));
    // The members seen are remembered for auto mode and for reaching the cluster later.
    assert_eq!(endpoints::last_seen(&c.nodes[1].paths()), Some(3));
}

#[test]
fn lock_is_exclusive_between_two_nodes() {
    let Some(c) = Cluster::start() else { return };
    let c1 = coord(&c.nodes[0], &settings(|_| {}));
    let c2 = coord(
        &c.nodes[1],
        &settings(|s| s.lock_timeout = Duration::from_secs(3)),
    );
    let p1 = c1
        .acquire("cp1", &never, now(), &|_, _| {})
        .expect("cp1 wins the free lock");
    assert!(!p1.is_break_glass());
    let seen = std::sync::Mutex::new(Vec::<String>::new());
    let on_wait = |h: &str, _waited: Duration| {
        let mut seen = seen.lock().unwrap();
        if seen.last().map(String::as_str) != Some(h) {
            seen.push(h.to_string());
        }
    };
    match c2.acquire("cp2", &never, now(), &on_wait) {
        Err(Wait::Timeout { holder, .. }) => assert_eq!(holder.as_deref(), Some("cp1")),
        Err(w) => panic!("expected a timeout naming cp1, got {w}"),
        Ok(_) => panic!("cp2 got the lock while cp1 held it"),
    }
    assert_eq!(*seen.lock().unwrap(), ["cp1"]);
    let q = c1.status().unwrap().queue;
    assert_eq!(q.len(), 1, "the timed-out waiter left the queue: {q:?}");
    assert_eq!(q[0].node, "cp1");
    // A waiter started while cp1 holds it gets it once cp1 releases.
    std::thread::scope(|s| {
        let c2b = coord(&c.nodes[1], &settings(|_| {}));
        let t = s.spawn(move || {
            let p = c2b.acquire("cp2", &never, now(), &|_, _| {}).map(|p| {
                let lost = p.lost();
                p.release().unwrap();
                lost
            });
            p.map_err(|w| w.to_string())
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while c1.status().unwrap().queue.len() < 2 {
            assert!(Instant::now() < deadline, "cp2 never queued");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(c1.status().unwrap().queue[1].node, "cp2");
        p1.release().unwrap();
        assert_eq!(t.join().unwrap(), Ok(false));
    });
    assert!(c1.status().unwrap().queue.is_empty());
}

#[test]
fn works_with_one_member_stopped_including_the_local_one() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    // Seen once while everything was up (remembers the other members' URLs).
    drop(coord(&c.nodes[0], &settings(|_| {})));
    c.nodes[0].stop();
    // cp1's own member is down: its manifest's URL is dead, the others still lead in.
    let c1 = coord(&c.nodes[0], &settings(|_| {}));
    let p = c1
        .acquire("cp1", &never, now(), &|_, _| {})
        .expect("lock with one member down");
    // Keep-alives must go to the live members for longer than the TTL.
    std::thread::sleep(Duration::from_secs(8));
    assert!(!p.lost(), "lease lost with one member down");
    let st = c1.status().unwrap();
    let down: Vec<_> = st
        .members
        .iter()
        .filter(|h| h.status.is_err())
        .map(|h| h.member.name.clone())
        .collect();
    assert_eq!(down, ["cp1"]);
    assert_eq!(st.queue[0].node, "cp1");
    p.release().unwrap();
}

#[test]
fn member_going_down_mid_hold_keeps_the_lease() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    let c1 = coord(&c.nodes[0], &settings(|_| {}));
    let p = c1.acquire("cp1", &never, now(), &|_, _| {}).unwrap();
    // The local member goes down during its own restart, then comes back.
    c.nodes[0].stop();
    std::thread::sleep(Duration::from_secs(8));
    assert!(!p.lost(), "lease lost while the local member was down");
    c.nodes[0].start();
    c.wait_healthy(&[0]);
    p.wait_member_caught_up(Duration::from_secs(30), &never)
        .expect("local member catches up");
    p.release().unwrap();
}

/// Not a test on its own: run by `dead_holder_is_replaced_after_the_ttl` in a child process
/// that takes the lock and is then SIGKILLed.
#[test]
#[ignore]
fn child_holds_lock() {
    let root = std::env::var("CLUSTER_CHILD_ROOT").expect("run by the parent test");
    let paths = kubeadm_certd::config::Settings::default()
        .paths(&kubeadm_certd::node::paths::Root::new(root));
    let co = Coordinator::connect(&paths, &settings(|_| {}))
        .unwrap()
        .unwrap();
    let p = co.acquire("cp3", &never, now(), &|_, _| {}).unwrap();
    println!("HELD");
    std::thread::sleep(Duration::from_secs(600));
    drop(p);
}

#[test]
fn dead_holder_is_replaced_after_the_ttl() {
    let Some(c) = Cluster::start() else { return };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_holds_lock", "--nocapture"])
        .env("CLUSTER_CHILD_ROOT", &c.nodes[2].root)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let c1 = coord(
        &c.nodes[0],
        &settings(|s| s.lock_timeout = Duration::from_secs(2)),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while c1.status().unwrap().queue.first().map(|h| h.node.as_str()) != Some("cp3") {
        assert!(Instant::now() < deadline, "the child never took the lock");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(matches!(
        c1.acquire("cp1", &never, now(), &|_, _| {}),
        Err(Wait::Timeout { holder: Some(h), .. }) if h == "cp3"
    ));
    child.kill().unwrap(); // SIGKILL: no release, the lease must expire
    child.wait().unwrap();
    let c1 = coord(&c.nodes[0], &settings(|_| {}));
    let p = c1
        .acquire("cp1", &never, now(), &|_, _| {})
        .expect("the lock passes on once the dead holder's lease expires");
    assert_eq!(c1.status().unwrap().queue[0].node, "cp1");
    p.release().unwrap();
}

#[test]
fn quorum_guard_defers_naming_the_stopped_member_then_allows() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    let c1 = coord(&c.nodes[0], &settings(|_| {}));
    let p = c1.acquire("cp1", &never, now(), &|_, _| {}).unwrap();
    p.etcd_guard().expect("all healthy: allowed");
    c.nodes[2].stop();
    // Every answer defers and names cp3; while the others elect a new leader (if cp3 led)
    // they may be named too, until the election settles.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = p.etcd_guard().expect_err("a member down: deferred");
        assert!(d.unhealthy.contains(&"cp3".to_string()), "{d:?}");
        assert!(d.reason.contains("cp3"), "{}", d.reason);
        if d.unhealthy == ["cp3"] {
            break;
        }
        assert!(Instant::now() < deadline, "others still unhealthy: {d:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    c.nodes[2].start();
    c.wait_healthy(&[2]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(d) = p.etcd_guard() {
        assert!(
            Instant::now() < deadline,
            "still deferred after cp3 came back: {d}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    p.release().unwrap();
}

#[test]
fn halt_blocks_every_node_until_cleared() {
    let Some(c) = Cluster::start() else { return };
    let c1 = coord(&c.nodes[0], &settings(|_| {}));
    let c2 = coord(&c.nodes[1], &settings(|_| {}));
    let p = c1.acquire("cp1", &never, now(), &|_, _| {}).unwrap();
    p.halt(
        "kube-apiserver",
        "did not come back healthy; rolled back",
        now(),
    )
    .unwrap();
    p.release().unwrap();
    let h: Halt = c2
        .halt_record()
        .unwrap()
        .expect("halt record visible to cp2");
    assert_eq!(
        (h.node.as_str(), h.component.as_str()),
        ("cp1", "kube-apiserver")
    );
    assert!(OffsetDateTime::parse(&h.time, &time::format_description::well_known::Rfc3339).is_ok());
    match c2.acquire("cp2", &never, now(), &|_, _| {}) {
        Err(Wait::Halted(got)) => assert_eq!(got, h),
        Err(w) => panic!("expected halted, got {w}"),
        Ok(_) => panic!("cp2 got the lock despite the halt"),
    }
    assert_eq!(c1.status().unwrap().halt, Some(h));
    assert!(c2.clear_halt().unwrap());
    assert!(!c2.clear_halt().unwrap());
    assert!(c1.halt_record().unwrap().is_none());
    c2.acquire("cp2", &never, now(), &|_, _| {})
        .unwrap()
        .release()
        .unwrap();
}

#[test]
fn break_glass_with_every_member_down_then_relock_when_quorum_returns() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    let s = settings(|s| {
        s.break_glass_after = Duration::from_secs(3);
        s.lock_timeout = Duration::from_secs(1);
    });
    let c1 = coord(&c.nodes[0], &s);
    for n in &mut c.nodes {
        n.stop();
    }
    // Not due yet: the lock timeout comes first and says when break glass is due.
    match c1.acquire("cp1", &never, now(), &|_, _| {}) {
        Err(Wait::Unreachable { break_glass_in, .. }) => {
            assert!(break_glass_in <= Duration::from_secs(3))
        }
        Err(w) => panic!("expected unreachable, got {w}"),
        Ok(_) => panic!("a permit before breakGlassAfter"),
    }
    let s = settings(|s| s.break_glass_after = Duration::from_secs(3));
    let c1 = coord(&c.nodes[0], &s);
    let mut p = c1
        .acquire("cp1", &never, now(), &|_, _| {})
        .expect("break glass");
    assert!(p.is_break_glass());
    p.etcd_guard().expect("break glass restarts etcd too");
    // Still down: the checkpoint carries on without the lock.
    p.checkpoint(&never, now()).unwrap();
    assert!(p.is_break_glass());
    for n in &mut c.nodes {
        n.start();
    }
    c.wait_healthy(&[0, 1, 2]);
    p.checkpoint(&never, now()).unwrap();
    assert!(
        !p.is_break_glass(),
        "the lock is taken again once quorum is back"
    );
    assert_eq!(c1.status().unwrap().queue[0].node, "cp1");
    p.release().unwrap();
}

#[test]
fn cancel_is_honoured_within_a_second() {
    let Some(c) = Cluster::start() else { return };
    let c1 = coord(&c.nodes[0], &settings(|_| {}));
    let c2 = coord(&c.nodes[1], &settings(|_| {}));
    let p = c1.acquire("cp1", &never, now(), &|_, _| {}).unwrap();
    let stop_at = Instant::now() + Duration::from_secs(2);
    let cancel = || Instant::now() >= stop_at;
    let r = c2.acquire("cp2", &cancel, now(), &|_, _| {});
    assert!(matches!(r, Err(Wait::Cancelled)));
    assert!(
        stop_at.elapsed() < Duration::from_secs(1),
        "cancel took {:?}",
        stop_at.elapsed()
    );
    assert_eq!(
        c1.status().unwrap().queue.len(),
        1,
        "the cancelled waiter left the queue"
    );
    p.release().unwrap();
}

/// Nodes whose etcd is not running, on IPs no test cluster uses.
fn offline_node(dir: &std::path::Path, initial: &str) -> kubeadm_certd::node::NodePaths {
    let mut s = kubeadm_certd::testkit::nodebuilder::NodeSpec::new(now());
    s.advertise = "127.0.0.21".parse().unwrap();
    kubeadm_certd::testkit::nodebuilder::build(dir, &s).unwrap();
    let m = cluster_support::etcd_manifest("cp1", "127.0.0.21", initial, &["etcd".into()]);
    std::fs::write(dir.join("etc/kubernetes/manifests/etcd.yaml"), m).unwrap();
    kubeadm_certd::config::Settings::default().paths(&kubeadm_certd::node::paths::Root::new(dir))
}

#[test]
fn auto_mode_decides_from_initial_cluster_when_etcd_is_unreachable() {
    let t = tempfile::tempdir().unwrap();
    let three =
        "cp1=https://127.0.0.21:2380,cp2=https://127.0.0.22:2380,cp3=https://127.0.0.23:2380";
    let p = offline_node(&t.path().join("a"), three);
    let auto = settings(|_| {});
    assert!(
        Coordinator::connect(&p, &auto).unwrap().is_some(),
        "3 in --initial-cluster"
    );
    let p = offline_node(&t.path().join("b"), "cp1=https://127.0.0.21:2380");
    assert!(
        Coordinator::connect(&p, &auto).unwrap().is_none(),
        "a single member"
    );
    let none = settings(|s| s.mode = Mode::None);
    let p3 = offline_node(&t.path().join("c"), three);
    assert!(
        Coordinator::connect(&p3, &none).unwrap().is_none(),
        "mode none"
    );
    // A single-member manifest but three members seen last time: coordinate.
    let members: Vec<_> = (1..=3)
        .map(|i| kubeadm_certd::cluster::client::Member {
            id: i,
            name: format!("cp{i}"),
            client_urls: vec![format!("https://127.0.0.2{i}:2379")],
            is_learner: false,
        })
        .collect();
    endpoints::record_seen(&p, &members);
    assert!(
        Coordinator::connect(&p, &auto).unwrap().is_some(),
        "3 members seen last"
    );
}

#[test]
fn single_member_cluster_is_not_coordinated() {
    if !support::etcd::require_etcd() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("node");
    let mut s = kubeadm_certd::testkit::nodebuilder::NodeSpec::new(now());
    s.advertise = "127.0.0.1".parse().unwrap();
    kubeadm_certd::testkit::nodebuilder::build(&root, &s).unwrap();
    let etcd = support::etcd::Etcd::start(&root, &t.path().join("data")).unwrap();
    // The manifest names the running member, as kubeadm's annotation would.
    let m = std::fs::read_to_string(root.join("etc/kubernetes/manifests/etcd.yaml")).unwrap();
    let m = m.replacen(
        "metadata:\n",
        &format!(
            "metadata:\n  annotations:\n    kubeadm.kubernetes.io/etcd.advertise-client-urls: {}\n",
            etcd.client_url
        ),
        1,
    );
    std::fs::write(root.join("etc/kubernetes/manifests/etcd.yaml"), m).unwrap();
    let paths = kubeadm_certd::config::Settings::default()
        .paths(&kubeadm_certd::node::paths::Root::new(&root));
    assert!(
        Coordinator::connect(&paths, &settings(|_| {}))
            .unwrap()
            .is_none(),
        "auto: one member, no coordination"
    );
    assert_eq!(
        endpoints::last_seen(&paths),
        Some(1),
        "the member was reached"
    );
    let forced = Coordinator::connect(&paths, &settings(|s| s.mode = Mode::Etcd)).unwrap();
    let co = forced.expect("mode etcd coordinates even a single member");
    co.acquire("cp1", &never, now(), &|_, _| {})
        .unwrap()
        .release()
        .unwrap();
}

#[test]
fn config_example_documents_coordination() {
    let text = include_str!("../config.example.yaml");
    let s = kubeadm_certd::config::Settings::parse(text).expect("config.example.yaml parses");
    assert_eq!(s.coordination, Coordination::default());
    let s = kubeadm_certd::config::Settings::parse("coordination:\n  mode: none\n").unwrap();
    assert_eq!(s.coordination.mode, Mode::None);
    let e = kubeadm_certd::config::Settings::parse("coordination:\n  lockTtl: 9s\n").unwrap_err();
    assert!(format!("{e:#}").contains("lockTtl"), "{e:#}");
}
