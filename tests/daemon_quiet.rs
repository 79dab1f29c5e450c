//! A daemon that stays quiet and right on a busy node: reading certificates starts nothing,
//! the timer runs exactly one cycle per interval, SIGTERM is honoured while the kubelet
//! restart hangs, and what a person reads (logs, CLI output) shows no Rust default formats.
//! Cycles are counted from the daemon's own metrics (kubeadm_certd_cycles_total) and debug
//! lines, never inferred from timing.

mod support;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::daemon_node::config;

const BIN: &str = env!("CARGO_BIN_EXE_kubeadm-certd");
const TEXTFILE: &str = "/var/lib/node_exporter/textfile_collector/kubeadm_certd.prom";

/// The config of these tests: `interval`, no jitter, no restarts, the textfile; then `extra`.
fn quiet_config(root: &Path, interval: &str, extra: &str) -> PathBuf {
    config(
        root,
        &format!("checkInterval: {interval}\njitter: 0s\nrestart:\n  enabled: false\nmetrics:\n  textfile: {TEXTFILE}\n{extra}"),
    )
}

fn node(leaf_days: u64) -> tempfile::TempDir {
    let d = support::daemon_node::node(leaf_days);
    std::fs::create_dir_all(
        d.path()
            .join(TEXTFILE.trim_start_matches('/'))
            .parent()
            .unwrap(),
    )
    .unwrap();
    d
}

/// The daemon, with its stderr lines collected (and the time each arrived).
struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Daemon {
    fn start(root: &Path, cfg: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--root",
            root.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "run",
        ])
        .env("KUBEADM_CERTD_LOG", "kubeadm_certd=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push((Instant::now(), l));
            }
        });
        Daemon { child, lines }
    }

    fn text(&self) -> String {
        let v = self.lines.lock().unwrap();
        v.iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn signal(&self, s: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), s).unwrap();
    }

    fn stop(mut self) -> String {
        self.signal(Signal::SIGTERM);
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.text()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kubeadm_certd_cycles_total by trigger, from the daemon's textfile.
fn cycles(root: &Path) -> std::collections::BTreeMap<String, u64> {
    let text =
        std::fs::read_to_string(root.join(TEXTFILE.trim_start_matches('/'))).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("kubeadm_certd_cycles_total{trigger=\""))
        .filter_map(|l| {
            let (t, v) = l.split_once("\"} ")?;
            Some((t.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Every file in the directories the daemon watches.
fn watched_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in [
        "etc/kubernetes/pki",
        "etc/kubernetes/pki/etcd",
        "etc/kubernetes",
        "var/lib/kubelet/pki",
        "var/lib/kubelet",
    ] {
        for e in std::fs::read_dir(root.join(d)).unwrap().flatten() {
            if e.file_type().unwrap().is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn reading_certificates_starts_no_cycle() {
    let d = node(300);
    let cfg = quiet_config(d.path(), "1h", "");
    let daemon = Daemon::start(d.path(), &cfg, &[]);
    assert!(
        wait_for(Duration::from_secs(20), || cycles(d.path()).get("start")
            == Some(&1)),
        "no start cycle: {}",
        daemon.text()
    );
    // A reader (etcd re-reading its certificates, an exporter, a backup agent) opens and
    // reads every watched file 10 times a second for 5 seconds.
    let files = watched_files(d.path());
    assert!(files.len() > 20, "{files:?}");
    let end = Instant::now() + Duration::from_secs(5);
    let mut reads = 0;
    while Instant::now() < end {
        for f in &files {
            let mut buf = Vec::new();
            std::fs::File::open(f)
                .unwrap()
                .read_to_end(&mut buf)
                .unwrap();
            reads += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reads >= files.len() * 40, "only {reads} reads");
    // One real change (an attribute change on a certificate) then gets exactly one cycle; its
    // textfile shows every cycle the daemon ran.
    let crt = d.path().join("etc/kubernetes/pki/apiserver.crt");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(&crt, mode).unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || cycles(d.path()).get("change")
            == Some(&1)),
        "the real change started no cycle: {:?}\n{}",
        cycles(d.path()),
        daemon.text()
    );
    std::thread::sleep(Duration::from_secs(2));
    let c = cycles(d.path());
    assert_eq!(c.get("start"), Some(&1), "{c:?}");
    assert_eq!(c.get("change"), Some(&1), "reads started cycles: {c:?}");
    assert_eq!(c.get("timer"), None, "{c:?}");
    let log = daemon.stop();
    // A quiet daemon: the change cycle changed nothing, so no info line said anything.
    let info: Vec<&str> = log.lines().filter(|l| l.contains(" INFO ")).collect();
    assert!(
        info.len() <= 2,
        "info lines from a daemon that did nothing: {info:?}"
    );
}

#[test]
fn idle_daemon_runs_one_cycle_per_interval() {
    let d = node(300);
    let cfg = quiet_config(d.path(), "2s", "");
    let daemon = Daemon::start(d.path(), &cfg, &[]);
    assert!(wait_for(Duration::from_secs(20), || cycles(d.path())
        .get("start")
        == Some(&1)));
    // Four intervals.
    assert!(
        wait_for(Duration::from_secs(20), || cycles(d.path()).get("timer")
            >= Some(&4)),
        "{:?}",
        cycles(d.path())
    );
    let log = daemon.stop();
    let c = cycles(d.path());
    assert_eq!(
        c.get("change"),
        None,
        "the idle daemon reacted to itself: {c:?}"
    );
    assert_eq!(c.get("start"), Some(&1));
    // The timer cycles, from the daemon's debug lines: each follows the one before by one
    // interval (2 s), never two in one interval and never a skipped one.
    let timer_lines = log.lines().filter(|l| l.contains("cycle (timer)")).count();
    assert!(timer_lines >= 4, "{log}");
    // Only the start cycle says so at info level; idle cycles only update STATUS.
    let info = log
        .lines()
        .filter(|l| l.contains(" INFO ") && l.contains("certificates ok"))
        .count();
    assert_eq!(info, 1, "idle cycles logged at info level:\n{log}");
}

#[test]
fn the_idle_daemon_pages_its_executable_out_after_a_cycle_unless_told_not_to() {
    for (extra, want) in [("", true), ("idlePageout: false\n", false)] {
        let d = node(300);
        let extra = format!("approver:\n  kubeconfig: /etc/kubernetes/none.conf\n{extra}");
        let cfg = quiet_config(d.path(), "5s", &extra);
        let daemon = Daemon::start(d.path(), &cfg, &[]);
        // After each cycle the daemon is quiet for 5 s, longer than memory::SETTLE (3 s): no
        // kubeconfig, so no API client whose retries would count as activity.
        assert!(wait_for(Duration::from_secs(30), || cycles(d.path())
            .get("timer")
            >= Some(&2)));
        let log = daemon.stop();
        let released = log.lines().filter(|l| l.contains("idle: released")).count();
        // The start cycle's and each timer cycle's quiet spell.
        if want {
            assert!(released >= 2, "{extra:?}:\n{log}");
        } else {
            assert_eq!(released, 0, "{extra:?}:\n{log}");
        }
    }
}

#[test]
fn timer_cycles_are_one_interval_apart() {
    let d = node(300);
    let cfg = config(
        d.path(),
        "checkInterval: 2s\njitter: 0s\nrestart:\n  enabled: false\nmetrics:\n  textfile: \"\"\n",
    );
    let daemon = Daemon::start(d.path(), &cfg, &[]);
    assert!(
        wait_for(Duration::from_secs(30), || daemon
            .text()
            .matches("cycle (timer)")
            .count()
            >= 4),
        "{}",
        daemon.text()
    );
    let stamps: Vec<Instant> = daemon
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, l)| l.contains("cycle (timer)"))
        .map(|(t, _)| *t)
        .collect();
    for w in stamps.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(1900) && gap < Duration::from_millis(3900),
            "timer cycles {gap:?} apart (interval 2s): {stamps:?}"
        );
    }
    drop(daemon);
}

#[test]
fn sigterm_while_the_kubelet_restart_hangs() {
    // serverTLSBootstrap: true in the config, false on disk: the daemon edits the kubelet
    // config and restarts the kubelet through a systemctl that takes 30 s.
    let d = node(300);
    let cfg = config(
        d.path(),
        "kubelet:\n  serverTLSBootstrap: true\nrestart:\n  timeout: 1m\nmetrics:\n  textfile: \"\"\n",
    );
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes");
    let log = d.path().join("systemctl.log");
    let path = format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let daemon = Daemon::start(
        d.path(),
        &cfg,
        &[
            ("PATH", &path),
            ("FAKE_SYSTEMCTL_LOG", log.to_str().unwrap()),
            ("FAKE_SYSTEMCTL_SLEEP", "30"),
        ],
    );
    assert!(
        wait_for(Duration::from_secs(20), || std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("restart kubelet")),
        "systemctl restart kubelet never ran: {}",
        daemon.text()
    );
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let mut daemon = daemon;
    let exited = wait_for(Duration::from_secs(5), || {
        daemon.child.try_wait().unwrap().is_some()
    });
    let took = sent.elapsed();
    assert!(exited, "still running after SIGTERM: {}", daemon.text());
    assert!(
        took < Duration::from_secs(2),
        "SIGTERM took {took:?} during the kubelet restart"
    );
    let parking = d.path().join("etc/kubernetes/tmp/kubeadm-certd-parked");
    let parked = std::fs::read_dir(&parking).map(|r| r.count()).unwrap_or(0);
    assert_eq!(parked, 0, "manifests left parked");
    assert_eq!(
        std::fs::read_dir(d.path().join("etc/kubernetes/manifests"))
            .unwrap()
            .count(),
        4
    );
}

/// What people read: the daemon's log and the CLI's output on a node with work to do shows
/// no Rust Debug formats and no `OffsetDateTime` default format.
#[test]
fn output_shows_human_formats() {
    let d = node(3);
    let cfg = config(
        d.path(),
        "caWarnBefore: 3650d\nrestart:\n  enabled: false\nmetrics:\n  textfile: \"\"\n",
    );
    let root = d.path().to_str().unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let mut all = String::new();
    for args in [
        vec!["check-expiration"],
        vec!["check-expiration", "-o", "json"],
        vec!["renew", "due", "--dry-run"],
        vec!["run", "--once"],
        vec!["renew", "all", "--no-restart"],
        vec!["restart", "bogus"],
        vec!["renew", "nonexistent"],
    ] {
        let out = Command::new(BIN)
            .args(["--root", root, "--config", cfg_s])
            .args(&args)
            .output()
            .unwrap();
        all.push_str(&String::from_utf8_lossy(&out.stdout));
        all.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert!(all.contains("renewed"), "{all}");
    let default_time = regex_like_offsetdatetime(&all);
    assert!(
        default_time.is_none(),
        "OffsetDateTime default format: {default_time:?}\n{all}"
    );
    for bad in ["Some(", "None", "[\"", "Duration {", "OffsetDateTime"] {
        assert!(!all.contains(bad), "`{bad}` in output:\n{all}");
    }
}

/// The first `2026-11-29 8:58:21.0 +00:00:00`-style timestamp (time's Display), if any.
fn regex_like_offsetdatetime(s: &str) -> Option<String> {
    s.lines()
        .find(|l| l.contains(" +00:00:00") || l.contains(" +00:00:00\""))
        .map(str::to_string)
}

/// SIGTERM while the daemon reads from etcd members that accept connections but never answer
/// (a partitioned or hung node): the reads give up at the stop request instead of waiting out
/// each member's 2 s timeout in turn.
#[test]
fn sigterm_while_etcd_members_do_not_answer() {
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut urls = Vec::new();
    for _ in 0..3 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        urls.push(format!("https://{}", l.local_addr().unwrap()));
        let n = Arc::clone(&accepted);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in l.incoming().map_while(Result::ok) {
                n.fetch_add(1, Ordering::SeqCst);
                held.push(s); // never read from, never written to
            }
        });
    }
    let d = node(300);
    let cfg = config(
        d.path(),
        &format!(
            "checkInterval: 1h\ncoordination:\n  mode: etcd\n  etcd:\n    endpoints: [{}]\n",
            urls.join(", ")
        ),
    );
    let daemon = Daemon::start(d.path(), &cfg, &[]);
    assert!(
        wait_for(Duration::from_secs(20), || accepted.load(Ordering::SeqCst)
            > 0),
        "the daemon never reached the etcd endpoints: {}",
        daemon.text()
    );
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let mut daemon = daemon;
    let exited = wait_for(Duration::from_secs(10), || {
        daemon.child.try_wait().unwrap().is_some()
    });
    let took = sent.elapsed();
    assert!(exited, "still running after SIGTERM: {}", daemon.text());
    assert!(
        took < Duration::from_secs(2),
        "SIGTERM took {took:?} while etcd did not answer (3 members x 2 s before the fix)\n{}",
        daemon.text()
    );
}
