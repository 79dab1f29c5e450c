//! Scan: read the node's certificates into a [`Scan`] without side effects.

use crate::node::fsread::{read_node_file_chroot, resolve_in_root, ReadError};
use crate::node::NodePaths;
use crate::pki::external::{load_ca, CaState};
use crate::pki::inspect::{self, CertInfo};
use crate::pki::material::{self, FileProblem, Loaded};
use crate::pki::table::{CaId, Handler, Location, HANDLERS};
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
    /// The file its symlinks lead to (below the root), when it could be read.
    pub file: Option<PathBuf>,
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
    let handlers: Vec<&'static Handler> = HANDLERS
        .iter()
        .filter(|h| local_etcd || !crate::pki::table::needs_local_etcd(h))
        .collect();
    let (certs, kubelet) = load_all(paths, &handlers);
    Scan {
        root: paths.root.clone(),
        local_etcd,
        cas,
        certs,
        kubelet,
    }
}

/// Load every handler's material and the kubelet's certificates. The kubeconfigs (YAML
/// around kilobytes of base64, about half of a scan) are read on a second thread while this
/// one reads the PKI files; a scan runs on every check-expiration and every daemon cycle. If
/// no thread can be started, everything is read here.
fn load_all(
    paths: &NodePaths,
    handlers: &[&'static Handler],
) -> (Vec<CertEntry>, Vec<KubeletEntry>) {
    let load = |h: &&'static Handler| CertEntry {
        handler: h,
        state: material::load(paths, h),
    };
    let (kubeconfigs, files): (Vec<_>, Vec<_>) = handlers
        .iter()
        .partition(|h| matches!(h.location, Location::Kubeconfig(_)));
    let (mut certs, kubelet) = std::thread::scope(|s| {
        let other = std::thread::Builder::new()
            .name("scan".into())
            .spawn_scoped(s, || kubeconfigs.iter().map(load).collect::<Vec<_>>())
            .ok();
        let mut certs: Vec<CertEntry> = files.iter().map(load).collect();
        let kubelet = kubelet_certs(paths);
        match other.map(|t| t.join()) {
            Some(Ok(kc)) => certs.extend(kc),
            // A panic in the thread is re-raised here, as it would have been inline.
            Some(Err(p)) => std::panic::resume_unwind(p),
            None => certs.extend(kubeconfigs.iter().map(load)),
        }
        (certs, kubelet)
    });
    // kubeadm's name order, as the handlers are listed.
    certs.sort_by_key(|c| handlers.iter().position(|h| std::ptr::eq(*h, c.handler)));
    (certs, kubelet)
}

/// The kubelet's client certificate and its serving certificate (the rotated one when
/// serverTLSBootstrap is on, else the self-signed kubelet.crt). Links resolve below the root
/// (the kubelet's links are absolute); a file that exists but cannot be read is an entry with
/// the reason, never left out.
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
        if !crate::node::fsread::exists(&path) {
            continue;
        }
        let (file, cert) = match read_node_file_chroot(&paths.root, &path) {
            Err(ReadError::Missing) => {
                let to = resolve_in_root(&paths.root, &path)
                    .map(|p| paths.show(&p))
                    .unwrap_or_default();
                let why = format!("symlink to {to}, which does not exist under the node root");
                (None, Err(FileProblem::new(paths, &path, why)))
            }
            Err(e) => (None, Err(FileProblem::new(paths, &path, e))),
            Ok((file, b)) => (
                Some(file),
                inspect::parse_combined(&b)
                    .map(|(mut certs, _)| certs.remove(0))
                    .map_err(|e| FileProblem::new(paths, &path, e)),
            ),
        };
        out.push(KubeletEntry {
            name,
            path,
            file,
            cert,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::nodebuilder::{build, NodeSpec};

    #[test]
    fn certificates_come_back_in_the_handlers_order_with_kubeconfigs_read_aside() {
        let d = tempfile::tempdir().unwrap();
        let mut spec = NodeSpec::new(time::OffsetDateTime::now_utc());
        spec.key = crate::pki::inspect::KeyAlg::EcP256;
        build(d.path(), &spec).unwrap();
        let paths =
            crate::config::Settings::default().paths(&crate::node::paths::Root::new(d.path()));
        let s = scan(&paths);
        let want: Vec<&str> = HANDLERS.iter().map(|h| h.name).collect();
        let got: Vec<&str> = s.certs.iter().map(|c| c.handler.name).collect();
        assert_eq!(got, want);
        assert!(
            s.certs.iter().all(|c| matches!(c.state, Ok(Some(_)))),
            "{:?}",
            s.problems()
        );
        assert!(s.kubelet.iter().any(|k| k.name == "kubelet-client"));
    }
}
