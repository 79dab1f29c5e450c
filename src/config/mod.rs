//! Configuration: a YAML fragment (every key optional) -> defaults -> validated [`Settings`].
//!
//! Keys are camelCase like the kubelet's own config. An unknown key is an error that names it.

mod approver;
mod fragment;
mod sources;

pub use approver::{ApproverMode, ApproverSettings, DnsPattern};
pub use fragment::Fragment;
pub use sources::{ClusterOrigin, Origin, Sources};

use crate::node::paths::{NodePaths, Root};
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;

/// The default config file (resolved under `--root`).
pub const DEFAULT_CONFIG: &str = "/etc/kubeadm-certd/config.yaml";
/// Config files larger than this are refused rather than parsed.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Static-pod restart settings.
#[derive(Debug, Clone)]
pub struct RestartSettings {
    /// Restart affected components after a renewal.
    pub enabled: bool,
    /// Host path of the parking directory.
    pub parking_dir: String,
    /// Bound on each hold and on each wait for a component to come back.
    pub timeout: Duration,
    /// Minimum hold; `None` means the kubelet's fileCheckFrequency.
    pub min_hold: Option<Duration>,
    /// The daemon restarts each component at most this often in 24 h.
    pub max_per_day: u32,
}

/// Backup retention (pruned after a successful daemon cycle).
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// Keep at most this many sets (the newest).
    pub keep: usize,
    /// Delete sets older than this (the newest set is kept whatever its age).
    pub max_age: Duration,
}

/// `requireTimeSync`: whether to renew while the kernel says the clock is unsynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSync {
    /// Wait for sync up to [`TIME_SYNC_GRACE`] after boot, then go on with a warning.
    Auto,
    /// Never renew on an unsynchronised clock.
    Required,
    /// Do not ask the kernel.
    Off,
}

/// How long after boot `requireTimeSync: auto` waits for the clock to be synchronised.
pub const TIME_SYNC_GRACE: Duration = Duration::from_secs(600);

/// Validated settings, with defaults applied. Paths are host paths; see [`Settings::paths`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// certificatesDir
    pub certificates_dir: String,
    /// kubeconfigDir
    pub kubeconfig_dir: String,
    /// manifestsDir
    pub manifests_dir: String,
    /// kubeletConfig
    pub kubelet_config: String,
    /// kubeletPkiDir
    pub kubelet_pki_dir: String,
    /// stateDir
    pub state_dir: String,
    /// Renew when less than this is left.
    pub renew_before: Duration,
    /// Validity of renewed certificates.
    pub certificate_validity: Duration,
    /// Certificate names never to renew.
    pub exclude: Vec<String>,
    /// Time between full scans of the daemon.
    pub check_interval: Duration,
    /// Random splay added to each interval.
    pub jitter: Duration,
    /// Warn when a CA has less than this left.
    pub ca_warn_before: Duration,
    /// Validity of a CA that `ca rotate` makes (kubeadm's caCertificateValidityPeriod).
    pub ca_validity: Duration,
    /// Static-pod restarts.
    pub restart: RestartSettings,
    /// Desired kubelet `serverTLSBootstrap`; `None` leaves the file alone.
    pub kubelet_server_tls_bootstrap: Option<bool>,
    /// Revive an expired kubelet client certificate on a node holding ca.key.
    pub kubelet_revive_client_cert: bool,
    /// Host path of the node_exporter textfile; `None` when off.
    pub metrics_textfile: Option<String>,
    /// HA coordination (`coordination:`).
    pub coordination: crate::cluster::settings::Coordination,
    /// Backup retention.
    pub backups: BackupSettings,
    /// requireTimeSync
    pub require_time_sync: TimeSync,
    /// The kubelet serving CSR approver (`approver:`).
    pub approver: ApproverSettings,
    /// The algorithm of every new leaf key (`encryptionAlgorithm`, or the cluster's);
    /// `None`: each new key has its old key's algorithm (no ClusterConfiguration known).
    pub encryption_algorithm: Option<crate::node::cluster_config::EncryptionAlgorithm>,
    /// `certificateValidity` was set in the config file (it then wins over the cluster's).
    pub certificate_validity_explicit: bool,
    /// `certificatesDir` was set in the config file (it then wins over the cluster's).
    pub certificates_dir_explicit: bool,
    /// Where validity, key algorithm and certificates dir came from (issue 18).
    pub sources: Sources,
    /// `idlePageout`: after each cycle, page the daemon's own executable out
    /// (`daemon::memory::release_executable`).
    pub idle_pageout: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            certificates_dir: "/etc/kubernetes/pki".into(),
            kubeconfig_dir: "/etc/kubernetes".into(),
            manifests_dir: "/etc/kubernetes/manifests".into(),
            kubelet_config: "/var/lib/kubelet/config.yaml".into(),
            kubelet_pki_dir: "/var/lib/kubelet/pki".into(),
            state_dir: "/var/lib/kubeadm-certd".into(),
            renew_before: days(30),
            certificate_validity: days(365),
            exclude: Vec::new(),
            check_interval: Duration::from_secs(3600),
            jitter: Duration::from_secs(300),
            ca_warn_before: days(365),
            // kubeadm's CACertificateValidityPeriod: 87600h.
            ca_validity: days(3650),
            restart: RestartSettings {
                enabled: true,
                parking_dir: "/etc/kubernetes/tmp/kubeadm-certd-parked".into(),
                timeout: Duration::from_secs(300),
                min_hold: None,
                max_per_day: 3,
            },
            kubelet_server_tls_bootstrap: None,
            kubelet_revive_client_cert: true,
            metrics_textfile: Some(
                "/var/lib/node_exporter/textfile_collector/kubeadm_certd.prom".into(),
            ),
            coordination: Default::default(),
            backups: BackupSettings {
                keep: 10,
                max_age: days(400),
            },
            require_time_sync: TimeSync::Auto,
            approver: ApproverSettings::default(),
            encryption_algorithm: None,
            certificate_validity_explicit: false,
            certificates_dir_explicit: false,
            sources: Sources::default(),
            idle_pageout: true,
        }
    }
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

impl Settings {
    /// The longest a full restart pass can take: four components, each a hold and a wait.
    pub fn longest_restart(&self) -> Duration {
        self.restart.timeout * 8
    }

    /// Parse a config document.
    pub fn parse(text: &str) -> Result<Settings> {
        // An empty file (or one holding only comments) means all defaults.
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Ok(Settings::default());
        }
        crate::node::yamlguard::check_nesting(text).map_err(|e| anyhow::anyhow!(e))?;
        let f: Fragment = serde_yaml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        Settings::from_fragment(f)
    }

    /// Load settings: an explicit `--config` is taken as given and must exist; the default
    /// file is resolved under the root and may be absent (built-in defaults).
    pub fn load(root: &Root, explicit: Option<&Path>) -> Result<Settings> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (root.resolve(DEFAULT_CONFIG), false),
        };
        let text = match read_capped(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Settings::default())
            }
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
        };
        Settings::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// Every path of the node, resolved under `root`.
    pub fn paths(&self, root: &Root) -> NodePaths {
        NodePaths {
            root: root.clone(),
            pki: root.resolve(&self.certificates_dir),
            kubeconfigs: root.resolve(&self.kubeconfig_dir),
            manifests: root.resolve(&self.manifests_dir),
            kubelet_config: root.resolve(&self.kubelet_config),
            kubelet_pki: root.resolve(&self.kubelet_pki_dir),
            state: root.resolve(&self.state_dir),
            parking: root.resolve(&self.restart.parking_dir),
        }
    }
}

/// Read a UTF-8 text file of at most [`MAX_CONFIG_BYTES`].
fn read_capped(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    let buf = crate::node::fsread::read_regular(path, MAX_CONFIG_BYTES)?;
    String::from_utf8(buf).map_err(|_| Error::new(ErrorKind::InvalidData, "not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = Settings::parse("# nothing\n").unwrap();
        assert_eq!(s.renew_before, days(30));
        assert_eq!(s.certificate_validity, days(365));
        assert!(s.restart.enabled);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Settings::parse("renewBefor: 3d\n").unwrap_err();
        assert!(format!("{e:#}").contains("renewBefor"), "{e:#}");
        let e = Settings::parse("restart:\n  paused: true\n").unwrap_err();
        assert!(format!("{e:#}").contains("paused"), "{e:#}");
    }

    #[test]
    fn durations_must_be_positive() {
        for bad in ["0s", "-5d", "soon"] {
            let e = Settings::parse(&format!("renewBefore: {bad}\n")).unwrap_err();
            assert!(format!("{e:#}").contains("renewBefore"), "{e:#}");
        }
        let s = Settings::parse("renewBefore: 45d\ncertificateValidity: 2y\n").unwrap();
        assert_eq!(s.renew_before, days(45));
    }

    #[test]
    fn explicit_keys_are_known_as_such() {
        let s = Settings::parse("renewBefore: 20d\n").unwrap();
        assert!(!s.certificate_validity_explicit && !s.certificates_dir_explicit);
        assert_eq!(s.encryption_algorithm, None);
        let s = Settings::parse(
            "certificateValidity: 365d\ncertificatesDir: /etc/kubernetes/pki\nencryptionAlgorithm: ECDSA-P384\n",
        )
        .unwrap();
        assert!(s.certificate_validity_explicit && s.certificates_dir_explicit);
        assert_eq!(
            s.encryption_algorithm,
            Some(crate::node::cluster_config::EncryptionAlgorithm::EcdsaP384)
        );
        assert_eq!(
            s.sources.key.to_string(),
            "the config file (encryptionAlgorithm)"
        );
        let e = Settings::parse("encryptionAlgorithm: ecdsa\n").unwrap_err();
        assert!(
            format!("{e:#}").contains("encryptionAlgorithm: must be one of RSA-2048"),
            "{e:#}"
        );
        // The shipped file leaves the three unset, so that the cluster decides.
        let shipped = Settings::parse(include_str!("../../config.example.yaml")).unwrap();
        assert!(!shipped.certificate_validity_explicit && !shipped.certificates_dir_explicit);
        assert_eq!(shipped.encryption_algorithm, None);
    }

    #[test]
    fn exclude_names_must_be_known() {
        assert!(Settings::parse("exclude: [apiserver, admin.conf]\n").is_ok());
        let e = Settings::parse("exclude: [apiservr]\n").unwrap_err();
        assert!(format!("{e:#}").contains("apiservr"));
    }
}
