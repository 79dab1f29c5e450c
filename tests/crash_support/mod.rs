//! Support for the crash tests: a built node whose static pods run harmless long-lived
//! processes under the stand-in kubelet, the binary run with failpoints, waiting until it sits
//! at a point, and the post-recovery assertions of issue 6 item 2.
#![allow(dead_code)] // not every test uses every helper

mod checks;
#[path = "../support/kubelet.rs"]
pub mod kubelet;

pub use checks::*;

use kubeadm_certd::testkit::nodebuilder::{build, NodeSpec};
use kubelet::{HarnessOptions, KubeletHarness};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Only keeps a broken test from hanging; never a speed requirement.
pub const LIMIT: Duration = Duration::from_secs(180);

/// The binary cargo built for this test run.
const CARGO_BIN: &str = env!("CARGO_BIN_EXE_kubeadm-certd");

/// The binary under test: a hard link to cargo's, taken once per test process and checked to
/// contain the failpoints. A target dir shared by several builds may get a binary without the
/// `failpoints` feature linked over cargo's path at any time; the link keeps ours.
pub fn bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let me = std::env::current_exe().expect("test exe");
        let name = me.file_name().expect("name").to_string_lossy();
        let link = Path::new(CARGO_BIN).with_file_name(format!("kubeadm-certd-failpoints-{name}"));
        let _ = std::fs::remove_file(&link);
        std::fs::hard_link(CARGO_BIN, &link).expect("link the binary");
        let bytes = std::fs::read(&link).expect("read the binary");
        let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(
            has("renew::between-key-and-cert") && has("restart::during-hold"),
            "{CARGO_BIN} was built without the failpoints feature (another build into a shared \
             target dir?); rerun `cargo test --features failpoints --test crash`"
        );
        link
    })
}

pub const PKI: &str = "etc/kubernetes/pki";
pub const KUBECONFIG_DIR: &str = "etc/kubernetes";
pub const MANIFESTS: &str = "etc/kubernetes/manifests";
pub const PARKING: &str = "etc/kubernetes/tmp/kubeadm-certd-parked";
pub const KUBELET_CONFIG: &str = "var/lib/kubelet/config.yaml";
pub const STATE: &str = "var/lib/kubeadm-certd";
pub const BACKUPS: &str = "var/lib/kubeadm-certd/backups";
pub const JOURNAL: &str = "var/lib/kubeadm-certd/journal.json";
pub const STAGED_SUFFIX: &str = ".kubeadm-certd-new";

/// Leaf pairs (base under pki, CA base) in kubeadm's handler order.
pub const LEAVES: [(&str, &str); 7] = [
    ("apiserver", "ca"),
    ("apiserver-etcd-client", "etcd/ca"),
    ("apiserver-kubelet-client", "ca"),
    ("etcd/healthcheck-client", "etcd/ca"),
    ("etcd/peer", "etcd/ca"),
    ("etcd/server", "etcd/ca"),
    ("front-proxy-client", "front-proxy-ca"),
];

/// The CAs (base under pki).
pub const CAS: [&str; 3] = ["ca", "etcd/ca", "front-proxy-ca"];

/// Kubeconfigs with embedded credentials.
pub const KUBECONFIGS: [&str; 4] = [
    "admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
    "super-admin.conf",
];

/// The control-plane manifests, in restart order.
pub const COMPONENTS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// Node-relative paths of every file `renew all` replaces.
pub fn renew_all_files() -> Vec<String> {
    let mut v: Vec<String> = LEAVES
        .iter()
        .flat_map(|(b, _)| [format!("{PKI}/{b}.key"), format!("{PKI}/{b}.crt")])
        .collect();
    v.extend(KUBECONFIGS.iter().map(|k| format!("{KUBECONFIG_DIR}/{k}")));
    v
}

/// Every regular file under the given node directories: relative path -> bytes.
pub type Snapshot = BTreeMap<String, Vec<u8>>;

/// A node in a temp dir, its files as they were before the run, and its stand-in kubelet.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub pre: Snapshot,
    pub kubelet: Option<KubeletHarness>,
}

/// Rewrite a built manifest so the stand-in kubelet can run it: the command becomes
/// `sh -c 'sleep 3600; true' <component> --crash-node=<root> <original flags>` (the original
/// flags stay so the manifest still names the files it uses; the marker makes the argv unique
/// to this node, as restarts find processes by exact argv), and the probes go.
fn runnable_manifest(text: &str, component: &str, root: &Path) -> String {
    let mut out = String::new();
    let mut in_probe = false;
    let mut replaced = false;
    for line in text.lines() {
        if in_probe && line.starts_with("      ") {
            continue;
        }
        in_probe = false;
        if line == "    livenessProbe:" || line == "    startupProbe:" {
            in_probe = true;
            continue;
        }
        if !replaced && line == format!("    - {component}") {
            replaced = true;
            out.push_str("    - sh\n    - -c\n    - \"sleep 3600; true\"\n");
            out.push_str(&format!("    - {component}\n"));
            out.push_str(&format!("    - --crash-node={}\n", root.display()));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(replaced, "no command line for {component} in\n{text}");
    out
}

impl Node {
    /// A kubeadm node whose leaves have 3 days left (all due), with runnable manifests,
    /// `fileCheckFrequency: 1s`, and a config bounding restarts at 60 s.
    pub fn new() -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let now = time::OffsetDateTime::now_utc();
        build(dir.path(), &NodeSpec::new(now)).expect("build node");
        let root = dir.path();
        for c in COMPONENTS {
            let p = root.join(MANIFESTS).join(format!("{c}.yaml"));
            let text = std::fs::read_to_string(&p).expect("manifest");
            std::fs::write(&p, runnable_manifest(&text, c, root)).expect("write manifest");
        }
        let kc = root.join(KUBELET_CONFIG);
        let text = std::fs::read_to_string(&kc).expect("kubelet config");
        assert!(text.contains("fileCheckFrequency: 0s\n"));
        std::fs::write(
            &kc,
            text.replace("fileCheckFrequency: 0s\n", "fileCheckFrequency: 1s\n"),
        )
        .expect("write kubelet config");
        let cfg = root.join("etc/kubeadm-certd/config.yaml");
        std::fs::create_dir_all(cfg.parent().expect("parent")).expect("config dir");
        std::fs::write(&cfg, "restart:\n  timeout: 60s\n").expect("config");
        Node::open(dir)
    }

    /// A node already built in `dir` (snapshotted now).
    pub fn open(dir: tempfile::TempDir) -> Node {
        let mut n = Node {
            dir,
            pre: Snapshot::new(),
            kubelet: None,
        };
        n.pre = n.snapshot();
        n
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// The node's files (kubernetes config, kubelet files, and the csr dir if any).
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::new();
        for d in ["etc/kubernetes", "var/lib/kubelet", "csr"] {
            walk(self.root(), &self.p(d), &mut s);
        }
        s
    }

    /// Start the stand-in kubelet and wait until every component runs.
    pub fn start_kubelet(&mut self) {
        let h = KubeletHarness::start(
            &self.p(MANIFESTS),
            HarnessOptions {
                poll_period: Duration::from_millis(200),
                ..HarnessOptions::default()
            },
        );
        let ok = KubeletHarness::wait_until(LIMIT, || {
            COMPONENTS
                .iter()
                .all(|c| h.running_pid(&format!("{c}.yaml")).is_some())
        });
        assert!(ok, "the stand-in kubelet did not start every component");
        self.kubelet = Some(h);
    }

    /// The stand-in kubelet.
    pub fn kubelet(&self) -> &KubeletHarness {
        self.kubelet.as_ref().expect("kubelet started")
    }

    /// Run the binary to completion (no failpoints).
    pub fn run(&self, args: &[&str]) -> Done {
        self.spawn(args, None).finish()
    }

    /// Start the binary, with `FAILPOINTS` set when given.
    pub fn spawn(&self, args: &[&str], failpoints: Option<&str>) -> Running {
        let logs = tempfile::tempdir().expect("log dir");
        let (out, err) = (logs.path().join("stdout"), logs.path().join("stderr"));
        let mut cmd = Command::new(bin());
        cmd.arg("--root")
            .arg(self.root())
            .args(args)
            .env_remove("FAILPOINTS")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(File::create(&out).expect("stdout file"))
            .stderr(File::create(&err).expect("stderr file"));
        if let Some(f) = failpoints {
            cmd.env("FAILPOINTS", f);
        }
        let child = cmd.spawn().expect("spawn kubeadm-certd");
        Running {
            child: Some(child),
            out,
            err,
            _logs: logs,
            what: format!("{args:?} FAILPOINTS={failpoints:?}"),
        }
    }

    /// Backup directories, oldest first.
    pub fn backups(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.p(BACKUPS))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The staged (temp) files anywhere under the node's directories, relative paths.
    pub fn staged_files(&self) -> Vec<String> {
        let mut s = Snapshot::new();
        walk(self.root(), self.root(), &mut s);
        s.into_keys().filter(|k| is_staged(k)).collect()
    }
}

fn is_staged(rel: &str) -> bool {
    Path::new(rel)
        .file_name()
        .map(|n| n.to_string_lossy())
        .is_some_and(|n| n.starts_with('.') && n.ends_with(STAGED_SUFFIX))
}

fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            walk(root, &p, out);
        } else if t.is_file() {
            if let Ok(b) = std::fs::read(&p) {
                let rel = p.strip_prefix(root).expect("under root");
                out.insert(rel.to_string_lossy().into_owned(), b);
            }
        }
    }
}

/// A finished run.
#[derive(Debug)]
pub struct Done {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Done {
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what} failed: {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

/// A running binary; SIGKILLed when dropped.
pub struct Running {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
    _logs: tempfile::TempDir,
    what: String,
}

/// CPU time (utime + stime, clock ticks of 1/100 s) of a whole process.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

impl Running {
    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present")
    }

    pub fn pid(&mut self) -> u32 {
        self.child().id()
    }

    fn logs(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            std::fs::read_to_string(&self.out).unwrap_or_default(),
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    fn fail_if_exited(&mut self, waiting_for: &str) {
        if let Ok(Some(st)) = self.child().try_wait() {
            panic!(
                "{} exited ({st}) while waiting for {waiting_for}\n{}",
                self.what,
                self.logs()
            );
        }
    }

    /// Wait until `evidence` holds on disk, then until the process has spun for a second of
    /// CPU after that: failpoints are set to `delay`, a busy wait, so CPU time that grows while
    /// the on-disk state is still the expected one proves the process sits at the point (a
    /// hold or a wait sleeps, and every step before the point has already happened).
    pub fn wait_at_point(&mut self, waiting_for: &str, mut evidence: impl FnMut() -> bool) {
        let deadline = Instant::now() + LIMIT;
        while !evidence() {
            self.fail_if_exited(waiting_for);
            assert!(
                Instant::now() < deadline,
                "no evidence of {waiting_for}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = self.pid();
        let base = cpu_ticks(pid).expect("cpu ticks");
        while cpu_ticks(pid).unwrap_or(0) < base + 100 {
            self.fail_if_exited(waiting_for);
            assert!(
                Instant::now() < deadline,
                "{waiting_for}: the process is not spinning at the failpoint\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(evidence(), "{waiting_for}: the node moved past the point");
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Wait until stderr contains `text`.
    pub fn wait_for_stderr(&mut self, text: &str) {
        let deadline = Instant::now() + LIMIT;
        while !self.stderr().contains(text) {
            self.fail_if_exited(text);
            assert!(
                Instant::now() < deadline,
                "no {text:?} on stderr\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Send a signal.
    pub fn signal(&mut self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, sig).expect("kill");
    }

    /// SIGKILL the process and reap it.
    pub fn sigkill(mut self) -> Done {
        let _ = self.child().kill();
        let status = self.child().wait().expect("wait");
        assert!(
            !status.success(),
            "{} was not killed: {status}\n{}",
            self.what,
            self.logs()
        );
        self.done(status)
    }

    /// Wait for the process to end by itself.
    pub fn finish(mut self) -> Done {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(st) = self.child().try_wait().expect("try_wait") {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not finish\n{}",
                self.what,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        self.done(status)
    }

    fn done(mut self, status: ExitStatus) -> Done {
        self.child = None;
        Done {
            status,
            stdout: std::fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.err).unwrap_or_default(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
