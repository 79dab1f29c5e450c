//! Issue 19's idle footprint, by structure (nothing here is timed): a single control-plane
//! node's daemon never connects to etcd while idle, though its restarts still look there; an
//! HA node's idle daemon reads etcd for its gauges without an etcd thread, and the restart
//! lock drives one only while it is held. The ignored `bench_idle_ha_node` is scripts/bench's
//! measurement of an idle HA node (RSS, threads, CPU).

#[path = "support/cluster.rs"]
mod cluster_support;

use cluster_support::Cluster;
use kubeadm_certd::cluster::runtime::DRIVER_THREAD;
use kubeadm_certd::cluster::settings::Coordination;
use kubeadm_certd::cluster::Coordinator;
use kubeadm_certd::config::Settings;
use kubeadm_certd::node::paths::Root;
use kubeadm_certd::testkit::nodebuilder::{self, NodeSpec, Ports};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bounds waits so that a broken test fails instead of hanging; never a speed requirement.
const LIMIT: Duration = Duration::from_secs(120);
const PROM: &str = "var/lib/kubeadm-certd/metrics.prom";

/// A plain TCP listener standing where the node's etcd would listen: it counts connections
/// (and closes them, so a TLS client fails its handshake).
struct Listener {
    port: u16,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    fn start() -> Listener {
        let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let (count, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (c, s) = (count.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok(_) => {
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Listener {
            port,
            count,
            stop,
            thread: Some(thread),
        }
    }

    fn connections(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A single control-plane node (one member in `--initial-cluster`) whose etcd client URL is
/// `https://127.0.0.1:port` (as the node builder writes it), with nothing due.
fn single_node(dir: &Path, port: u16) -> PathBuf {
    let ip = "127.0.0.1";
    let mut s = NodeSpec::new(time::OffsetDateTime::now_utc());
    s.leaf_left = Duration::from_secs(300 * 86_400);
    s.ports = Ports {
        etcd_client: port,
        ..Ports::default()
    };
    let root = dir.join("node");
    nodebuilder::build(&root, &s).unwrap();
    let m = std::fs::read_to_string(root.join("etc/kubernetes/manifests/etcd.yaml")).unwrap();
    assert!(m.contains(&format!("--advertise-client-urls=https://{ip}:{port}")));
    assert_eq!(m.matches("--initial-cluster=").count(), 1);
    root
}

/// The names of a process's threads (`comm`: the first 15 bytes).
fn threads(pid: u32) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect()
}

fn is_etcd_thread(name: &str) -> bool {
    name.len() >= 15 && DRIVER_THREAD.starts_with(name)
}

/// A running daemon, SIGTERMed and reaped when dropped (also when an assertion fails).
struct Running(Child);

impl Running {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

/// `kubeadm-certd run` on `root` (config `config`, under the root), stderr to `log`.
fn daemon(bin: &Path, root: &Path, config: &str, log: &Path) -> Running {
    let cfg = root.join("etc/kubeadm-certd/config.yaml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, config).unwrap();
    Command::new(bin)
        .arg("--root")
        .arg(root)
        .arg("run")
        .env_remove("JOURNAL_STREAM")
        .env("KUBEADM_CERTD_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .map(Running)
        .unwrap()
}

/// Sample the daemon's threads every 50 ms until `until` says stop; panics on an etcd thread.
fn watch_threads(pid: u32, log: &Path, mut until: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !until() {
        let names = threads(pid);
        assert!(
            !names.iter().any(|n| is_etcd_thread(n)),
            "an idle daemon started the etcd thread: {names:?}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines of `debug` level the daemon logged for finished cycles.
fn cycles(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("cycle (")
        .count()
}

#[test]
fn single_node_daemon_never_connects_to_etcd_while_idle() {
    let t = tempfile::tempdir().unwrap();
    let etcd = Listener::start();
    let root = single_node(t.path(), etcd.port);
    let log = t.path().join("daemon.log");
    let cfg = format!("checkInterval: 1s\njitter: 0s\nmetrics:\n  textfile: /{PROM}\n");
    let child = daemon(
        Path::new(env!("CARGO_BIN_EXE_kubeadm-certd")),
        &root,
        &cfg,
        &log,
    );
    let pid = child.id();
    // Several timer cycles, and one after a change in a watched directory.
    watch_threads(pid, &log, || cycles(&log) >= 3);
    std::fs::write(root.join("etc/kubernetes/pki/unrelated.txt"), "x").unwrap();
    let seen = cycles(&log);
    watch_threads(pid, &log, || cycles(&log) >= seen + 2);
    assert_eq!(
        etcd.connections(),
        0,
        "the single node's daemon connected to etcd\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let prom = std::fs::read_to_string(root.join(PROM)).unwrap();
    assert!(
        !prom.contains("kubeadm_certd_etcd_members_healthy"),
        "{prom}"
    );
    // The listener does count: once the manifest names three members, the gauges look at
    // etcd (which fails its TLS handshake here) on the next cycle.
    let manifest = root.join("etc/kubernetes/manifests/etcd.yaml");
    let m = std::fs::read_to_string(&manifest).unwrap();
    let three = "--initial-cluster=cp1=https://127.0.0.1:2380,cp2=https://127.0.0.32:2380,cp3=https://127.0.0.33:2380";
    let m: String = m
        .lines()
        .map(|l| match l.find("--initial-cluster=") {
            Some(i) => format!("{}{three}\n", &l[..i]),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&manifest, m).unwrap();
    let deadline = Instant::now() + LIMIT;
    while etcd.connections() == 0 {
        assert!(Instant::now() < deadline, "no connection after the change");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(child);
}

#[test]
fn the_first_node_learns_from_the_api_that_others_joined() {
    // `kubeadm join --control-plane` adds etcd members but changes nothing on the first
    // node's disk (its manifest still names one member): the daemon's API task counts the
    // control-plane Nodes, and from then on the idle gauges (and a CA rotation) look at etcd.
    let t = tempfile::tempdir().unwrap();
    let etcd = Listener::start();
    let root = single_node(t.path(), etcd.port);
    let api = kubeadm_certd::testkit::apiserver::ApiServer::start(
        kubeadm_certd::testkit::apiserver::Options::for_node(&root).unwrap(),
    )
    .unwrap();
    api.point_kubeconfig(&root.join("etc/kubernetes/admin.conf"))
        .unwrap();
    api.put_kubeadm_config("v1.31.0");
    for (n, ip) in [("cp1", "127.0.0.1"), ("cp2", "127.0.0.32")] {
        api.add_node(n, &[("InternalIP", ip), ("Hostname", n)]);
        assert!(api.label_node(n, "node-role.kubernetes.io/control-plane", ""));
    }
    let log = t.path().join("daemon.log");
    let cfg = format!("checkInterval: 1s\njitter: 0s\nmetrics:\n  textfile: /{PROM}\n");
    let child = daemon(
        Path::new(env!("CARGO_BIN_EXE_kubeadm-certd")),
        &root,
        &cfg,
        &log,
    );
    let seen = root.join("var/lib/kubeadm-certd/control-plane-nodes.json");
    let deadline = Instant::now() + LIMIT;
    while etcd.connections() == 0 {
        assert!(
            Instant::now() < deadline,
            "no look at etcd after the API listed two control-plane Nodes\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), r#"{"count":2}"#);
    drop(child);
}

#[test]
fn a_restart_on_a_single_node_looks_at_etcd_first() {
    // The first node of a cluster that grew by `kubeadm join` still reads one member in its
    // manifest: only etcd can tell it to coordinate, so a restart asks etcd whatever the
    // files say.
    let t = tempfile::tempdir().unwrap();
    let etcd = Listener::start();
    let root = single_node(t.path(), etcd.port);
    let settings = Settings::default();
    let paths = settings.paths(&Root::new(&root));
    let idle =
        Coordinator::connect_unless_single(&paths, &settings.coordination, Arc::new(|| false))
            .unwrap();
    assert!(idle.is_none());
    assert_eq!(etcd.connections(), 0, "the gauges' connect looked at etcd");
    let cancel = kubeadm_certd::act::cancel::Cancel::new();
    let seq = kubeadm_certd::act::restart::restart_coordinated(
        &paths,
        &settings,
        &[],
        &cancel,
        &|_| Vec::new(),
        &time::OffsetDateTime::now_utc,
        &|_| {},
    )
    .unwrap();
    assert!(
        matches!(seq, kubeadm_certd::act::restart::Sequence::Done(ref d) if d.is_empty()),
        "{seq:?}"
    );
    assert!(etcd.connections() > 0, "the restart did not look at etcd");
}

#[test]
fn ha_idle_daemon_reads_etcd_without_a_thread_and_the_lock_drives_one_while_held() {
    let Some(mut c) = Cluster::build(|s| s.leaf_left = Duration::from_secs(300 * 86_400)) else {
        return;
    };
    for n in &mut c.nodes {
        n.start();
    }
    c.wait_healthy(&[0, 1, 2]);
    let node = &c.nodes[0];
    let log = node.root.with_file_name("cp1-daemon.log");
    let cfg = format!("checkInterval: 1s\njitter: 0s\nmetrics:\n  textfile: /{PROM}\n");
    let child = daemon(
        Path::new(env!("CARGO_BIN_EXE_kubeadm-certd")),
        &node.root,
        &cfg,
        &log,
    );
    let prom = node.root.join(PROM);
    // Cycles that each read the members' health from etcd, on the cycle's own thread.
    let healthy = || {
        std::fs::read_to_string(&prom).is_ok_and(|t| {
            t.lines()
                .any(|l| l == "kubeadm_certd_etcd_members_healthy 3")
        })
    };
    watch_threads(child.id(), &log, healthy);
    let seen = cycles(&log);
    watch_threads(child.id(), &log, || cycles(&log) >= seen + 3);
    drop(child);

    // The lock: the etcd thread runs while the permit is held (the lease outlives its TTL
    // while the holder blocks outside the runtime), and not after.
    let s = Coordination {
        lock_ttl: Duration::from_secs(5),
        lock_timeout: Duration::from_secs(60),
        ..Coordination::default()
    };
    let co = Coordinator::connect(&node.paths(), &s).unwrap().unwrap();
    let mine = || {
        threads(std::process::id())
            .iter()
            .filter(|n| is_etcd_thread(n))
            .count()
    };
    assert!(!co.driving());
    assert_eq!(mine(), 0);
    let now = time::OffsetDateTime::now_utc();
    let p = co.acquire("cp1", &|| false, now, &|_, _| {}).unwrap();
    assert!(co.driving());
    // A new thread carries its creator's name until it has set its own.
    let deadline = Instant::now() + LIMIT;
    while mine() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(mine(), 1, "{:?}", threads(std::process::id()));
    std::thread::sleep(Duration::from_secs(8));
    assert!(!p.lost(), "the lease lapsed while the holder blocked");
    let other = Coordinator::connect(&c.nodes[1].paths(), &s)
        .unwrap()
        .unwrap();
    assert_eq!(other.status().unwrap().queue[0].node, "cp1");
    p.release().unwrap();
    assert!(!co.driving());
    assert_eq!(mine(), 0);
}

/// `kib` of a /proc/PID/status field.
fn status_kib(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = text.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// scripts/bench (e): `run` idle on node 1 of the 3-member cluster (nothing due, restarts
/// off, so every cycle only scans, writes the metrics and reads etcd for the gauges), with
/// the binary `KUBEADM_CERTD_BIN` (default: this build's), `BENCH_IDLE_CONFIG` appended to the
/// config. Prints one `BENCH idle_ha ...` line: VmRSS, RssAnon, RssFile and threads 5 s after
/// start and IDLE_SECS later, VmHWM, and the CPU ticks in between.
#[test]
#[ignore]
fn bench_idle_ha_node() {
    let Some(mut c) = Cluster::build(|s| s.leaf_left = Duration::from_secs(300 * 86_400)) else {
        panic!("the bench needs etcd");
    };
    for n in &mut c.nodes {
        n.start();
    }
    c.wait_healthy(&[0, 1, 2]);
    let secs: u64 = std::env::var("IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let interval = std::env::var("IDLE_INTERVAL").unwrap_or_else(|_| "10s".into());
    let extra = std::env::var("BENCH_IDLE_CONFIG").unwrap_or_default();
    let bin = std::env::var_os("KUBEADM_CERTD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kubeadm-certd")));
    let node = &c.nodes[0];
    let log = node.root.with_file_name("cp1-daemon.log");
    let cfg = format!(
        "checkInterval: {interval}\njitter: 0s\nrestart:\n  enabled: false\nmetrics:\n  textfile: /{PROM}\n{extra}\n"
    );
    let child = daemon(&bin, &node.root, &cfg, &log);
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(5));
    let at = |k| status_kib(pid, k);
    let (r0, a0, f0, t0, c0) = (
        at("VmRSS"),
        at("RssAnon"),
        at("RssFile"),
        at("Threads"),
        cpu_ticks(pid),
    );
    assert!(
        r0 > 0,
        "the daemon exited:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_secs(secs));
    let (r1, a1, f1, t1, c1) = (
        at("VmRSS"),
        at("RssAnon"),
        at("RssFile"),
        at("Threads"),
        cpu_ticks(pid),
    );
    let hwm = at("VmHWM");
    let healthy = std::fs::read_to_string(node.root.join(PROM))
        .unwrap_or_default()
        .contains("kubeadm_certd_etcd_members_healthy 3");
    drop(child);
    println!(
        "BENCH idle_ha rss0={r0} anon0={a0} file0={f0} threads0={t0} rss1={r1} anon1={a1} file1={f1} threads1={t1} hwm={hwm} cpu_ticks={} secs={secs} interval={interval} gauges={healthy}",
        c1 - c0
    );
}
