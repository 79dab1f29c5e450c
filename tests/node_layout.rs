//! Issue 18 items 4 and 5, the daemon on the node layouts kubeadm leaves behind:
//! - `kubeadm upgrade node` rewrites /var/lib/kubelet/config.yaml without a
//!   `serverTLSBootstrap` only the node file had: the daemon sets it again within one cycle and
//!   restarts the kubelet once, and no more often than `restart.maxPerDay` when the file keeps
//!   being rewritten;
//! - a control-plane node that joined (no super-admin.conf: only `kubeadm init` writes it since
//!   v1.29) logs nothing about that file.
//!
//! The daemon runs as a binary with tests/fakes/systemctl first on PATH (systemd is not PID 1
//! here) and a healthz server on a free loopback port standing in for the kubelet's.

mod support;

use kubeadm_certd::testkit::nodebuilder::{build, NodeSpec};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;
use support::daemon_node::config;
use support::kube::{wait_for, Proc};

const KUBELET_CONFIG: &str = "var/lib/kubelet/config.yaml";
const TEXTFILE: &str = "/var/lib/node_exporter/textfile_collector/kubeadm_certd.prom";

/// A node with leaves 300 days from expiry (nothing to renew), a metrics directory, the fake
/// systemctl in `bin/`, and the kubelet config's healthzPort pointing at a live server.
struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new(spec: impl FnOnce(&mut NodeSpec)) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let mut s = NodeSpec::new(time::OffsetDateTime::now_utc());
        s.leaf_left = Duration::from_secs(300 * 86_400);
        s.key = kubeadm_certd::pki::inspect::KeyAlg::EcP256;
        spec(&mut s);
        build(&root, &s).unwrap();
        let metrics = root.join(TEXTFILE.trim_start_matches('/'));
        std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
        support::fakes::install_systemctl(&dir.path().join("bin"));
        let node = Node { dir };
        node.write_kubelet_config(&support::fakes::with_live_healthz(
            &node.read_kubelet_config(),
        ));
        node
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn read_kubelet_config(&self) -> String {
        std::fs::read_to_string(self.root().join(KUBELET_CONFIG)).unwrap()
    }

    /// Replace the kubelet config the way kubeadm does: a new file renamed over the old one.
    fn write_kubelet_config(&self, text: &str) {
        let path = self.root().join(KUBELET_CONFIG);
        let tmp = path.with_file_name(".config.yaml.kubeadm-upgrade");
        std::fs::write(&tmp, text).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// The fake systemctl's `restart kubelet` calls.
    fn kubelet_restarts(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("systemctl.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "restart kubelet")
            .count()
    }

    /// kubeadm_certd_cycles_total summed over triggers, from the daemon's textfile.
    fn cycles(&self) -> u64 {
        let text = std::fs::read_to_string(self.root().join(TEXTFILE.trim_start_matches('/')))
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix("kubeadm_certd_cycles_total{trigger=\""))
            .filter_map(|l| l.split_once("\"} ")?.1.trim().parse::<u64>().ok())
            .sum()
    }

    fn start(&self, cfg_text: &str) -> Proc {
        // No clock warning on a machine whose NTP state the test cannot choose.
        let cfg = config(
            self.dir.path(),
            &format!("{cfg_text}requireTimeSync: false\nmetrics:\n  textfile: {TEXTFILE}\n"),
        );
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Proc::start_env(
            &self.root(),
            Some(&cfg),
            &["run"],
            true,
            &[
                ("PATH", path),
                (
                    "FAKE_SYSTEMCTL_LOG",
                    self.dir.path().join("systemctl.log").display().to_string(),
                ),
            ],
        )
    }
}

fn has_key(cfg: &str) -> bool {
    cfg.lines().any(|l| l == "serverTLSBootstrap: true")
}

/// What `kubeadm upgrade node` writes: the cluster's kubelet config, without the node's key.
fn without_key(cfg: &str) -> String {
    cfg.lines()
        .filter(|l| !l.starts_with("serverTLSBootstrap"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn upgrade_rewrite_of_the_kubelet_config_is_undone_within_one_cycle_with_one_restart() {
    let node = Node::new(|_| {});
    // The node file already carries the key: the start-up step has nothing to do.
    let with_key = format!("{}serverTLSBootstrap: true\n", node.read_kubelet_config());
    node.write_kubelet_config(&with_key);
    // Only the watch can start a cycle before the test ends.
    let daemon =
        node.start("checkInterval: 1h\njitter: 0s\nkubelet:\n  serverTLSBootstrap: true\n");
    assert!(
        wait_for(Duration::from_secs(20), || node.cycles() >= 1),
        "{}",
        daemon.log()
    );
    assert_eq!(node.kubelet_restarts(), 0, "{}", daemon.log());

    let before = node.cycles();
    node.write_kubelet_config(&without_key(&with_key));
    // The first cycle after the change (started by it: the timer is an hour away) puts the
    // key back and restarts the kubelet. The textfile is written at the end of the cycle.
    assert!(
        wait_for(Duration::from_secs(15), || node.cycles() > before),
        "no cycle after the rewrite\n{}",
        daemon.log()
    );
    assert_eq!(node.cycles(), before + 1, "{}", daemon.log());
    assert!(
        has_key(&node.read_kubelet_config()),
        "{}\n{}",
        node.read_kubelet_config(),
        daemon.log()
    );
    assert_eq!(node.kubelet_restarts(), 1, "{}", daemon.log());
    // Every other byte is kubeadm's: only the key's line was added back.
    assert_eq!(
        without_key(&node.read_kubelet_config()),
        without_key(&with_key)
    );

    // Idempotent: later cycles (the daemon's own write, a touch of the file) change nothing.
    let touched = node.read_kubelet_config();
    node.write_kubelet_config(&touched);
    assert!(wait_for(Duration::from_secs(10), || node.cycles() >= before + 2));
    std::thread::sleep(Duration::from_millis(1500));
    let log = daemon.stop();
    assert_eq!(node.kubelet_restarts(), 1, "{log}");
    assert_eq!(node.read_kubelet_config(), touched);
    let drift: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("kubeadm upgrade"))
        .collect();
    assert_eq!(drift.len(), 1, "one line for the one re-apply:\n{log}");
}

#[test]
fn a_kubelet_config_rewritten_again_and_again_is_restored_at_most_max_per_day() {
    let node = Node::new(|_| {});
    let with_key = format!("{}serverTLSBootstrap: true\n", node.read_kubelet_config());
    node.write_kubelet_config(&with_key);
    let daemon = node.start(
        "checkInterval: 1h\njitter: 0s\nrestart:\n  maxPerDay: 2\nkubelet:\n  serverTLSBootstrap: true\n",
    );
    assert!(wait_for(Duration::from_secs(20), || node.cycles() >= 1));
    for round in 1..=4 {
        let seen = node.cycles();
        node.write_kubelet_config(&without_key(&with_key));
        assert!(
            wait_for(Duration::from_secs(15), || node.cycles() > seen),
            "round {round}: no cycle\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let log = daemon.stop();
    assert_eq!(node.kubelet_restarts(), 2, "{log}");
    // The third and fourth rewrites stay: the loop is named once, not once per cycle.
    assert!(!has_key(&node.read_kubelet_config()), "{log}");
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains("restart.maxPerDay"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
}

#[test]
fn joined_control_plane_without_super_admin_conf_logs_nothing_about_it() {
    let node = Node::new(|s| s.super_admin = false);
    assert!(!node.root().join("etc/kubernetes/super-admin.conf").exists());
    // A healthy cluster answers on admin.conf's server: the approver (approver.mode: auto on
    // a node holding admin.conf) finds the stand-in API server there, not a dead port.
    let api = kubeadm_certd::testkit::apiserver::ApiServer::start(
        kubeadm_certd::testkit::apiserver::Options::for_node(&node.root()).unwrap(),
    )
    .unwrap();
    api.point_kubeconfig(&node.root().join("etc/kubernetes/admin.conf"))
        .unwrap();
    api.put_kubeadm_config("v1.31.0");
    let daemon = node.start("checkInterval: 2s\njitter: 0s\nrestart:\n  enabled: false\n");
    assert!(
        wait_for(Duration::from_secs(30), || node.cycles() >= 3),
        "{}",
        daemon.log()
    );
    let log = daemon.stop();
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("super-admin") && !l.contains(" DEBUG ") && !l.contains(" TRACE "))
        .collect();
    assert!(noisy.is_empty(), "{noisy:#?}\n{log}");
    // Nothing else stands on this node either: a joined control plane is a healthy one.
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}
