//! Test nodes that the REAL binary scans: each is built with the node builder, then
//! `kubeadm-certd run --once` writes its metrics textfile, which is read back.

use super::textfile::Textfile;
use kubeadm_certd::pki::inspect::KeyAlg;
use kubeadm_certd::testkit::nodebuilder::{build, NodeSpec, Ports};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use time::OffsetDateTime;

const BIN: &str = env!("CARGO_BIN_EXE_kubeadm-certd");
const TEXTFILE: &str = "/var/lib/node_exporter/textfile_collector/kubeadm_certd.prom";
const DAY: u64 = 86_400;

/// A built node in a temp dir.
pub struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    pub fn build(tweak: impl FnOnce(&mut NodeSpec)) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = NodeSpec::new(OffsetDateTime::now_utc());
        spec.key = KeyAlg::EcP256;
        tweak(&mut spec);
        build(dir.path(), &spec).unwrap();
        Node { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// One daemon cycle with `config` (the metrics textfile is always on); the textfile it
    /// wrote. The exit status is not judged: a cycle with failures still writes the file.
    pub fn run_once(&self, config: &str) -> Textfile {
        self.run_once_with(config, false)
    }

    /// As [`Node::run_once`], with the node's pki directory mounted read-only (a private
    /// mount namespace, so nothing outside the test sees it): every renewal attempt fails
    /// when it stages its first file, a real failure rather than a refusal.
    pub fn run_once_read_only_pki(&self, config: &str) -> Textfile {
        self.run_once_with(config, true)
    }

    /// The daemon itself with `config` for about 4 s (a few cycles, so that the approver has
    /// tried the API), then SIGTERM; the last textfile it wrote.
    pub fn run_daemon(&self, config: &str) -> Textfile {
        let cfg = self.root().join("certd.yaml");
        std::fs::write(&cfg, format!("{config}metrics:\n  textfile: {TEXTFILE}\n")).unwrap();
        let out_path: PathBuf = self.root().join(TEXTFILE.trim_start_matches('/'));
        std::fs::create_dir_all(out_path.parent().unwrap()).unwrap();
        let mut child = Command::new(BIN)
            .args(["--root", self.root().to_str().unwrap()])
            .args(["--config", cfg.to_str().unwrap(), "run"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(4));
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        Textfile::parse(&std::fs::read_to_string(&out_path).unwrap())
    }

    /// `kubeadm-certd ca rotate etcd-ca` (a single node: the record goes to stateDir).
    pub fn ca_rotate(&self) {
        let cfg = self.root().join("certd.yaml");
        std::fs::write(&cfg, "").unwrap();
        let out = Command::new(BIN)
            .args(["--root", self.root().to_str().unwrap()])
            .args(["--config", cfg.to_str().unwrap(), "ca", "rotate", "etcd-ca"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ca rotate: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn run_once_with(&self, config: &str, read_only_pki: bool) -> Textfile {
        let cfg = self.root().join("certd.yaml");
        std::fs::write(&cfg, format!("{config}metrics:\n  textfile: {TEXTFILE}\n")).unwrap();
        let out_path: PathBuf = self.root().join(TEXTFILE.trim_start_matches('/'));
        let _ = std::fs::remove_file(&out_path);
        // node_exporter's textfile collector directory: the daemon writes only where it exists.
        std::fs::create_dir_all(out_path.parent().unwrap()).unwrap();
        let mut cmd = if read_only_pki {
            let mut c = Command::new("unshare");
            c.args(["-m", "--propagation", "private", "sh", "-c"])
                .arg(
                    r#"mount --bind "$PKI" "$PKI" && mount -o remount,ro,bind "$PKI" && exec "$@""#,
                )
                .arg("sh")
                .arg(BIN)
                .env("PKI", self.root().join("etc/kubernetes/pki"));
            c
        } else {
            Command::new(BIN)
        };
        let out = cmd
            .args(["--root", self.root().to_str().unwrap()])
            .args(["--config", cfg.to_str().unwrap(), "run", "--once"])
            .output()
            .unwrap();
        let text = std::fs::read_to_string(&out_path).unwrap_or_else(|e| {
            panic!(
                "run --once wrote no textfile ({e}); exit {:?}, stderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
        Textfile::parse(&text)
    }
}

const NO_RESTART: &str = "restart:\n  enabled: false\n";

/// The textfiles of every case, written once per test binary.
pub struct Fleet {
    /// Leaves with 200 days left: nothing to do.
    pub healthy: Textfile,
    /// Leaves with 3 days left, renewed (no restarts); the kubelet's client certificate, which
    /// kubeadm-certd never renews, keeps its 3 days.
    pub renewed: Textfile,
    /// Leaves with 10 days left; apiserver is excluded, so it stays at 10 days.
    pub expiring: Textfile,
    /// Built 20 days ago with 10-day leaves; apiserver is excluded and stays expired.
    pub expired: Textfile,
    /// `failed[0]`: a cycle with every certificate excluded (nothing tried); `failed[1]`: the
    /// next daemon's cycle, which tries to renew the due certificates and fails to write
    /// them (read-only pki directory).
    pub failed: [Textfile; 2],
    /// A cycle after apiserver.key was replaced by another key: renewing apiserver is refused
    /// (a standing refusal, not a failed attempt).
    pub refused: Textfile,
    /// Leaves with 3 days left, restarts on, but no kubelet runs the pods: the first restart
    /// never comes back healthy and is rolled back.
    pub rolled_back: Textfile,
    /// CAs with 200 days left (below caWarnBefore's 365d).
    pub ca_short: Textfile,
    /// CAs with 20 days left: the first cycle renews up to the CAs' end, the second (this
    /// file) finds the leaves due again with nothing to gain: blocked by CA runway.
    pub ca_blocked: Textfile,
    /// Every component restarted three times in the last hour (restarts.json): the budget
    /// is spent, so the renewal's restarts stay owed.
    pub budget_spent: Textfile,
    /// Certificates issued two hours in the future: the clock reads behind them, renewal is
    /// deferred.
    pub clock_behind: Textfile,
    /// `coordination.mode: etcd` with no etcd member answering: the coordination gauges
    /// (no healthy member, no lock, no halt seen).
    pub coordinated: Textfile,
    /// The daemon (not `--once`) on a control-plane node whose admin.conf points at an API
    /// that does not answer (127.0.0.1:6443): the approver's series, API unreachable.
    pub approver: Textfile,
    /// A single node after `ca rotate etcd-ca`, whose daemon cannot carry it out (restarts
    /// are off): the rotation gauges of a rotation in trust-both that makes no progress.
    pub rotating: Textfile,
    /// The daemon with the approver on, against the stand-in kube-apiserver, with one CSR
    /// that fails rule (f) (left pending): `[0]` just created, `[1]` the same CSR 6 minutes
    /// old (backdated in the stand-in), `[2]` after someone else approved it.
    pub csr: [Textfile; 3],
}

impl Fleet {
    pub fn get() -> &'static Fleet {
        static FLEET: OnceLock<Fleet> = OnceLock::new();
        FLEET.get_or_init(Fleet::make)
    }

    pub fn all(&self) -> Vec<(&'static str, &Textfile)> {
        vec![
            ("healthy", &self.healthy),
            ("renewed", &self.renewed),
            ("expiring", &self.expiring),
            ("expired", &self.expired),
            ("failed-before", &self.failed[0]),
            ("failed", &self.failed[1]),
            ("refused", &self.refused),
            ("rolled-back", &self.rolled_back),
            ("ca-short", &self.ca_short),
            ("ca-blocked", &self.ca_blocked),
            ("budget-spent", &self.budget_spent),
            ("clock-behind", &self.clock_behind),
            ("coordinated", &self.coordinated),
            ("approver", &self.approver),
            ("rotating", &self.rotating),
            ("csr-fresh", &self.csr[0]),
            ("csr-stale", &self.csr[1]),
            ("csr-decided", &self.csr[2]),
        ]
    }

    fn make() -> Fleet {
        let days = |n: u64| Duration::from_secs(n * DAY);
        let rolled_back = std::thread::spawn(move || {
            let n = Node::build(|s| s.ports = free_ports());
            n.run_once("restart:\n  minHold: 1s\n  timeout: 3s\n")
        });
        let healthy = Node::build(|s| s.leaf_left = days(200)).run_once(NO_RESTART);
        let renewed = Node::build(|_| {}).run_once(NO_RESTART);
        let exclude = format!("{NO_RESTART}exclude: [apiserver]\n");
        let expiring = Node::build(|s| s.leaf_left = days(10)).run_once(&exclude);
        // The kubelet client certificate expired too: keep it so (no revival).
        let keep = format!("{exclude}kubelet:\n  reviveClientCert: false\n");
        let expired = Node::build(|s| {
            s.now -= days(20);
            s.leaf_left = days(10);
        })
        .run_once(&keep);
        let n = Node::build(|_| {});
        let all = "exclude: [admin.conf, apiserver, apiserver-etcd-client, apiserver-kubelet-client, controller-manager.conf, etcd-healthcheck-client, etcd-peer, etcd-server, front-proxy-client, scheduler.conf, super-admin.conf]\n";
        let before = n.run_once(&format!("{NO_RESTART}{all}"));
        let after = n.run_once_read_only_pki(NO_RESTART);
        let r = Node::build(|_| {});
        let pki = r.root().join("etc/kubernetes/pki");
        std::fs::copy(
            pki.join("front-proxy-client.key"),
            pki.join("apiserver.key"),
        )
        .unwrap();
        let refused = r.run_once(NO_RESTART);
        let ca_short = Node::build(|s| {
            s.leaf_left = days(100);
            s.ca_left = days(200);
        })
        .run_once(NO_RESTART);
        let b = Node::build(|s| s.ca_left = days(20));
        b.run_once(NO_RESTART);
        let ca_blocked = b.run_once(NO_RESTART);
        let spent = Node::build(|_| {});
        let hour_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        let at = hour_ago
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let history: std::collections::BTreeMap<&str, [&str; 3]> = [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ]
        .into_iter()
        .map(|c| (c, [at.as_str(), at.as_str(), at.as_str()]))
        .collect();
        let state = spent.root().join("var/lib/kubeadm-certd");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(
            state.join("restarts.json"),
            serde_json::to_string(&history).unwrap(),
        )
        .unwrap();
        let budget_spent = spent.run_once("");
        let clock_behind = Node::build(|s| s.now += Duration::from_secs(2 * 3600)).run_once(
            &format!("{NO_RESTART}kubelet:\n  reviveClientCert: false\n"),
        );
        let coordinated = Node::build(|s| s.leaf_left = days(200))
            .run_once(&format!("{NO_RESTART}coordination:\n  mode: etcd\n"));
        let approver = Node::build(|s| s.leaf_left = days(200)).run_daemon(&format!(
            "{NO_RESTART}checkInterval: 1s\njitter: 0s\napprover:\n  mode: on\n"
        ));
        let rot = Node::build(|s| s.leaf_left = days(200));
        rot.ca_rotate();
        let rotating = rot.run_once(NO_RESTART);
        let csr = csr_snapshots();
        Fleet {
            approver,
            rotating,
            csr,
            healthy,
            renewed,
            expiring,
            expired,
            failed: [before, after],
            refused,
            rolled_back: rolled_back.join().unwrap(),
            ca_short,
            ca_blocked,
            budget_spent,
            clock_behind,
            coordinated,
        }
    }
}

/// Ports nobody listens on, so that no probe of the restarted components can succeed.
fn free_ports() -> Ports {
    let ls: Vec<std::net::TcpListener> = (0..6)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let p: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
    Ports {
        etcd_client: p[0],
        etcd_peer: p[1],
        etcd_metrics: p[2],
        apiserver: p[3],
        controller_manager: p[4],
        scheduler: p[5],
    }
}

/// See [`Fleet::csr`]: the REAL daemon's textfiles against the stand-in API server (loopback).
fn csr_snapshots() -> [Textfile; 3] {
    use kubeadm_certd::testkit::apiserver::{kubelet_serving_csr, ApiServer, CsrSpec, Options};
    let n = Node::build(|s| s.leaf_left = Duration::from_secs(200 * DAY));
    let api = ApiServer::start(Options::for_node(n.root()).unwrap()).unwrap();
    api.point_kubeconfig(&n.root().join("etc/kubernetes/admin.conf"))
        .unwrap();
    api.add_node("w1", &[("InternalIP", "127.0.0.2")]);
    api.add_node("w2", &[("InternalIP", "127.0.0.3")]);
    // w2 asks for w1's address.
    let pem = kubelet_serving_csr(
        "system:node:w2",
        &["system:nodes"],
        &["w2"],
        &["127.0.0.2"],
        KeyAlg::EcP256,
    )
    .unwrap();
    api.create_csr("csr-steal", CsrSpec::kubelet_serving("w2", pem));
    let cfg = n.root().join("certd.yaml");
    std::fs::write(
        &cfg,
        format!("{NO_RESTART}checkInterval: 1s\njitter: 0s\napprover:\n  mode: on\nmetrics:\n  textfile: {TEXTFILE}\n"),
    )
    .unwrap();
    let out_path: PathBuf = n.root().join(TEXTFILE.trim_start_matches('/'));
    std::fs::create_dir_all(out_path.parent().unwrap()).unwrap();
    let mut child = Command::new(BIN)
        .args(["--root", n.root().to_str().unwrap()])
        .args(["--config", cfg.to_str().unwrap(), "run"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let wait = |want: &[&str]| -> Textfile {
        let end = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&out_path).unwrap_or_default();
            if want.iter().all(|w| text.lines().any(|l| l == *w)) {
                return Textfile::parse(&text);
            }
            assert!(
                std::time::Instant::now() < end,
                "the textfile never had {want:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let fresh = wait(&[
        "kubeadm_certd_api_reachable 1",
        "kubeadm_certd_csr_denied_total{rule=\"ip-sans\",action=\"left_pending\"} 1",
        "kubeadm_certd_csr_pending_stale 0",
    ]);
    assert!(api.backdate_csr("csr-steal", Duration::from_secs(360)));
    let stale = wait(&["kubeadm_certd_csr_pending_stale 1"]);
    api.set_condition("csr-steal", "Approved", "KubectlApprove", "by hand")
        .unwrap();
    let decided = wait(&["kubeadm_certd_csr_pending_stale 0"]);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    [fresh, stale, decided]
}
