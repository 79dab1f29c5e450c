//! Reading kubeadm static pod manifests: only what certificate renewal needs
//! (the component, its command line, its host paths and its health probe).

use crate::node::NodePaths;
use std::collections::BTreeMap;

use serde::Deserialize;

/// What is wrong with a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not YAML/JSON, or not shaped like a Pod.
    #[error("not a valid pod manifest: {0}")]
    Parse(#[from] serde_yaml::Error),
    /// Refused before parsing (pathological nesting).
    #[error("{0}")]
    Guard(String),
    /// `metadata.name` is missing or empty.
    #[error("manifest has no metadata.name")]
    NoName,
    /// `spec.containers` is missing or empty.
    #[error("pod {pod:?} has no containers")]
    NoContainers {
        /// `metadata.name`.
        pod: String,
    },
    /// A probe names a port the container does not declare.
    #[error("pod {pod:?}: probe port {port:?} is not a named port of container {container:?}")]
    UnresolvedPort {
        /// `metadata.name`.
        pod: String,
        /// The container's name.
        container: String,
        /// The named port the probe refers to.
        port: String,
    },
    /// A numeric probe port outside 1..=65535.
    #[error("pod {pod:?}: probe port {port} is out of range")]
    PortOutOfRange {
        /// `metadata.name`.
        pod: String,
        /// The value found.
        port: i64,
    },
    /// `httpGet.scheme` other than HTTP or HTTPS.
    #[error("pod {pod:?}: unsupported probe scheme {scheme:?}")]
    BadScheme {
        /// `metadata.name`.
        pod: String,
        /// The value found.
        scheme: String,
    },
}

/// A static pod, reduced to what kubeadm-certd needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `metadata.name`, e.g. `kube-apiserver`.
    pub name: String,
    /// `metadata.labels.component`.
    pub component: Option<String>,
    /// First container: `command` followed by `args`.
    pub command: Vec<String>,
    /// Paths of all `hostPath` volumes.
    pub host_paths: Vec<String>,
    /// The probe that tells whether the component came up (see [`Manifest::probe_target`]).
    pub probe: Option<Probe>,
}

/// URL scheme of an HTTP probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (the kubelet's default).
    Http,
    /// HTTPS; like the kubelet, the certificate is not verified.
    Https,
}

/// An `httpGet` probe with its port resolved to a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// `httpGet.host`; `None` means the pod IP, which for host-network pods is the node.
    pub host: Option<String>,
    /// Resolved port.
    pub port: u16,
    /// Path including any query, e.g. `/health?serializable=false`.
    pub path: String,
}

impl Manifest {
    /// Whether the component reads `host_path`: as a flag value (`--x=<path>`),
    /// as a separate argument, or through a hostPath volume that is the path or a
    /// directory above it.
    pub fn uses_file(&self, host_path: &str) -> bool {
        let wanted = trim_slashes(host_path);
        if wanted.is_empty() {
            return false;
        }
        let in_args = self.command.iter().any(|arg| {
            let value = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with('-') => value,
                _ => arg.as_str(),
            };
            trim_slashes(value) == wanted
        });
        // A hostPath counts only when it is the file itself (kubeconfigs are mounted as single
        // files). A directory mount such as /etc/kubernetes/pki holds every certificate, so it
        // says nothing about which ones the component reads; its flags do.
        in_args || self.host_paths.iter().any(|p| trim_slashes(p) == wanted)
    }

    /// The probe to poll after a restart: the startupProbe if it is an httpGet,
    /// else the livenessProbe.
    pub fn probe_target(&self) -> Option<&Probe> {
        self.probe.as_ref()
    }
}

/// Trailing slashes do not change which file a path names.
fn trim_slashes(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() && p.starts_with('/') {
        ""
    } else {
        t
    }
}

/// Parses a static pod manifest (YAML, or JSON, which is YAML too).
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    if let Err(e) = crate::node::yamlguard::check_nesting(&String::from_utf8_lossy(bytes)) {
        return Err(ManifestError::Guard(e));
    }
    let pod: Pod = serde_yaml::from_slice(bytes)?;
    let name = pod
        .metadata
        .name
        .filter(|n| !n.is_empty())
        .ok_or(ManifestError::NoName)?;
    let container = pod
        .spec
        .containers
        .into_iter()
        .next()
        .ok_or_else(|| ManifestError::NoContainers { pod: name.clone() })?;

    let probe = [&container.startup_probe, &container.liveness_probe]
        .into_iter()
        .flatten()
        .find_map(|p| p.http_get.as_ref())
        .map(|get| resolve_probe(&name, &container, get))
        .transpose()?;

    let mut command = container.command.clone();
    command.extend(container.args.iter().cloned());
    let host_paths = pod
        .spec
        .volumes
        .into_iter()
        .filter_map(|v| v.host_path.map(|h| h.path))
        .collect();

    Ok(Manifest {
        component: pod.metadata.labels.get("component").cloned(),
        name,
        command,
        host_paths,
        probe,
    })
}

fn resolve_probe(pod: &str, c: &Container, get: &HttpGet) -> Result<Probe, ManifestError> {
    let scheme = match get.scheme.as_deref() {
        None | Some("") => Scheme::Http,
        Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
        Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
        Some(s) => {
            return Err(ManifestError::BadScheme {
                pod: pod.to_owned(),
                scheme: s.to_owned(),
            })
        }
    };
    let number = match &get.port {
        IntOrString::Int(n) => *n,
        // Older kubelets accepted a number stored as a string ("last ditch effort").
        IntOrString::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().unwrap_or(i64::MAX)
        }
        IntOrString::String(s) => c
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(s.as_str()))
            .map(|p| p.container_port)
            .ok_or_else(|| ManifestError::UnresolvedPort {
                pod: pod.to_owned(),
                container: c.name.clone().unwrap_or_default(),
                port: s.clone(),
            })?,
    };
    let port =
        u16::try_from(number)
            .ok()
            .filter(|p| *p != 0)
            .ok_or(ManifestError::PortOutOfRange {
                pod: pod.to_owned(),
                port: number,
            })?;
    let path = match get.path.as_deref() {
        None | Some("") => "/".to_owned(),
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) => format!("/{p}"),
    };
    Ok(Probe {
        scheme,
        host: get.host.clone().filter(|h| !h.is_empty()),
        port,
        path,
    })
}

// Light serde views of core/v1 Pod; unknown fields are ignored.

#[derive(Deserialize)]
struct Pod {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: PodSpec,
}

#[derive(Deserialize, Default)]
struct Metadata {
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct PodSpec {
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    volumes: Vec<Volume>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    name: Option<String>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    ports: Vec<ContainerPort>,
    startup_probe: Option<ProbeSpec>,
    liveness_probe: Option<ProbeSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerPort {
    name: Option<String>,
    container_port: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProbeSpec {
    http_get: Option<HttpGet>,
}

#[derive(Deserialize)]
struct HttpGet {
    host: Option<String>,
    path: Option<String>,
    port: IntOrString,
    scheme: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(i64),
    String(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Volume {
    host_path: Option<HostPath>,
}

#[derive(Deserialize)]
struct HostPath {
    path: String,
}

/// A component's manifest file and its parsed contents.
#[derive(Debug, Clone)]
pub struct Found {
    /// File name inside the manifests directory.
    pub file: String,
    /// Parsed manifest.
    pub manifest: Manifest,
}

/// Find a component's manifest: `<name>.yaml`, else any non-dot file whose pod is named so.
pub fn find_manifest(paths: &NodePaths, name: &str) -> anyhow::Result<Option<Found>> {
    let conventional = format!("{name}.yaml");
    let mut files = vec![conventional.clone()];
    if let Ok(rd) = std::fs::read_dir(&paths.manifests) {
        let mut others: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.') && *n != conventional)
            .collect();
        others.sort();
        files.extend(others);
    }
    for f in files {
        let p = paths.manifests.join(&f);
        let bytes = match crate::node::fsread::read_node_file(&paths.root, &p) {
            Ok(b) => b,
            Err(crate::node::fsread::ReadError::Missing) => continue,
            // The component's own file must be readable; others may be anything.
            Err(e) if f == conventional => anyhow::bail!("{}: {e}", paths.show(&p)),
            Err(_) => continue,
        };
        match parse_manifest(&bytes) {
            Ok(m) if m.name == name || m.component.as_deref() == Some(name) => {
                return Ok(Some(Found {
                    file: f,
                    manifest: m,
                }))
            }
            Ok(_) => {}
            Err(e) if f.ends_with(&conventional) => anyhow::bail!("{}: {e}", paths.show(&p)),
            Err(_) => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn manifest(command: &[&str], host_paths: &[&str]) -> Manifest {
        Manifest {
            name: "x".into(),
            component: None,
            command: command.iter().map(|s| s.to_string()).collect(),
            host_paths: host_paths.iter().map(|s| s.to_string()).collect(),
            probe: None,
        }
    }

    #[test]
    fn uses_file_matches_flags_args_and_single_file_mounts() {
        let m = manifest(
            &["etcd", "--cert-file=/a/b.crt", "--key", "/a/b.key"],
            &["/var/lib/etcd", "/etc/kubernetes/pki/"],
        );
        assert!(m.uses_file("/a/b.crt"));
        assert!(m.uses_file("/a/b.key"));
        // A directory mount does not say which files inside it are read.
        assert!(!m.uses_file("/etc/kubernetes/pki/etcd/ca.crt"));
        assert!(m.uses_file("/etc/kubernetes/pki"));
        assert!(!m.uses_file("/etc/kubernetes/pki2/x"));
        assert!(!m.uses_file("/a/b"));
        assert!(!m.uses_file("/var/lib"));
        assert!(!m.uses_file(""));
    }

    #[test]
    fn numeric_string_port_and_default_path() {
        let m = parse_manifest(
            br#"{"metadata":{"name":"p"},"spec":{"containers":[{"livenessProbe":{"httpGet":{"port":"8080"}}}]}}"#,
        )
        .unwrap();
        let p = m.probe_target().unwrap();
        assert_eq!(
            (p.port, p.path.as_str(), p.scheme),
            (8080, "/", Scheme::Http)
        );
    }

    #[test]
    fn exec_startup_probe_falls_back_to_liveness() {
        let m = parse_manifest(
            b"metadata: {name: p}\nspec:\n  containers:\n  - startupProbe: {exec: {command: [true]}}\n    livenessProbe: {httpGet: {port: 1, path: healthz, scheme: HTTPS}}\n",
        )
        .unwrap();
        let p = m.probe_target().unwrap();
        assert_eq!(
            (p.port, p.path.as_str(), p.scheme),
            (1, "/healthz", Scheme::Https)
        );
    }

    #[test]
    fn bad_port_and_scheme() {
        let e = parse_manifest(
            b"metadata: {name: p}\nspec: {containers: [{livenessProbe: {httpGet: {port: 70000}}}]}",
        )
        .unwrap_err();
        assert!(
            matches!(e, ManifestError::PortOutOfRange { port: 70000, .. }),
            "{e}"
        );
        let e = parse_manifest(b"metadata: {name: p}\nspec: {containers: [{livenessProbe: {httpGet: {port: 1, scheme: FTP}}}]}").unwrap_err();
        assert!(matches!(e, ManifestError::BadScheme { .. }), "{e}");
        let e = parse_manifest(b"spec: {containers: [{}]}").unwrap_err();
        assert!(matches!(e, ManifestError::NoName), "{e}");
    }
}
