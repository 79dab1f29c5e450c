//! A control-plane node and the stand-in kube-apiserver it talks to (issue 17), for the tests
//! of the API client, the approver, the csr commands and the kubelet-config ConfigMap.
//!
//! The node (`daemon_node::node`, named cp1) gets its admin.conf pointed at a stand-in that
//! runs in the test process on 127.0.0.1 and trusts the node's cluster CA. The cluster has
//! three Nodes, all on loopback: cp1 (127.0.0.1, this node), w1 (127.0.0.2), w2 (127.0.0.3).
//! The own-node check (rule h) uses this machine's real interfaces: getifaddrs lists
//! 127.0.0.1 on `lo` (and not 127.0.0.2-99, which the kernel routes to `lo` without
//! assigning them), so cp1 asking for 127.0.0.1 is attested and asking for 127.0.0.9 is not.

use kubeadm_certd::pki::inspect::KeyAlg;
use kubeadm_certd::testkit::apiserver::{
    kubelet_serving_csr, ApiServer, CsrSpec, Options, Recorded,
};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_kubeadm-certd");
pub const ADMIN_CONF: &str = "etc/kubernetes/admin.conf";
pub const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
pub const SIGNER: &str = "kubernetes.io/kubelet-serving";

/// A node and its API server.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub api: ApiServer,
}

impl Cluster {
    /// A node whose leaves have `leaf_days` left, and the stand-in with cp1, w1 and w2.
    pub fn new(leaf_days: u64) -> Cluster {
        Cluster::with_leaves(super::daemon_node::node(leaf_days))
    }

    /// The same around a node built elsewhere.
    pub fn with_leaves(dir: tempfile::TempDir) -> Cluster {
        let api = ApiServer::start(Options::for_node(dir.path()).unwrap()).unwrap();
        api.point_kubeconfig(&dir.path().join(ADMIN_CONF)).unwrap();
        api.add_node("cp1", &[("InternalIP", "127.0.0.1"), ("Hostname", "cp1")]);
        api.add_node("w1", &[("InternalIP", "127.0.0.2"), ("Hostname", "w1")]);
        api.add_node("w2", &[("InternalIP", "127.0.0.3"), ("Hostname", "w2")]);
        Cluster { dir, api }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Create a kubelet-serving CSR as `node`'s kubelet would (CN system:node:NODE, O
    /// system:nodes, ECDSA), asking for these DNS names and IPs.
    pub fn kubelet_csr(&self, name: &str, node: &str, dns: &[&str], ips: &[&str]) -> Value {
        let cn = format!("system:node:{node}");
        let pem = kubelet_serving_csr(&cn, &["system:nodes"], dns, ips, KeyAlg::EcP256).unwrap();
        self.api
            .create_csr(name, CsrSpec::kubelet_serving(node, pem))
    }

    /// A kubelet's client-certificate CSR (another signer), which the approver must ignore.
    pub fn other_signer_csr(&self, name: &str, node: &str) -> Value {
        let cn = format!("system:node:{node}");
        let pem = kubelet_serving_csr(&cn, &["system:nodes"], &[], &[], KeyAlg::EcP256).unwrap();
        let mut spec = CsrSpec::kubelet_serving(node, pem);
        spec.signer_name = "kubernetes.io/kube-apiserver-client-kubelet".into();
        spec.usages = vec!["digital signature".into(), "client auth".into()];
        self.api.create_csr(name, spec)
    }

    /// The good CSR of worker `node` (its Hostname and InternalIP).
    pub fn good_csr(&self, name: &str, node: &str) -> Value {
        let ip = match node {
            "cp1" => "127.0.0.1",
            "w1" => "127.0.0.2",
            "w2" => "127.0.0.3",
            other => panic!("no node {other}"),
        };
        self.kubelet_csr(name, node, &[node], &[ip])
    }

    /// The condition types on a stored CSR ("Approved", "Denied", ...).
    pub fn conditions(&self, name: &str) -> Vec<Value> {
        self.api
            .csr(name)
            .and_then(|c| c.pointer("/status/conditions").cloned())
            .and_then(|c| c.as_array().cloned())
            .unwrap_or_default()
    }

    /// The type of the first condition, or "Pending".
    pub fn state(&self, name: &str) -> String {
        self.conditions(name)
            .first()
            .and_then(|c| c["type"].as_str())
            .unwrap_or("Pending")
            .to_string()
    }

    /// Wait until CSR `name` has a condition; the time it took.
    pub fn wait_decided(&self, name: &str, limit: Duration) -> Option<Duration> {
        let t = Instant::now();
        wait_for(limit, || !self.conditions(name).is_empty()).then(|| t.elapsed())
    }

    /// Put `serverTLSBootstrap: true` in the node's kubelet config beforehand, so that a
    /// daemon with `kubelet.serverTLSBootstrap: true` has no kubelet to restart here.
    pub fn node_file_has_server_tls_bootstrap(&self) {
        let kcfg = self.root().join("var/lib/kubelet/config.yaml");
        let mut text = std::fs::read_to_string(&kcfg).unwrap();
        text.push_str("serverTLSBootstrap: true\n");
        std::fs::write(&kcfg, text).unwrap();
    }

    /// Write the daemon's config next to the node.
    pub fn config(&self, text: &str) -> PathBuf {
        super::daemon_node::config(self.root(), text)
    }

    /// Run a command of the binary against this node; (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(BIN)
            .arg("--root")
            .arg(self.root())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `cfg` (a config with `textfile: ""`) with the metrics textfile on, its directory made.
    pub fn with_textfile(&self, cfg: &str) -> (String, Textfile) {
        let textfile = "/var/lib/node_exporter/textfile_collector/kubeadm_certd.prom";
        let prom = self.root().join(textfile.trim_start_matches('/'));
        std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
        let cfg = cfg.replace("textfile: \"\"", &format!("textfile: {textfile}"));
        (cfg, Textfile(prom))
    }

    /// The approval writes the server received (every write, to check none went elsewhere).
    pub fn writes(&self) -> Vec<kubeadm_certd::testkit::apiserver::Recorded> {
        self.api
            .requests()
            .into_iter()
            .filter(|r| r.is_write())
            .collect()
    }
}

/// The daemon's metrics textfile.
pub struct Textfile(pub PathBuf);

impl Textfile {
    /// Its text now (empty before the first write).
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }

    /// Whether it has this line.
    pub fn has(&self, line: &str) -> bool {
        self.text().lines().any(|l| l == line)
    }
}

/// Poll `cond` every 20 ms for up to `limit`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// A process of the binary (the daemon, or a CLI command) with its stderr lines collected.
pub struct Proc {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    out: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// `kubeadm-certd --root ROOT [--config CFG] ARGS...`, debug logging on.
    pub fn start(root: &Path, cfg: Option<&Path>, args: &[&str]) -> Proc {
        Proc::start_with(root, cfg, args, true)
    }

    /// As [`Proc::start`], with the log as an operator gets it (no KUBEADM_CERTD_LOG).
    pub fn start_with(root: &Path, cfg: Option<&Path>, args: &[&str], debug: bool) -> Proc {
        Proc::start_env(root, cfg, args, debug, &[])
    }

    /// As [`Proc::start_with`], with these environment variables set too (the stand-in
    /// systemctl first on PATH, its log). Never systemd's own: no NOTIFY_SOCKET or
    /// JOURNAL_STREAM reaches it, so the log is on stderr.
    pub fn start_env(
        root: &Path,
        cfg: Option<&Path>,
        args: &[&str],
        debug: bool,
        env: &[(&str, String)],
    ) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.arg("--root").arg(root);
        if let Some(c) = cfg {
            cmd.arg("--config").arg(c);
        }
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .env_remove("FAKE_SYSTEMCTL_STATE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        if debug {
            cmd.env("KUBEADM_CERTD_LOG", "kubeadm_certd=debug");
        } else {
            cmd.env_remove("KUBEADM_CERTD_LOG");
        }
        let mut child = cmd.spawn().unwrap();
        let collect = |r: Box<dyn std::io::Read + Send>| {
            let v = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&v);
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(l);
                }
            });
            v
        };
        let lines = collect(Box::new(child.stderr.take().unwrap()));
        let out = collect(Box::new(child.stdout.take().unwrap()));
        Proc { child, lines, out }
    }

    /// The daemon (`run`) with this config.
    pub fn daemon(c: &Cluster, config: &str) -> Proc {
        let cfg = c.config(config);
        Proc::start(c.root(), Some(&cfg), &["run"])
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn stdout(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }

    /// Log lines carrying this MESSAGE_ID.
    pub fn with_id(&self, id: &str) -> Vec<String> {
        let tag = format!("MESSAGE_ID=\"{id}\"");
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(&tag))
            .cloned()
            .collect()
    }

    /// Wait until a log line contains `text`.
    pub fn wait_log(&self, text: &str, limit: Duration) -> bool {
        wait_for(limit, || {
            self.lines.lock().unwrap().iter().any(|l| l.contains(text))
        })
    }

    /// SIGTERM, then the time until the process exited (None: not within 10 s) and its code.
    pub fn term(&mut self) -> (Option<Duration>, Option<i32>) {
        let t = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        while t.elapsed() < Duration::from_secs(10) {
            if let Some(st) = self.child.try_wait().unwrap() {
                let took = t.elapsed();
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return (Some(took), st.code());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (None, None)
    }

    /// SIGTERM, wait for the exit, and the whole log.
    pub fn stop(mut self) -> String {
        self.term();
        self.log()
    }

    /// Wait for the process to exit by itself; its code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon's config for these tests: no restarts (no kubelet here), no textfile unless
/// asked, the approver on.
pub const APPROVER_ON: &str =
    "restart:\n  enabled: false\nmetrics:\n  textfile: \"\"\ncheckInterval: 1h\njitter: 0s\napprover:\n  mode: on\n";

/// The requests and writes the approver tests look at.
pub fn approval(name: &str) -> String {
    format!("{CSRS}/{name}/approval")
}

/// The requests about one CSR (its object and its subresources), in order.
pub fn about(c: &Cluster, name: &str) -> Vec<Recorded> {
    let obj = format!("{CSRS}/{name}");
    c.api
        .requests()
        .into_iter()
        .filter(|r| r.path_only() == obj || r.path_only().starts_with(&format!("{obj}/")))
        .collect()
}

pub fn calls(rs: &[Recorded]) -> Vec<String> {
    rs.iter()
        .map(|r| {
            let sub = if r.path_only().ends_with("/approval") {
                " approval"
            } else {
                ""
            };
            format!("{}{sub} {}", r.method, r.status)
        })
        .collect()
}

/// Every write the server saw was a PUT on a kubelet-serving CSR's /approval, by admin.conf's
/// user, carrying the CSR's spec unchanged.
pub fn only_approval_writes(c: &Cluster) {
    for w in c.writes() {
        assert!(
            w.method == "PUT"
                && w.path_only().starts_with(CSRS)
                && w.path_only().ends_with("/approval"),
            "a write other than an approval: {} {}",
            w.method,
            w.path
        );
        assert_eq!(w.user.as_deref(), Some("kubernetes-admin"));
        let body: serde_json::Value = serde_json::from_str(&w.body).unwrap();
        let name = body["metadata"]["name"].as_str().unwrap();
        let stored = c.api.csr(name).unwrap();
        assert_eq!(body["spec"]["signerName"], "kubernetes.io/kubelet-serving");
        assert_eq!(
            body["spec"]["request"], stored["spec"]["request"],
            "{name}: spec.request changed"
        );
        assert_eq!(body["spec"]["username"], stored["spec"]["username"]);
    }
}

/// The number of list (not watch) requests for CSRs so far.
pub fn lists(c: &Cluster) -> usize {
    c.api
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path_only() == CSRS && !r.path.contains("watch="))
        .count()
}

pub fn watches(c: &Cluster) -> usize {
    c.api
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path_only() == CSRS && r.path.contains("watch="))
        .count()
}
