//! Every path of one node, resolved under a root directory.
//!
//! Host paths (in the config, in manifests, in kubeconfigs) are absolute; under `--root DIR`
//! they resolve below DIR, so a whole node can live in a temp dir.

use std::path::{Component, Path, PathBuf};

/// A root directory under which host paths resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    /// A root at `dir` (use `/` for the real host).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root(dir.into())
    }

    /// The root directory itself.
    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// Resolve a host path under the root. Relative paths are taken as relative to `/`.
    /// `..` components are dropped so a path can never climb above the root lexically.
    pub fn resolve(&self, host: impl AsRef<Path>) -> PathBuf {
        let mut out = self.0.clone();
        for c in host.as_ref().components() {
            match c {
                Component::Normal(p) => out.push(p),
                Component::ParentDir => {
                    if out != self.0 {
                        out.pop();
                    }
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        out
    }

    /// The host path for a path under the root (the inverse of `resolve`), for messages
    /// and for paths written into files.
    pub fn host_path(&self, resolved: &Path) -> PathBuf {
        match resolved.strip_prefix(&self.0) {
            Ok(rel) => Path::new("/").join(rel),
            Err(_) => resolved.to_path_buf(),
        }
    }

    /// Whether the real location of `path` (following symlinks) stays under the root.
    /// Missing files are judged by their nearest existing ancestor.
    pub fn contains_real(&self, path: &Path) -> std::io::Result<bool> {
        let root = self.0.canonicalize()?;
        let mut probe = path.to_path_buf();
        loop {
            match probe.canonicalize() {
                Ok(real) => return Ok(real.starts_with(&root)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !probe.pop() {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The directories of one node, resolved under its root.
#[derive(Debug, Clone)]
pub struct NodePaths {
    /// The root everything resolves under.
    pub root: Root,
    /// /etc/kubernetes/pki
    pub pki: PathBuf,
    /// /etc/kubernetes
    pub kubeconfigs: PathBuf,
    /// /etc/kubernetes/manifests
    pub manifests: PathBuf,
    /// /var/lib/kubelet/config.yaml
    pub kubelet_config: PathBuf,
    /// /var/lib/kubelet/pki
    pub kubelet_pki: PathBuf,
    /// /var/lib/kubeadm-certd
    pub state: PathBuf,
    /// /etc/kubernetes/tmp/kubeadm-certd-parked
    pub parking: PathBuf,
}

impl NodePaths {
    /// Where a node file is kept inside a backup directory.
    pub fn backup_path(&self, dir: &Path, file: &Path) -> PathBuf {
        let host = self.root.host_path(file);
        dir.join(host.strip_prefix("/").unwrap_or(&host))
    }
    /// The lock file that keeps two runs apart.
    pub fn lock_file(&self) -> PathBuf {
        self.state.join("lock")
    }
    /// Where old material is copied before every change.
    pub fn backups(&self) -> PathBuf {
        self.state.join("backups")
    }
    /// The commit journal of an in-flight renewal.
    pub fn journal(&self) -> PathBuf {
        self.state.join("journal.json")
    }
    /// Display a resolved path as the host path it stands for.
    pub fn show(&self, p: &Path) -> String {
        self.root.host_path(p).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_under_root_and_back() {
        let r = Root::new("/tmp/node");
        let p = r.resolve("/etc/kubernetes/pki");
        assert_eq!(p, PathBuf::from("/tmp/node/etc/kubernetes/pki"));
        assert_eq!(r.host_path(&p), PathBuf::from("/etc/kubernetes/pki"));
        assert_eq!(Root::new("/").resolve("/etc/x"), PathBuf::from("/etc/x"));
    }

    #[test]
    fn parent_dirs_cannot_escape() {
        let r = Root::new("/tmp/node");
        assert_eq!(
            r.resolve("/../../etc/passwd"),
            PathBuf::from("/tmp/node/etc/passwd")
        );
    }

    #[test]
    fn symlink_outside_root_is_detected() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path().join("root"));
        std::fs::create_dir_all(root.resolve("/etc")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.resolve("/etc/evil")).unwrap();
        assert!(!root.contains_real(&root.resolve("/etc/evil")).unwrap());
        assert!(root.contains_real(&root.resolve("/etc/missing")).unwrap());
    }
}
