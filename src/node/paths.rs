//! Every path of one node, resolved under a root directory.
//!
//! Host paths (in the config, in manifests, in kubeconfigs) are absolute; under `--root DIR`
//! they resolve below DIR, so a whole node can live in a temp dir.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

/// A root directory under which host paths resolve.
#[derive(Debug, Clone)]
pub struct Root(PathBuf, OnceLock<PathBuf>);

/// Two roots are equal when their directories are, whether or not either was canonicalised.
impl PartialEq for Root {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Root {}

impl Root {
    /// A root at `dir` (use `/` for the real host).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root(dir.into(), OnceLock::new())
    }

    /// The root with its symlinks resolved, computed once: every file read checks its real
    /// location against it.
    pub fn canonical(&self) -> std::io::Result<&Path> {
        if let Some(p) = self.1.get() {
            return Ok(p);
        }
        let real = self.0.canonicalize()?;
        Ok(self.1.get_or_init(|| real))
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

    /// Resolve every symlink in `path` (a path under the root) the way a process chrooted into
    /// the root would: an absolute link target starts again at the root, `..` stops at it. The
    /// result has no symlink below the root, so it can never lead outside it. The kubelet links
    /// `kubelet-client-current.pem` with an absolute target, which means the node's own file,
    /// not the host's. A missing component ends the resolution (the rest is taken literally).
    pub fn resolve_chroot(&self, path: &Path) -> std::io::Result<PathBuf> {
        use std::ffi::OsString;
        use std::io::{Error, ErrorKind};
        const MAX_LINKS: usize = 40; // Linux's MAXSYMLINKS
        let rel = path
            .strip_prefix(&self.0)
            .map_err(|_| Error::new(ErrorKind::InvalidInput, "path is not under the node root"))?;
        enum Part {
            Name(OsString),
            Up,
            Top,
        }
        let parts = |p: &Path| -> Vec<Part> {
            p.components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(Part::Name(n.to_os_string())),
                    Component::ParentDir => Some(Part::Up),
                    Component::RootDir => Some(Part::Top),
                    Component::CurDir | Component::Prefix(_) => None,
                })
                .collect()
        };
        let mut todo: std::collections::VecDeque<Part> = parts(rel).into();
        let mut out = self.0.clone();
        let mut links = 0;
        let mut missing = false;
        while let Some(part) = todo.pop_front() {
            match part {
                Part::Top => out = self.0.clone(),
                Part::Up => {
                    if out != self.0 {
                        out.pop();
                    }
                }
                Part::Name(n) => {
                    let next = out.join(&n);
                    let meta = if missing {
                        None
                    } else {
                        match std::fs::symlink_metadata(&next) {
                            Ok(m) => Some(m),
                            Err(e) if e.kind() == ErrorKind::NotFound => None,
                            Err(e) => return Err(e),
                        }
                    };
                    match meta {
                        Some(m) if m.file_type().is_symlink() => {
                            links += 1;
                            if links > MAX_LINKS {
                                return Err(Error::new(
                                    ErrorKind::InvalidData,
                                    "too many levels of symbolic links",
                                ));
                            }
                            let target = std::fs::read_link(&next)?;
                            for p in parts(&target).into_iter().rev() {
                                todo.push_front(p);
                            }
                        }
                        Some(_) => out = next,
                        None => {
                            missing = true;
                            out = next;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether the real location of `path` (following symlinks) stays under the root.
    /// Missing files are judged by their nearest existing ancestor.
    pub fn contains_real(&self, path: &Path) -> std::io::Result<bool> {
        let root = self.canonical()?;
        let mut probe = path.to_path_buf();
        loop {
            match probe.canonicalize() {
                Ok(real) => return Ok(real.starts_with(root)),
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
    /// The kubelet's kubeconfig, `<kubeconfigDir>/kubelet.conf`.
    pub fn kubelet_conf(&self) -> PathBuf {
        self.kubeconfigs.join("kubelet.conf")
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
    fn chroot_resolution_stays_under_the_root() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path().join("root"));
        let pki = root.resolve("/var/lib/kubelet/pki");
        std::fs::create_dir_all(&pki).unwrap();
        std::fs::write(pki.join("kubelet-client-2026-11-29-09-30-20.pem"), "x").unwrap();
        // The kubelet's absolute link means the node's file.
        symlink(
            "/var/lib/kubelet/pki/kubelet-client-2026-11-29-09-30-20.pem",
            pki.join("kubelet-client-current.pem"),
        )
        .unwrap();
        let want = pki.join("kubelet-client-2026-11-29-09-30-20.pem");
        let got = root
            .resolve_chroot(&pki.join("kubelet-client-current.pem"))
            .unwrap();
        assert_eq!(got, want);
        // Relative links and `..` past the root stay inside it.
        symlink(
            "../../../../../../var/lib/kubelet/pki/kubelet-client-2026-11-29-09-30-20.pem",
            pki.join("rel"),
        )
        .unwrap();
        assert_eq!(root.resolve_chroot(&pki.join("rel")).unwrap(), want);
        symlink("/etc/hostname", pki.join("host")).unwrap();
        assert_eq!(
            root.resolve_chroot(&pki.join("host")).unwrap(),
            root.resolve("/etc/hostname")
        );
        // A linked directory, then a loop.
        symlink("/var/lib/kubelet/pki", root.resolve("/pki")).unwrap();
        assert_eq!(
            root.resolve_chroot(&root.resolve("/pki/kubelet-client-current.pem"))
                .unwrap(),
            want
        );
        symlink("loop", pki.join("loop")).unwrap();
        assert!(root.resolve_chroot(&pki.join("loop")).is_err());
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
