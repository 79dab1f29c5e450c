//! Command-line definitions. The man page and shell completions are generated from these.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Keeps a kubeadm node's certificates from ever expiring.
#[derive(Debug, Parser)]
#[command(name = "kubeadm-certd", version = crate::VERSION, about, long_about = None)]
pub struct Cli {
    /// Directory under which every host path resolves (a whole node can live in a temp dir).
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Config file [default: /etc/kubeadm-certd/config.yaml under --root]. An explicit file
    /// is taken as given and must exist.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log debug details.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Commands that change the node: how long to wait for the node lock while the daemon's
    /// current cycle or another command holds it (humantime: 30s, 5m; 0: do not wait).
    /// Read-only commands never wait; `run` waits for a command to finish.
    #[arg(long, global = true, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub wait: std::time::Duration,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats of check-expiration.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    /// kubeadm's tables.
    Text,
    /// kubeadm's CertificateExpirationInfo.
    Json,
    /// The JSON document as kubeadm's YAML printer writes it.
    Yaml,
}

impl Output {
    /// Print a document in this machine-readable format (Text: as JSON).
    pub fn print_doc(self, v: &serde_json::Value) -> anyhow::Result<()> {
        match self {
            Output::Yaml => print!("{}", crate::plan::report::yaml::to_yaml(v)),
            Output::Text | Output::Json => println!("{}", serde_json::to_string_pretty(v)?),
        }
        Ok(())
    }
}

/// `cluster` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ClusterAction {
    /// The etcd members and their health, the restart lock's holder and waiters, any halt.
    Status {
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Show the halt record, then clear it: every node may restart again.
    Resume,
}

/// `ca` subcommands (issue 20).
#[derive(Debug, Clone, Subcommand)]
pub enum CaAction {
    /// Rotate a CA across every control-plane node with no downtime (phase 1: etcd-ca). Run
    /// once on any control-plane node; the daemons carry it out, one node at a time.
    Rotate {
        /// The CA: etcd-ca.
        #[arg(value_parser = ["etcd-ca"])]
        ca: String,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Use this CA (ca.crt + ca.key) instead of making one, e.g. from an offline root.
        #[arg(long, value_name = "DIR", conflicts_with = "abort")]
        ca_dir: Option<PathBuf>,
        /// Go back to the old CA (possible until trust-new starts).
        #[arg(long)]
        abort: bool,
    },
    /// The rotation in progress (or the last one): phase, each node's progress, who started it.
    Status {
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report certificate expiry exactly as `kubeadm certs check-expiration` does, plus the
    /// kubelet's own certificates.
    CheckExpiration {
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Renew certificates with the node's own CA, as `kubeadm certs renew` does.
    Renew(RenewArgs),
    /// Install certificates that an external CA signed from `renew --csr-only` requests.
    InstallSigned {
        /// Directory holding <name>.csr, <name>.key and the signed <name>.crt.
        #[arg(long, value_name = "DIR")]
        csr_dir: PathBuf,
        /// Certificate names (default: every <name>.crt in the directory).
        names: Vec<String>,
        /// Do not restart the static pods that use the installed files.
        #[arg(long)]
        no_restart: bool,
    },
    /// Restart control-plane static pods by parking their manifests, one at a time.
    Restart {
        /// all, etcd, kube-apiserver, kube-controller-manager or kube-scheduler.
        #[arg(required = true)]
        components: Vec<String>,
    },
    /// Finish or undo whatever an interrupted run left: parked manifests, staged files.
    Recover,
    /// HA control planes: the etcd members, the cluster-wide restart lock, the halt record.
    Cluster {
        /// What to do.
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// CA rotation: `ca rotate etcd-ca`, `ca status`.
    Ca {
        /// What to do.
        #[command(subcommand)]
        action: CaAction,
    },
    /// Show the backup sets, which are kept and why, and their size.
    Backups {
        /// Delete the sets not kept now (the daemon does it after each successful cycle).
        #[arg(long)]
        prune: bool,
    },
    /// Run the daemon. It holds the node lock only while it acts (a cycle), so the other
    /// commands work while it runs; it waits for one that holds the lock.
    Run {
        /// One cycle, then exit (for a timer).
        #[arg(long)]
        once: bool,
    },
    /// Enable or disable the kubelet's serverTLSBootstrap (CA-signed serving certificates):
    /// in this node's kubelet config and, on a control-plane node, in the cluster's
    /// kubelet-config ConfigMap.
    KubeletServingCerts {
        /// enable or disable.
        #[arg(value_parser = ["enable", "disable"])]
        action: String,
        /// Do not restart the kubelet.
        #[arg(long)]
        no_restart: bool,
        /// Change this node's kubelet config only, not the cluster's ConfigMap.
        #[arg(long)]
        node_only: bool,
    },
    /// Kubelet serving CSRs: list them with what each approval rule says, or approve those
    /// that pass every rule.
    Csr {
        /// list or approve.
        #[command(subcommand)]
        action: CsrAction,
    },
    /// Point kubelet.conf at kubelet-client-current.pem instead of an embedded certificate
    /// (clusters made before kubeadm 1.17).
    RepairKubeletConf,
    /// The kubelet's client certificate: revive it on this node, or make a kubelet.conf for
    /// another node, with this node's cluster CA.
    KubeletClient {
        /// revive or kubeconfig.
        #[command(subcommand)]
        action: KubeletClientAction,
    },
    /// Run the main job on a throwaway node.
    Demo {
        /// Build the node in DIR and keep it.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
    /// A stand-in control-plane component for `demo`: answers HTTP(S) GETs with 200.
    #[command(hide = true)]
    Standin {
        /// The node root (certificate flags are host paths under it).
        #[arg(long)]
        node_root: PathBuf,
        /// host:port to listen on.
        #[arg(long)]
        listen: String,
        /// Plain HTTP instead of HTTPS.
        #[arg(long)]
        http: bool,
        /// The component's own flags.
        #[arg(last = true)]
        flags: Vec<String>,
    },
    /// Write the man page and shell completions into DIR (used by packaging).
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory.
        dir: PathBuf,
    },
}

/// `csr` subcommands.
#[derive(Debug, Subcommand)]
pub enum CsrAction {
    /// Every kubelet-serving CSR: requestor, SANs, age, state, and each rule's verdict.
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Approve the named CSRs that pass every rule; each refused one is named with the
    /// first rule it fails (exit 1 if any is refused).
    Approve {
        /// CSR names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `kubelet-client` subcommands.
#[derive(Debug, Subcommand)]
pub enum KubeletClientAction {
    /// Issue the kubelet a new client certificate when its own has expired or is in its last
    /// 10% (rotation failed), point kubelet-client-current.pem at it and restart the kubelet.
    /// Needs ca.key.
    Revive {
        /// Print what would be done and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a kubelet.conf for another node (e.g. a worker whose client certificate expired),
    /// signed by this node's CA; cluster name and server come from this node's kubelet.conf.
    Kubeconfig {
        /// The node's name (its user becomes system:node:NAME).
        #[arg(long, value_name = "NAME")]
        node: String,
        /// The API server URL to write instead of this node's.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
    },
}

/// `renew` arguments.
#[derive(Debug, Args)]
pub struct RenewArgs {
    /// `all`, `due`, or kubeadm certificate names (admin.conf, apiserver, ...).
    #[arg(required = true, value_name = "all|due|NAME")]
    pub targets: Vec<String>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not restart the static pods that use the renewed files.
    #[arg(long)]
    pub no_restart: bool,
    /// Write CSRs and new keys for an external CA instead of renewing.
    #[arg(long)]
    pub csr_only: bool,
    /// Where --csr-only writes (default: certificatesDir).
    #[arg(long, value_name = "DIR", requires = "csr_only")]
    pub csr_dir: Option<PathBuf>,
}
