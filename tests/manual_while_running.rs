//! Manual commands while `run` is active (issue 19): the daemon holds the node lock only while
//! it acts, a command that changes the node waits for the daemon's current cycle (bounded by
//! `--wait`, saying once whom it waits for), read-only commands never wait, and the daemon
//! takes a command's changes for what they are: not its own writes, nothing to undo, nothing
//! to renew or restart again.
//!
//! The real binary on nodes whose static pods run as real processes under the stand-in
//! kubelet (tests/support/kubelet.rs, tests/restart_support), with tests/fakes/systemctl first
//! on PATH for the daemon and the commands alike. What the daemon did is read back from its
//! metrics textfile (cycles by trigger, renewals, restarts), its stderr log and stateDir.
//! The crash case (a command SIGKILLed mid-write) is in manual_while_running_crash.rs.

#[path = "support/fakes.rs"]
mod fakes;
#[path = "support/kubelet.rs"]
mod kubelet;
mod restart_support;

use kubelet::KubeletHarness;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use restart_support::{events_after, started_after, Node, NodeOpts, LIMIT};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const METRICS: &str = "/var/lib/node_exporter/textfile_collector/kubeadm_certd.prom";
const LOCK: &str = "/var/lib/kubeadm-certd/lock";
const WAITING: &str = "Waiting for the node lock";

/// The daemon's config: leaves (3 days left) not due with renewBefore 2d, the kubelet's
/// client certificate left alone (its revival would restart the kubelet), metrics on.
const QUIET: &str =
    "renewBefore: 2d\nkubelet:\n  reviveClientCert: false\nrestart:\n  timeout: 60s\n";

/// A node (no etcd unless asked), its config, the fake systemctl and the metrics directory.
fn node(opts: NodeOpts, config: &str) -> Node {
    let n = Node::build(opts);
    std::fs::write(&n.config, config).unwrap();
    std::fs::create_dir_all(n.host("/var/lib/node_exporter/textfile_collector")).unwrap();
    fakes::install_systemctl(&bin_dir(&n));
    n
}

fn bin_dir(n: &Node) -> PathBuf {
    n.root.with_file_name("bin")
}

fn systemctl_log(n: &Node) -> PathBuf {
    n.root.with_file_name("systemctl.log")
}

/// The fake systemctl's calls.
fn systemctl_calls(n: &Node) -> Vec<String> {
    std::fs::read_to_string(systemctl_log(n))
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// kubeadm-certd on the node, with the fake systemctl first on PATH.
fn command(n: &Node, args: &[&str]) -> Command {
    let mut c = n.command(args);
    let path = format!(
        "{}:{}",
        bin_dir(n).display(),
        std::env::var("PATH").unwrap_or_default()
    );
    c.env("PATH", path)
        .env("FAKE_SYSTEMCTL_LOG", systemctl_log(n))
        .env_remove("NOTIFY_SOCKET")
        .env_remove("FAKE_SYSTEMCTL_STATE")
        .stdin(Stdio::null());
    c
}

/// Run a command to its end, printing what it said.
fn run(n: &Node, args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let out = command(n, args).output().unwrap();
    let took = t.elapsed();
    eprintln!(
        "$ kubeadm-certd {} -> {} in {took:?}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    (out, took)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The daemon, its stderr in a file; SIGKILLed if a test fails before stopping it.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(n: &Node) -> Daemon {
        Daemon::start_with(n, &["run"], None)
    }

    /// `args` (e.g. `-v run`), with NOTIFY_SOCKET set when given.
    fn start_with(n: &Node, args: &[&str], notify: Option<&Path>) -> Daemon {
        let log = n.root.with_file_name("daemon.log");
        let mut cmd = command(n, args);
        if let Some(s) = notify {
            cmd.env("NOTIFY_SOCKET", s);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, s: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), s).unwrap();
    }

    /// SIGTERM; it must exit 0.
    fn stop(mut self) -> String {
        self.signal(Signal::SIGTERM);
        let st = self.child.wait().unwrap();
        let log = self.log();
        assert!(st.success(), "the daemon exited {st}\n{log}");
        log
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sample of the daemon's metrics textfile (0 when absent).
fn metric(n: &Node, series: &str) -> f64 {
    let t = std::fs::read_to_string(n.host(METRICS)).unwrap_or_default();
    t.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn cycles(n: &Node, trigger: &str) -> f64 {
    metric(
        n,
        &format!("kubeadm_certd_cycles_total{{trigger=\"{trigger}\"}}"),
    )
}

/// Wait until the daemon has finished `want` cycles started by `trigger`.
fn wait_cycles(n: &Node, d: &Daemon, trigger: &str, want: f64) {
    let ok = KubeletHarness::wait_until(LIMIT, || cycles(n, trigger) >= want);
    assert!(ok, "no {trigger} cycle #{want}\n{}", d.log());
}

/// Serial and NotAfter of a certificate named by its host path.
fn serial(n: &Node, path: &str) -> (Vec<u8>, time::OffsetDateTime) {
    let b = std::fs::read(n.host(path)).unwrap();
    let c = &kubeadm_certd::pki::inspect::parse_cert_file(&b).unwrap()[0];
    (c.serial.clone(), c.not_after)
}

/// The daemon's renewal memory (stateDir/renewed.json), as text ("" when absent).
fn renewal_memory(n: &Node) -> String {
    std::fs::read_to_string(n.host("/var/lib/kubeadm-certd/renewed.json")).unwrap_or_default()
}

/// A node with the stand-in kubelet running every component, and the daemon after its first
/// cycle.
fn running(config: &str) -> (Node, KubeletHarness, Daemon) {
    let n = node(NodeOpts::default(), config);
    let h = n.kubelet();
    n.wait_healthy(&h);
    let d = Daemon::start(&n);
    wait_cycles(&n, &d, "start", 1.0);
    (n, h, d)
}

#[test]
fn renew_while_running_succeeds_and_the_daemon_does_not_renew_it_again() {
    let (n, h, d) = running(QUIET);
    let crt = "/etc/kubernetes/pki/apiserver.crt";
    let before = serial(&n, crt);
    let apiserver = n.process(&h, "kube-apiserver").unwrap();
    let (out, _) = run(&n, &["renew", "apiserver", "--no-restart"]);
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains(WAITING),
        "the idle daemon held the lock"
    );
    let renewed = serial(&n, crt);
    assert_ne!(renewed, before, "the command did not renew apiserver");
    // The daemon's next looks: the change the command made, then a timer cycle (SIGHUP reloads
    // and runs one at once).
    wait_cycles(&n, &d, "change", 1.0);
    d.signal(Signal::SIGHUP);
    wait_cycles(&n, &d, "timer", 1.0);
    assert_eq!(
        serial(&n, crt),
        renewed,
        "the daemon renewed apiserver again"
    );
    assert_eq!(
        metric(&n, "kubeadm_certd_renewals_total{result=\"ok\"}"),
        0.0,
        "the daemon counted a renewal of its own"
    );
    assert!(
        !renewal_memory(&n).contains("apiserver"),
        "the command's renewal entered the daemon's loop breaker: {}",
        renewal_memory(&n)
    );
    // --no-restart: nobody restarted the API server.
    assert_eq!(n.process(&h, "kube-apiserver").unwrap(), apiserver);
    let log = d.stop();
    assert!(
        !log.contains("renewed") && !log.contains("restarted"),
        "the daemon acted:\n{log}"
    );
}

#[test]
fn restart_while_running_restarts_it_exactly_once() {
    let (n, h, d) = running(QUIET);
    let old = n.process(&h, "kube-scheduler").unwrap();
    let mark = h.events().len();
    let (out, _) = run(&n, &["restart", "kube-scheduler"]);
    assert!(out.status.success());
    d.signal(Signal::SIGHUP);
    wait_cycles(&n, &d, "timer", 1.0);
    // Room for a second restart to begin, were the daemon to make one.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        started_after(&h, mark),
        ["kube-scheduler"],
        "{:?}",
        events_after(&h, mark)
    );
    let new = n.process(&h, "kube-scheduler").unwrap();
    restart_support::assert_replaced("kube-scheduler", &old, &new);
    // The manual restart is not the daemon's: its restart budget is untouched.
    let history =
        std::fs::read_to_string(n.host("/var/lib/kubeadm-certd/restarts.json")).unwrap_or_default();
    assert!(!history.contains("kube-scheduler"), "{history}");
    assert_eq!(
        metric(
            &n,
            "kubeadm_certd_restarts_total{component=\"kube-scheduler\",result=\"ok\"}"
        ),
        0.0
    );
    d.stop();
}

#[test]
fn kubelet_serving_certs_enable_while_running_is_kept_by_the_daemon() {
    // The daemon's own kubelet.serverTLSBootstrap is unset: it must leave the key alone.
    let n = node(NodeOpts::default(), QUIET);
    let kc = n.host("/var/lib/kubelet/config.yaml");
    let t = std::fs::read_to_string(&kc).unwrap();
    assert!(!t.contains("serverTLSBootstrap"));
    std::fs::write(&kc, fakes::with_live_healthz(&t)).unwrap();
    let d = Daemon::start(&n);
    wait_cycles(&n, &d, "start", 1.0);
    let (out, _) = run(&n, &["kubelet-serving-certs", "enable"]);
    assert!(out.status.success());
    let edited = std::fs::read(&kc).unwrap();
    assert!(text(&edited).contains("serverTLSBootstrap: true"));
    wait_cycles(&n, &d, "change", 1.0);
    d.signal(Signal::SIGHUP);
    wait_cycles(&n, &d, "timer", 1.0);
    assert_eq!(
        std::fs::read(&kc).unwrap(),
        edited,
        "the daemon changed the kubelet config"
    );
    let calls = systemctl_calls(&n);
    assert_eq!(
        calls.iter().filter(|c| *c == "restart kubelet").count(),
        1,
        "{calls:?}"
    );
    d.stop();
}

/// The stderr lines that announce a wait for the node lock.
fn waits(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(WAITING)).collect()
}

/// Every certificate name but scheduler.conf: renewed before the daemon starts, so that its
/// first cycle renews scheduler.conf alone and restarts only the scheduler.
const ALL_BUT_SCHEDULER: [&str; 10] = [
    "admin.conf",
    "apiserver",
    "apiserver-etcd-client",
    "apiserver-kubelet-client",
    "controller-manager.conf",
    "etcd-healthcheck-client",
    "etcd-peer",
    "etcd-server",
    "front-proxy-client",
    "super-admin.conf",
];

#[test]
fn a_writer_waits_for_the_daemons_cycle_and_read_only_commands_do_not() {
    let n = node(
        NodeOpts {
            etcd: true,
            ..NodeOpts::default()
        },
        "kubelet:\n  reviveClientCert: false\nrestart:\n  timeout: 60s\n  minHold: 20s\n",
    );
    let mut pre = vec!["renew"];
    pre.extend(ALL_BUT_SCHEDULER);
    pre.push("--no-restart");
    assert!(run(&n, &pre).0.status.success());
    let h = n.kubelet();
    n.wait_healthy(&h);
    let cm = n.process(&h, "kube-controller-manager").unwrap();
    let d = Daemon::start(&n);
    // The first cycle renews scheduler.conf and holds the scheduler's manifest parked for
    // minHold (20 s), under the node lock.
    let parked = n.parking().join("kube-scheduler.yaml");
    let holder = format!("{} daemon cycle\n", d.pid());
    let ok = KubeletHarness::wait_until(LIMIT, || {
        parked.exists() && std::fs::read_to_string(n.host(LOCK)).is_ok_and(|l| l == holder)
    });
    assert!(
        ok,
        "the daemon's cycle never held the scheduler parked\n{}",
        d.log()
    );

    // Read-only commands run now, without waiting and without taking the lock.
    let read_only: [&[&str]; 6] = [
        &["check-expiration"],
        &["check-expiration", "-o", "json"],
        &["backups"],
        &["renew", "all", "--dry-run"],
        &["kubelet-client", "revive", "--dry-run"],
        &["cluster", "status"],
    ];
    for args in read_only {
        let (out, took) = run(&n, args);
        let err = text(&out.stderr);
        assert!(out.status.success(), "{args:?} failed:\n{err}");
        assert!(waits(&err).is_empty(), "{args:?} waited:\n{err}");
        assert!(!err.contains("interrupted run"), "{args:?}:\n{err}");
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
    }
    assert!(
        parked.exists(),
        "the cycle ended before the read-only commands did: they proved nothing"
    );

    // A writer with --wait 2s: says once whom it waits for, then gives up with one line.
    let (out, took) = run(&n, &["restart", "kube-controller-manager", "--wait", "2s"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        waits(&err),
        [format!(
            "Waiting for the node lock ({LOCK}), held by pid {} (daemon cycle), for up to 2s (--wait)",
            d.pid()
        )],
        "{err}"
    );
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].ends_with(&format!(
            "{LOCK}: pid {} (daemon cycle) still holds the lock after 2s; try again when it has finished, or wait longer with --wait",
            d.pid()
        )),
        "{err}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_eq!(n.process(&h, "kube-controller-manager").unwrap(), cm);

    // A writer with the default bound waits for the cycle, then does its work.
    let mut renew = command(&n, &["renew", "apiserver", "--no-restart"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        parked.exists(),
        "the cycle ended before the writer began waiting"
    );
    let out = wait_output(&mut renew);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(waits(&err).len(), 1, "{err}");
    assert!(
        waits(&err)[0].contains(&format!(
            "held by pid {} (daemon cycle), for up to 5m",
            d.pid()
        )),
        "{err}"
    );
    // It wrote only after the daemon's cycle had put the scheduler back and restarted it.
    assert!(!parked.exists());
    let back = h
        .events_for("kube-scheduler.yaml")
        .iter()
        .filter(|e| e.kind == kubelet::EventKind::Started)
        .map(|e| e.at)
        .max()
        .unwrap();
    let written = std::fs::metadata(n.host("/etc/kubernetes/pki/apiserver.crt"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(
        written > back,
        "apiserver.crt was written before the cycle ended"
    );
    assert!(d.log().contains("scheduler.conf renewed"), "{}", d.log());
    d.stop();
}

/// Wait for a child with piped output, bounded.
fn wait_output(c: &mut Child) -> Output {
    let end = Instant::now() + LIMIT;
    while c.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "the command did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = Vec::new();
    let mut err = Vec::new();
    use std::io::Read;
    c.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    c.stderr.take().unwrap().read_to_end(&mut err).unwrap();
    Output {
        status: c.wait().unwrap(),
        stdout: out,
        stderr: err,
    }
}

#[test]
fn the_daemon_waits_quietly_for_a_command_and_sigterm_ends_the_wait() {
    let n = node(NodeOpts::default(), QUIET);
    let sock_path = n.root.with_file_name("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let d = Daemon::start_with(&n, &["-v", "run"], Some(&sock_path));
    wait_cycles(&n, &d, "start", 1.0);
    // Between cycles the daemon holds nothing: this process takes the lock as a command would.
    let hold = || {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(n.host(LOCK))
            .unwrap();
        f.try_lock().expect("the idle daemon holds the node lock");
        writeln!(f, "{} renew", std::process::id()).unwrap();
        f
    };
    let status = format!(
        "STATUS=waiting for the node lock, held by pid {} (renew)",
        std::process::id()
    );
    let lock = hold();
    d.signal(Signal::SIGHUP); // reload, then a cycle at once: it must wait
    assert!(recv_until(&sock, &status), "no {status}\n{}", d.log());
    std::thread::sleep(Duration::from_secs(2)); // 20 looks at the lock
    assert_eq!(
        cycles(&n, "timer"),
        0.0,
        "the cycle ran under a command's lock"
    );
    let said = |log: &str| log.matches("waiting for the node lock").count();
    assert_eq!(said(&d.log()), 1, "{}", d.log());
    // Released: the waiting cycle runs.
    drop(lock);
    wait_cycles(&n, &d, "timer", 1.0);
    // Held again at the next cycle, then SIGTERM while the daemon waits: it exits at once.
    let lock = hold();
    d.signal(Signal::SIGHUP);
    assert!(recv_until(&sock, &status), "no second wait\n{}", d.log());
    let t = Instant::now();
    let log = d.stop();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(said(&log), 2, "{log}");
    assert_eq!(cycles(&n, "timer"), 1.0);
    drop(lock);
}

/// Receive sd_notify datagrams until one has the line `want` (bounded).
fn recv_until(sock: &std::os::unix::net::UnixDatagram, want: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        if let Ok(k) = sock.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..k])
                .lines()
                .any(|l| l == want)
            {
                return true;
            }
        }
    }
    false
}
