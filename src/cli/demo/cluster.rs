//! The cluster side of `demo`: the test kit's stand-in kube-apiserver (written from the API's
//! rules; no kube-apiserver can run here) on a loopback port, with the demo node's admin.conf
//! pointed at it. It holds what a kubeadm cluster would: the Nodes cp1 (this node, 127.0.0.1)
//! and w1 (a worker, 127.0.0.2), and the kubelet-config ConfigMap with this node's kubelet
//! config. Once serverTLSBootstrap is on, cp1's kubelet asks for its serving certificate, and
//! a misbehaving w1 asks for one naming cp1's address; the daemon approves the first and
//! leaves the second pending, saying why.

use crate::pki::inspect::KeyAlg;
use crate::testkit::apiserver::{kubelet_serving_csr, ApiServer, CsrSpec, Options};
use anyhow::{Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// The running stand-in; dropping it stops it.
pub struct DemoCluster {
    api: ApiServer,
}

/// A CSR name as the kubelet makes it (`generateName: csr-`).
fn csr_name() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let tail: String = (0..5)
        .map(|_| char::from(b"bcdfghjklmnpqrstvwxz2456789"[rng.random_range(0..27)]))
        .collect();
    format!("csr-{tail}")
}

impl DemoCluster {
    /// Start it for the node at `root` (its cluster CA) and point admin.conf at it.
    pub fn start(root: &Path) -> Result<DemoCluster> {
        let api = ApiServer::start(Options::for_node(root)?)?;
        api.point_kubeconfig(&root.join("etc/kubernetes/admin.conf"))?;
        api.add_node("cp1", &[("InternalIP", "127.0.0.1"), ("Hostname", "cp1")]);
        api.add_node("w1", &[("InternalIP", "127.0.0.2"), ("Hostname", "w1")]);
        let kubelet = std::fs::read_to_string(root.join("var/lib/kubelet/config.yaml"))
            .context("reading the demo node's kubelet config")?;
        api.put_configmap("kube-system", "kubelet-config", &[("kubelet", &kubelet)]);
        // The demo node's manifests are kubeadm v1.31's.
        api.put_kubeadm_config("v1.31.0");
        Ok(DemoCluster { api })
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        self.api.url()
    }

    /// The kubelets ask for serving certificates: cp1 for its own name and address (as the
    /// kubelet does, from its Node's addresses, ECDSA), w1 for cp1's address. Their names.
    pub fn kubelets_ask(&self) -> Result<(String, String)> {
        let ask = |node: &str, dns: &str, ip: &str| -> Result<String> {
            let cn = format!("system:node:{node}");
            let pem = kubelet_serving_csr(&cn, &["system:nodes"], &[dns], &[ip], KeyAlg::EcP256)?;
            let name = csr_name();
            self.api
                .create_csr(&name, CsrSpec::kubelet_serving(node, pem));
            Ok(name)
        };
        Ok((
            ask("cp1", "cp1", "127.0.0.1")?,
            ask("w1", "w1", "127.0.0.1")?,
        ))
    }

    /// Wait up to `limit` until CSR `name` carries a condition.
    pub fn wait_decided(&self, name: &str, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            let decided = self
                .api
                .csr(name)
                .and_then(|c| c.pointer("/status/conditions").cloned())
                .and_then(|c| c.as_array().map(|a| !a.is_empty()))
                .unwrap_or(false);
            if decided {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}
