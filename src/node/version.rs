//! Which Kubernetes release a node runs, as far as its files say (issue 18, item 3): the
//! version type, and the kube-apiserver manifest's image tag
//! (`registry.k8s.io/kube-apiserver:v1.31.2`). The cached ClusterConfiguration is read by
//! [`super::cluster_config`]; running `kubeadm version` is a side effect and lives in
//! `act::kubeadm_version`, which also decides the order.

use crate::node::fsread::{read_node_file, ReadError};
use crate::node::NodePaths;
use serde::Deserialize;
use std::fmt;

/// A Kubernetes release, `vMAJOR.MINOR.PATCH`; pre-release and build suffixes are dropped
/// (a v1.31.0-rc.1 kubeadm prints as v1.31 does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    /// 1
    pub major: u32,
    /// 31 in v1.31.2
    pub minor: u32,
    /// 2 in v1.31.2
    pub patch: u32,
}

impl KubeVersion {
    /// `v1.31.2`, `1.31.2`, `v1.31` (patch 0), `v1.31.2-rc.0`, `v1.31.2+build`; `None` for
    /// anything else (`latest`, `stable-1`, a digest).
    pub fn parse(s: &str) -> Option<KubeVersion> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let core = s.split(['-', '+', '_']).next()?;
        let mut parts = core.split('.');
        let num = |p: Option<&str>| -> Option<u32> {
            let p = p?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let major = num(parts.next())?;
        let minor = num(parts.next())?;
        let patch = match parts.next() {
            None => 0,
            p => num(p)?,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(KubeVersion {
            major,
            minor,
            patch,
        })
    }

    /// v`major`.`minor`.`patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> KubeVersion {
        KubeVersion {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The version in an image reference's tag: `registry.k8s.io/kube-apiserver:v1.31.2`,
/// `host:5000/kube-apiserver:v1.31.2@sha256:...`. `None` without a tag or with a tag that is
/// not a version.
pub fn from_image(image: &str) -> Option<KubeVersion> {
    let name = image.split('@').next()?;
    // The tag follows the last ':' after the last '/' (a registry port comes before it).
    let last = name.rsplit('/').next()?;
    let (_, tag) = last.rsplit_once(':')?;
    KubeVersion::parse(tag)
}

#[derive(Deserialize)]
struct Pod {
    spec: Spec,
}

#[derive(Deserialize)]
struct Spec {
    #[serde(default)]
    containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default)]
    image: Option<String>,
}

/// The kube-apiserver manifest (`<manifests>/kube-apiserver.yaml`) and the version of its
/// first container's image tag. `Ok(None)` when there is no such manifest (a worker) or its
/// image has no version tag; `Err` with the reason when it cannot be read or parsed.
pub fn apiserver_image(paths: &NodePaths) -> Result<Option<(String, KubeVersion)>, String> {
    let file = paths.manifests.join("kube-apiserver.yaml");
    let host = paths.show(&file);
    let bytes = match read_node_file(&paths.root, &file) {
        Ok(b) => b,
        Err(ReadError::Missing) => return Ok(None),
        Err(e) => return Err(format!("{host}: {e}")),
    };
    let text = String::from_utf8_lossy(&bytes);
    crate::node::yamlguard::check_nesting(&text).map_err(|e| format!("{host}: {e}"))?;
    let pod: Pod = serde_yaml::from_str(&text).map_err(|e| format!("{host}: {e}"))?;
    let image = pod.spec.containers.into_iter().next().and_then(|c| c.image);
    Ok(image.and_then(|i| from_image(&i).map(|v| (host, v))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_image_tags() {
        let v = |a, b, c| Some(KubeVersion::new(a, b, c));
        assert_eq!(KubeVersion::parse("v1.31.2"), v(1, 31, 2));
        assert_eq!(KubeVersion::parse("1.29.0\n"), v(1, 29, 0));
        assert_eq!(KubeVersion::parse("v1.33"), v(1, 33, 0));
        assert_eq!(KubeVersion::parse("v1.34.0-rc.1"), v(1, 34, 0));
        assert_eq!(KubeVersion::parse("v1.30.14+k3s1"), v(1, 30, 14));
        for bad in [
            "", "latest", "stable-1", "v1", "v1.x.2", "v1.2.3.4", "v-1.2",
        ] {
            assert_eq!(KubeVersion::parse(bad), None, "{bad}");
        }
        assert_eq!(
            from_image("registry.k8s.io/kube-apiserver:v1.31.2"),
            v(1, 31, 2)
        );
        assert_eq!(
            from_image("reg.local:5000/k8s/kube-apiserver:v1.28.15@sha256:00ff"),
            v(1, 28, 15)
        );
        assert_eq!(from_image("reg.local:5000/kube-apiserver"), None);
        assert_eq!(from_image("kube-apiserver@sha256:00ff"), None);
        assert!(KubeVersion::new(1, 23, 1) > KubeVersion::new(1, 23, 0));
        assert!(KubeVersion::new(1, 100, 0) > KubeVersion::new(1, 31, 9));
        assert_eq!(KubeVersion::new(1, 31, 2).to_string(), "v1.31.2");
    }
}
