//! Which kubeadm release the node follows, so that `check-expiration` prints as that release
//! does (issue 18, item 3). In order:
//!
//! 1. the cached ClusterConfiguration's `kubernetesVersion` (`<stateDir>/cluster-config.json`,
//!    kept by `act::cluster_config`; `check-expiration` asks the live copy first);
//! 2. the kube-apiserver manifest's image tag (`registry.k8s.io/kube-apiserver:v1.31.2`);
//! 3. `kubeadm version -o short`, when a kubeadm binary is under the root's `/usr/bin` or
//!    `/usr/local/bin`, bounded by a timeout.
//!
//! A source that cannot be used is skipped (said at debug level): the table must still print.

use crate::node::version::KubeVersion;
use crate::node::NodePaths;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `kubeadm version` may take (it reads nothing from the cluster).
pub const BINARY_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest `kubeadm version -o short` output read (`v1.31.2\n`).
const MAX_OUTPUT: u64 = 4096;

/// The version found and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The release.
    pub version: KubeVersion,
    /// Where it was read, for logs: `cached ClusterConfiguration (read at ...)`,
    /// `/etc/kubernetes/manifests/kube-apiserver.yaml`, `/usr/bin/kubeadm version`.
    pub source: String,
}

/// Detect the node's kubeadm release (see the module doc); `None` when no source says.
pub fn detect(paths: &NodePaths, timeout: Duration) -> Option<Detected> {
    match crate::node::cluster_config::read(paths) {
        Ok(Some(c)) => {
            let v = c.kubernetes_version.as_deref().and_then(KubeVersion::parse);
            if let Some(version) = v {
                return Some(Detected {
                    version,
                    source: format!("cached ClusterConfiguration (read at {})", c.read_at),
                });
            }
            tracing::debug!("the cached ClusterConfiguration names no kubernetesVersion");
        }
        Ok(None) => {}
        Err(e) => tracing::debug!("kubeadm version from the cached ClusterConfiguration: {e}"),
    }
    match crate::node::version::apiserver_image(paths) {
        Ok(Some((source, version))) => return Some(Detected { version, source }),
        Ok(None) => {}
        Err(e) => tracing::debug!("kubeadm version from the kube-apiserver manifest: {e}"),
    }
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let bin = paths.root.resolve(Path::new(dir).join("kubeadm"));
        if !bin.is_file() {
            continue;
        }
        let source = format!("{} version", paths.show(&bin));
        match binary_version(&bin, timeout) {
            Ok(version) => return Some(Detected { version, source }),
            Err(e) => tracing::debug!("{source}: {e}"),
        }
    }
    None
}

/// Run `<bin> version -o short` and parse what it prints, killing it after `timeout`.
fn binary_version(bin: &Path, timeout: Duration) -> Result<KubeVersion, String> {
    let mut child = Command::new(bin)
        .args(["version", "-o", "short"])
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    // Read on a thread and wait for it only until the deadline: a child (or something it
    // started) that keeps the pipe open must not hold up check-expiration.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.take(MAX_OUTPUT).read_to_string(&mut s);
            let _ = tx.send(s);
        });
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not finish within {}",
                    humantime::format_duration(timeout)
                ));
            }
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
    };
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let out = rx
        .recv_timeout(left.max(Duration::from_millis(100)))
        .map_err(|_| "its output did not end".to_string())?;
    KubeVersion::parse(&out).ok_or_else(|| format!("printed '{}', not a version", out.trim()))
}
