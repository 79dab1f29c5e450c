//! Shared helpers for the end-to-end tests: build kubeadm-shaped nodes in temp dirs, run the
//! real binary against them, snapshot the tree, and inspect certificates independently of the
//! crate's own parser (x509-parser directly, and the openssl CLI).
#![allow(dead_code)] // each test binary uses a different part

pub mod checks;
mod tree;
mod x509;

pub use tree::*;
pub use x509::*;

use kubeadm_certd::testkit::nodebuilder::{build, NodeSpec};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use time::OffsetDateTime;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kubeadm-certd");
/// The tool's own state directory, relative to the root.
pub const STATE: &str = "var/lib/kubeadm-certd";

/// PKI leaves: (kubeadm name, base path under certificatesDir, CA base).
pub const PKI_LEAVES: [(&str, &str, &str); 7] = [
    ("apiserver", "apiserver", "ca"),
    ("apiserver-etcd-client", "apiserver-etcd-client", "etcd/ca"),
    ("apiserver-kubelet-client", "apiserver-kubelet-client", "ca"),
    (
        "etcd-healthcheck-client",
        "etcd/healthcheck-client",
        "etcd/ca",
    ),
    ("etcd-peer", "etcd/peer", "etcd/ca"),
    ("etcd-server", "etcd/server", "etcd/ca"),
    ("front-proxy-client", "front-proxy-client", "front-proxy-ca"),
];

/// Kubeconfigs kubeadm renews (all signed by `ca`).
pub const KUBECONFIGS: [&str; 4] = [
    "admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
    "super-admin.conf",
];

/// kubeadm's names, sorted, with their long names (reference §3.4).
pub const LONG_NAMES: [(&str, &str); 11] = [
    (
        "admin.conf",
        "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself",
    ),
    ("apiserver", "certificate for serving the Kubernetes API"),
    (
        "apiserver-etcd-client",
        "certificate the apiserver uses to access etcd",
    ),
    (
        "apiserver-kubelet-client",
        "certificate for the API server to connect to kubelet",
    ),
    (
        "controller-manager.conf",
        "certificate embedded in the kubeconfig file for the controller manager to use",
    ),
    (
        "etcd-healthcheck-client",
        "certificate for liveness probes to healthcheck etcd",
    ),
    (
        "etcd-peer",
        "certificate for etcd nodes to communicate with each other",
    ),
    ("etcd-server", "certificate for serving etcd"),
    (
        "front-proxy-client",
        "certificate for the front proxy client",
    ),
    (
        "scheduler.conf",
        "certificate embedded in the kubeconfig file for the scheduler manager to use",
    ),
    (
        "super-admin.conf",
        "certificate embedded in the kubeconfig file for the super-admin",
    ),
];

/// The long name of a kubeadm certificate name.
pub fn long_name(name: &str) -> &'static str {
    LONG_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, l)| *l)
        .unwrap()
}

/// The CA base of a certificate name (kubeconfigs: `ca`).
pub fn ca_of(name: &str) -> &'static str {
    PKI_LEAVES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, c)| *c)
        .unwrap_or("ca")
}

/// A node built in a temp dir: `<tmp>/root` is the node; `<tmp>` also holds files that live
/// outside the root (configs, "outside" symlink targets, CSR dirs).
pub struct Node {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub spec: NodeSpec,
}

impl Node {
    /// kubeadm's default node (RSA-2048, leaves 3 days left, CAs 10 years), adjusted by `f`.
    pub fn build(f: impl FnOnce(&mut NodeSpec)) -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let mut spec = NodeSpec::new(OffsetDateTime::now_utc());
        f(&mut spec);
        build(&root, &spec).unwrap();
        Node { tmp, root, spec }
    }

    /// An empty root (for nodes built by other tools).
    pub fn empty(spec: NodeSpec) -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        Node { tmp, root, spec }
    }

    /// A copy of another node's tree (cheaper than building: no key generation).
    pub fn copy_of(src: &Node) -> Node {
        let n = Node::empty(src.spec.clone());
        std::fs::remove_dir(&n.root).unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(&src.root)
            .arg(&n.root)
            .status()
            .unwrap();
        assert!(st.success(), "cp -a failed");
        n
    }

    /// Run like [`Node::run`], but kill the process if it has not exited after `limit`
    /// (a hang, e.g. blocked opening a FIFO); `None` then.
    pub fn run_watchdog(&self, args: &[&str], limit: std::time::Duration) -> Option<Out> {
        let mut full = vec!["--root".to_string(), self.root.display().to_string()];
        full.extend(args.iter().map(|s| s.to_string()));
        let dir = tempfile::tempdir().unwrap();
        let (o, e) = (dir.path().join("out"), dir.path().join("err"));
        let mut child = Command::new(BIN)
            .args(&full)
            .env("NO_COLOR", "1")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&o).unwrap())
            .stderr(std::fs::File::create(&e).unwrap())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        Some(Out {
            args: full,
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&o).unwrap(),
            stderr: strip_ansi(&std::fs::read_to_string(&e).unwrap()),
        })
    }

    pub fn default_node() -> Node {
        Node::build(|_| {})
    }

    /// A host path (`/etc/kubernetes/...`) resolved under the root.
    pub fn path(&self, host: &str) -> PathBuf {
        self.root.join(host.trim_start_matches('/'))
    }

    /// A file under certificatesDir.
    pub fn pki(&self, rel: &str) -> PathBuf {
        self.path("/etc/kubernetes/pki").join(rel)
    }

    /// A file under kubeconfigDir.
    pub fn kc(&self, name: &str) -> PathBuf {
        self.path("/etc/kubernetes").join(name)
    }

    /// A path outside the root, inside the temp dir.
    pub fn outside(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Run the binary with `--root` and `args`.
    pub fn run(&self, args: &[&str]) -> Out {
        let mut full = vec!["--root".to_string(), self.root.display().to_string()];
        full.extend(args.iter().map(|s| s.to_string()));
        run_bin(&full)
    }

    /// Write `yaml` to a config file outside the root and run with `--config` it.
    pub fn run_with_config(&self, yaml: &str, args: &[&str]) -> Out {
        let cfg = self.outside("config.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        let mut full = vec!["--config", cfg.to_str().unwrap()];
        full.extend_from_slice(args);
        self.run(&full)
    }

    /// Everything under the root except the tool's own state directory.
    pub fn tree(&self) -> Tree {
        Tree::of(&self.root, &[STATE])
    }

    /// Everything under the root.
    pub fn tree_all(&self) -> Tree {
        Tree::of(&self.root, &[])
    }

    /// Backup directories under the state dir.
    pub fn backups(&self) -> Vec<PathBuf> {
        let d = self.root.join(STATE).join("backups");
        let mut v: Vec<PathBuf> = match std::fs::read_dir(&d) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    /// Staged temp files left anywhere under the root.
    pub fn staged_leftovers(&self) -> Vec<String> {
        self.tree_all()
            .0
            .keys()
            .filter(|k| k.ends_with(".kubeadm-certd-new"))
            .cloned()
            .collect()
    }

    /// The leaf certificate DER of a certificate name (PKI file or kubeconfig).
    pub fn leaf_der(&self, name: &str) -> Vec<u8> {
        match PKI_LEAVES.iter().find(|(n, _, _)| *n == name) {
            Some((_, base, _)) => {
                pem_ders(&std::fs::read(self.pki(&format!("{base}.crt"))).unwrap())[0].clone()
            }
            None => {
                pem_ders(&kubeconfig_field(&self.kc(name), "client-certificate-data"))[0].clone()
            }
        }
    }

    /// The private key PEM bytes of a certificate name.
    pub fn key_pem(&self, name: &str) -> Vec<u8> {
        match PKI_LEAVES.iter().find(|(n, _, _)| *n == name) {
            Some((_, base, _)) => std::fs::read(self.pki(&format!("{base}.key"))).unwrap(),
            None => kubeconfig_field(&self.kc(name), "client-key-data"),
        }
    }

    /// The CA certificate file of a certificate name.
    pub fn ca_crt(&self, name: &str) -> PathBuf {
        self.pki(&format!("{}.crt", ca_of(name)))
    }

    /// The certificate names present on this node.
    pub fn names(&self) -> Vec<&'static str> {
        LONG_NAMES
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !(self.spec.external_etcd && ca_of(n) == "etcd/ca"))
            .filter(|n| self.spec.super_admin || *n != "super-admin.conf")
            .collect()
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Out {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    /// stderr with ANSI escapes removed.
    pub stderr: String,
}

impl Out {
    /// Lines of stderr that report an error.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect()
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code of {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.assert_code(0)
    }

    /// Exactly one `error:` line, which contains every one of `needles`.
    #[track_caller]
    pub fn assert_one_error(&self, needles: &[&str]) {
        let lines = self.error_lines();
        assert_eq!(
            lines.len(),
            1,
            "want exactly one error line from {:?}, got:\n{}",
            self.args,
            self.stderr
        );
        for n in needles {
            assert!(
                lines[0].contains(n),
                "error line of {:?} lacks {n:?}:\n{}",
                self.args,
                lines[0]
            );
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            if it.peek() == Some(&'[') {
                it.next();
                for d in it.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Run the binary with exactly these arguments.
pub fn run_bin<S: AsRef<str>>(args: &[S]) -> Out {
    let args: Vec<String> = args.iter().map(|s| s.as_ref().to_string()).collect();
    let o = Command::new(BIN)
        .args(&args)
        .env("NO_COLOR", "1")
        .env_remove("JOURNAL_STREAM")
        .env_remove("KUBEADM_CERTD_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Out {
        args,
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: strip_ansi(&String::from_utf8_lossy(&o.stderr)),
    }
}
