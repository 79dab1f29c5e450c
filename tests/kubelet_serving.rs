//! `kubelet-serving-certs`: the serverTLSBootstrap edit keeps every other byte (golden files in
//! tests/fixtures/kubelet-config: `<case>.yaml` is the input, `<case>.<action>.yaml` the
//! expected output), and the command, run as a binary with tests/fakes/systemctl first on PATH
//! and a healthz server on a free port, backs up, writes, restarts and waits, or does nothing.

#[path = "support/fakes.rs"]
mod fakes;

use kubeadm_certd::node::kubelet_edit::edited_text;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kubelet-config");
const CONFIG: &str = "var/lib/kubelet/config.yaml";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()
}

/// (input case, enable, expected output file or None for "nothing to do").
const CASES: &[(&str, bool, Option<&str>)] = &[
    ("kubeadm", true, Some("kubeadm.enable.yaml")),
    ("kubeadm", false, None),
    ("commented", true, Some("commented.enable.yaml")),
    ("commented", false, None),
    ("comments-absent", true, Some("comments-absent.enable.yaml")),
    ("present-true", false, Some("present-true.disable.yaml")),
    ("present-true", true, None),
    ("present-false", true, Some("present-false.enable.yaml")),
    ("present-false", false, None),
    (
        "no-final-newline",
        true,
        Some("no-final-newline.enable.yaml"),
    ),
    ("indented", true, Some("indented.enable.yaml")),
];

/// The lines of `text` that are not the serverTLSBootstrap line.
fn other_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n')
        .map(|l| l.trim_end_matches('\n'))
        .filter(|l| !l.trim_start().starts_with("serverTLSBootstrap"))
        .collect()
}

#[test]
fn golden_files() {
    for &(case, enable, expected) in CASES {
        let input = fixture(&format!("{case}.yaml"));
        let got = edited_text(&input, enable).unwrap_or_else(|e| panic!("{case}: {e:#}"));
        match expected {
            None => assert_eq!(got, None, "{case} enable={enable}: expected no change"),
            Some(file) => {
                let want = fixture(file);
                assert_eq!(
                    got.as_deref(),
                    Some(want.as_str()),
                    "{case} enable={enable}"
                );
                // The golden file itself differs from its input only in that key's line.
                assert_eq!(other_lines(&input), other_lines(&want), "{file}");
                assert_ne!(input, want, "{file}");
            }
        }
    }
}

/// A healthz endpoint that answers every request with `status` and records request lines.
fn healthz_server(status: u16) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            log.lock().unwrap().push(first.trim().to_string());
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    (port, seen)
}

/// A node holding only a kubelet config, plus a bin dir with the fake systemctl.
struct Node {
    dir: tempfile::TempDir,
    port: u16,
    healthz: Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn new(input: &str, healthz_status: u16) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let (port, healthz) = healthz_server(healthz_status);
        let node = Node { dir, port, healthz };
        let cfg = node.root().join(CONFIG);
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(&cfg, node.with_port(&fixture(input))).unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
        fakes::install_systemctl(&node.dir.path().join("bin"));
        node
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn with_port(&self, text: &str) -> String {
        assert!(text.contains("healthzPort: 10248"));
        text.replace("healthzPort: 10248", &format!("healthzPort: {}", self.port))
    }
    fn config(&self) -> Vec<u8> {
        std::fs::read(self.root().join(CONFIG)).unwrap()
    }
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("systemctl.log")
    }
    /// The fake systemctl's calls (none when it never ran).
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.log_path())
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }
    fn backups(&self) -> Vec<PathBuf> {
        let dir = self.root().join("var/lib/kubeadm-certd/backups");
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubeadm-certd"));
        cmd.arg("--root").arg(self.root()).args(args);
        cmd.env("PATH", path)
            .env("FAKE_SYSTEMCTL_LOG", self.log_path())
            .env("NOTIFY_SOCKET", self.dir.path().join("notify.sock"))
            .env_remove("JOURNAL_STREAM")
            .env_remove("FAKE_SYSTEMCTL_STATE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn enable_edits_backs_up_restarts_and_waits() {
    let node = Node::new("kubeadm.yaml", 200);
    let before = node.config();
    let out = node.run(&["kubelet-serving-certs", "enable"], &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");

    assert_eq!(
        text(&node.config()),
        node.with_port(&fixture("kubeadm.enable.yaml"))
    );
    let mode = std::fs::metadata(node.root().join(CONFIG))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let backups = node.backups();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(std::fs::read(backups[0].join(CONFIG)).unwrap(), before);

    let calls = node.calls();
    assert_eq!(
        calls.first().map(String::as_str),
        Some("restart kubelet"),
        "{calls:?}"
    );
    assert!(
        calls.len() >= 2 && calls[1..].iter().all(|c| c == "is-active kubelet"),
        "{calls:?}"
    );
    let healthz = node.healthz.lock().unwrap().clone();
    assert!(
        healthz.iter().any(|l| l.starts_with("GET /healthz ")),
        "{healthz:?}"
    );

    assert!(stdout.contains("+serverTLSBootstrap: true\n"), "{stdout}");
    assert!(
        stdout.contains("--- /var/lib/kubelet/config.yaml\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Backup of the old file: /var/lib/kubeadm-certd/backups/"),
        "{stdout}"
    );
    for needle in [
        "kubeadm-certd csr list",
        "kubeadm-certd csr approve NAME",
        "kubelet-config ConfigMap",
        "--node-only",
        "address",
    ] {
        assert!(
            stdout.contains(needle),
            "stdout lacks {needle:?}:\n{stdout}"
        );
    }
    // Logged as well as printed.
    assert!(stderr.contains("kubeadm-certd csr list"), "{stderr}");
}

#[test]
fn already_set_writes_and_restarts_nothing() {
    let node = Node::new("present-true.yaml", 200);
    let path = node.root().join(CONFIG);
    let (before, meta) = (node.config(), std::fs::metadata(&path).unwrap());
    let out = node.run(&["kubelet-serving-certs", "enable"], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains(
            "serverTLSBootstrap is already true in /var/lib/kubelet/config.yaml; nothing to do"
        ),
        "{stdout}"
    );
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(node.config(), before);
    assert_eq!(
        (after.ino(), after.mtime(), after.mtime_nsec()),
        (meta.ino(), meta.mtime(), meta.mtime_nsec())
    );
    assert_eq!(node.calls(), Vec::<String>::new());
    assert!(node.backups().is_empty());
    assert!(node.healthz.lock().unwrap().is_empty());

    // Absent counts as false: disabling a kubeadm default file is a no-op too.
    let node = Node::new("kubeadm.yaml", 200);
    let before = node.config();
    let out = node.run(&["kubelet-serving-certs", "disable"], &[]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("serverTLSBootstrap is already false"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(node.config(), before);
    assert_eq!(node.calls(), Vec::<String>::new());
}

#[test]
fn no_restart_edits_only() {
    let node = Node::new("present-true.yaml", 200);
    let out = node.run(&["kubelet-serving-certs", "disable", "--no-restart"], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert_eq!(
        text(&node.config()),
        node.with_port(&fixture("present-true.disable.yaml"))
    );
    assert_eq!(node.calls(), Vec::<String>::new());
    assert!(node.healthz.lock().unwrap().is_empty());
    assert_eq!(node.backups().len(), 1);
    assert!(
        stdout.contains("-serverTLSBootstrap: true\n+serverTLSBootstrap: false\n"),
        "{stdout}"
    );
    // The CSR follow-up is only for enabling.
    assert!(!stdout.contains("kubectl certificate approve"), "{stdout}");
}

/// A config file under the node root setting a short restart timeout.
fn short_timeout(node: &Node) -> String {
    let p = node.dir.path().join("certd.yaml");
    std::fs::write(&p, "restart:\n  timeout: 1s\n").unwrap();
    p.display().to_string()
}

#[test]
fn unhealthy_kubelet_is_an_error_that_says_what_was_seen() {
    // The unit never becomes active: the error quotes systemctl's answer.
    let node = Node::new("kubeadm.yaml", 200);
    let cfg = short_timeout(&node);
    let out = node.run(
        &["--config", &cfg, "kubelet-serving-certs", "enable"],
        &[("FAKE_SYSTEMCTL_STATE", "failed")],
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("not healthy within 1s") && stderr.contains("said 'failed'"),
        "{stderr}"
    );
    // The edit stays (with its backup); only the wait failed.
    assert_eq!(
        text(&node.config()),
        node.with_port(&fixture("kubeadm.enable.yaml"))
    );
    assert_eq!(node.backups().len(), 1);
    assert_eq!(
        node.calls().first().map(String::as_str),
        Some("restart kubelet")
    );

    // Active, but healthz answers 500.
    let node = Node::new("present-false.yaml", 500);
    let cfg = short_timeout(&node);
    let out = node.run(&["--config", &cfg, "kubelet-serving-certs", "enable"], &[]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    let url = format!(
        "http://127.0.0.1:{}/healthz: unhealthy (HTTP 500)",
        node.port
    );
    assert!(stderr.contains(&url), "{stderr}");
}

#[test]
fn systemctl_never_sees_notify_socket() {
    let node = Node::new("kubeadm.yaml", 200);
    let out = node.run(&["kubelet-serving-certs", "enable"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let calls = node.calls();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| !c.starts_with("NOTIFY_SOCKET")),
        "{calls:?}"
    );
}
