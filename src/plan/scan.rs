//! Scan: read the node's certificates into a [`Scan`] without side effects.

use crate::node::fsread::{read_node_file, ReadError};
use crate::node::NodePaths;
use crate::pki::external::{load_ca, CaState};
use crate::pki::inspect::{self, CertInfo};
use crate::pki::material::{self, FileProblem, Loaded};
use crate::pki::table::{CaId, Handler, HANDLERS};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One handler's certificate: missing (`Ok(None)`), loaded, or unreadable.
#[derive(Debug)]
pub struct CertEntry {
    /// The handler.
    pub handler: &'static Handler,
    /// What was found.
    pub state: Result<Option<Loaded>, FileProblem>,
}

/// A kubelet certificate, which kubeadm-certd monitors but never renews.
#[derive(Debug)]
pub struct KubeletEntry {
    /// "kubelet-client" or "kubelet-serving".
    pub name: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Its leaf certificate.
    pub cert: Result<CertInfo, FileProblem>,
}

/// Everything read from the node.
#[derive(Debug)]
pub struct Scan {
    /// The root the node lives under (for host paths in messages).
    pub root: crate::node::paths::Root,
    /// Whether etcd is local (stacked): its PKI directory or manifest exists.
    pub local_etcd: bool,
    /// The CAs.
    pub cas: BTreeMap<CaId, Result<CaState, FileProblem>>,
    /// kubeadm's handlers, in name order (etcd ones only with local etcd).
    pub certs: Vec<CertEntry>,
    /// The kubelet's own certificates that exist.
    pub kubelet: Vec<KubeletEntry>,
}

impl Scan {
    /// The CA state for `id`, if it loaded.
    pub fn ca(&self, id: CaId) -> Option<&CaState> {
        self.cas.get(&id).and_then(|r| r.as_ref().ok())
    }

    /// The entry for a handler name.
    pub fn cert(&self, name: &str) -> Option<&CertEntry> {
        self.certs.iter().find(|c| c.handler.name == name)
    }

    /// Every problem found, for a one-line-per-file report.
    pub fn problems(&self) -> Vec<&FileProblem> {
        let mut out: Vec<&FileProblem> =
            self.cas.values().filter_map(|r| r.as_ref().err()).collect();
        out.extend(self.certs.iter().filter_map(|c| c.state.as_ref().err()));
        out.extend(self.kubelet.iter().filter_map(|k| k.cert.as_ref().err()));
        out
    }
}

/// Whether this node runs a local etcd.
pub fn local_etcd(paths: &NodePaths) -> bool {
    paths.pki.join("etcd").is_dir() || paths.manifests.join("etcd.yaml").exists()
}

/// Read the node.
pub fn scan(paths: &NodePaths) -> Scan {
    let local_etcd = local_etcd(paths);
    let mut cas = BTreeMap::new();
    for id in CaId::ALL {
        if id == CaId::EtcdCa && !local_etcd {
            continue;
        }
        cas.insert(id, load_ca(paths, id));
    }
    let certs = HANDLERS
        .iter()
        .filter(|h| local_etcd || !crate::pki::table::needs_local_etcd(h))
        .map(|h| CertEntry {
            handler: h,
            state: material::load(paths, h),
        })
        .collect();
    Scan {
        root: paths.root.clone(),
        local_etcd,
        cas,
        certs,
        kubelet: kubelet_certs(paths),
    }
}

/// The kubelet's client certificate and its serving certificate (the rotated one when
/// serverTLSBootstrap is on, else the self-signed kubelet.crt).
fn kubelet_certs(paths: &NodePaths) -> Vec<KubeletEntry> {
    let dir = &paths.kubelet_pki;
    let mut out = Vec::new();
    let client = dir.join("kubelet-client-current.pem");
    let rotated = dir.join("kubelet-server-current.pem");
    let serving = if crate::node::fsread::exists(&rotated) {
        rotated
    } else {
        dir.join("kubelet.crt")
    };
    for (name, path) in [("kubelet-client", client), ("kubelet-serving", serving)] {
        let cert = match read_node_file(&paths.root, &path) {
            Err(ReadError::Missing) => continue,
            Err(e) => Err(FileProblem::new(paths, &path, e)),
            Ok(b) => inspect::parse_combined(&b)
                .map(|(mut certs, _)| certs.remove(0))
                .map_err(|e| FileProblem::new(paths, &path, e)),
        };
        out.push(KubeletEntry { name, path, cert });
    }
    out
}
