//! Finding the etcd cluster as kubeadm does: the local etcd manifest's advertise-client-urls
//! annotation (or flag), else the kube-apiserver's `--etcd-servers`; the client identity is
//! the healthcheck-client certificate. Also what `auto` mode needs when etcd cannot be
//! reached: `--initial-cluster` and the member count last seen.

use super::settings::Coordination;
use crate::node::NodePaths;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The annotation kubeadm puts on the etcd static pod.
pub const ADVERTISE_ANNOTATION: &str = "kubeadm.kubernetes.io/etcd.advertise-client-urls";
const MAX_MANIFEST: u64 = 1 << 20;
/// Where the member count last seen is kept (under stateDir).
const LAST_SEEN: &str = "etcd-members.json";

/// The etcd client identity, as resolved paths (read afresh on every connect, so a renewed
/// healthcheck-client certificate is picked up).
#[derive(Debug, Clone)]
pub struct Identity {
    /// CA bundle.
    pub ca: PathBuf,
    /// Client certificate.
    pub cert: PathBuf,
    /// Client key.
    pub key: PathBuf,
}

/// PEM bytes of an identity.
pub struct IdentityPem {
    /// CA bundle.
    pub ca: Vec<u8>,
    /// Client certificate.
    pub cert: Vec<u8>,
    /// Client key.
    pub key: Vec<u8>,
}

impl Identity {
    /// kubeadm's etcd client identity, or the configured files (host paths under the root).
    pub fn resolve(paths: &NodePaths, c: &Coordination) -> Identity {
        let pick = |over: &Option<String>, default: &str| match over {
            Some(p) => paths.root.resolve(p),
            None => paths.pki.join(default),
        };
        Identity {
            ca: pick(&c.etcd.ca_file, "etcd/ca.crt"),
            cert: pick(&c.etcd.cert_file, "etcd/healthcheck-client.crt"),
            key: pick(&c.etcd.key_file, "etcd/healthcheck-client.key"),
        }
    }

    /// Read the three files.
    pub fn load(&self) -> Result<IdentityPem> {
        let read = |p: &Path| {
            crate::node::fsread::read_regular(p, MAX_MANIFEST)
                .with_context(|| format!("{}: cannot read the etcd client identity", p.display()))
        };
        Ok(IdentityPem {
            ca: read(&self.ca)?,
            cert: read(&self.cert)?,
            key: read(&self.key)?,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
struct Pod {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
}
#[derive(Debug, Default, Deserialize)]
struct Meta {
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}
#[derive(Debug, Default, Deserialize)]
struct Spec {
    #[serde(default)]
    containers: Vec<Container>,
}
#[derive(Debug, Default, Deserialize)]
struct Container {
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
}

/// What the local static pod manifests say about etcd.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalView {
    /// This node's own etcd client URLs (annotation or `--advertise-client-urls`).
    pub local_client_urls: Vec<String>,
    /// `--name` of the local member.
    pub local_name: Option<String>,
    /// Members named in `--initial-cluster`.
    pub initial_cluster: Vec<String>,
    /// The kube-apiserver's `--etcd-servers`.
    pub apiserver_etcd_servers: Vec<String>,
}

impl LocalView {
    /// Where to start: the local member, else the kube-apiserver's etcd servers.
    pub fn seeds(&self) -> Vec<String> {
        if self.local_client_urls.is_empty() {
            self.apiserver_etcd_servers.clone()
        } else {
            self.local_client_urls.clone()
        }
    }
}

/// Parse one manifest into (annotations, command line); `None` when it is absent.
fn read_pod(paths: &NodePaths, file: &str) -> Option<(BTreeMap<String, String>, Vec<String>)> {
    // A manifest parked for its restart is still this node's.
    for dir in [&paths.manifests, &paths.parking] {
        let Ok(bytes) = crate::node::fsread::read_regular(&dir.join(file), MAX_MANIFEST) else {
            continue;
        };
        if crate::node::yamlguard::check_nesting(&String::from_utf8_lossy(&bytes)).is_err() {
            return None;
        }
        let pod: Pod = serde_yaml::from_slice(&bytes).ok()?;
        let c = pod.spec.containers.into_iter().next().unwrap_or_default();
        let mut cmd = c.command;
        cmd.extend(c.args);
        return Some((pod.metadata.annotations, cmd));
    }
    None
}

/// The value of `--flag=v` or `--flag v`.
fn flag(cmd: &[String], name: &str) -> Option<String> {
    let eq = format!("--{name}=");
    let bare = format!("--{name}");
    let mut it = cmd.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix(&eq) {
            return Some(v.to_string());
        }
        if *a == bare {
            return it.next().cloned();
        }
    }
    None
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Read the local etcd and kube-apiserver manifests.
pub fn local_view(paths: &NodePaths) -> LocalView {
    let mut v = LocalView::default();
    if let Some((ann, cmd)) = read_pod(paths, "etcd.yaml") {
        v.local_client_urls = match ann.get(ADVERTISE_ANNOTATION) {
            Some(u) => list(u),
            None => flag(&cmd, "advertise-client-urls")
                .map(|u| list(&u))
                .unwrap_or_default(),
        };
        v.local_name = flag(&cmd, "name");
        v.initial_cluster = flag(&cmd, "initial-cluster")
            .map(|s| {
                list(&s)
                    .into_iter()
                    .filter_map(|kv| kv.split_once('=').map(|(n, _)| n.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        v.initial_cluster.sort();
        v.initial_cluster.dedup();
    }
    if let Some((_, cmd)) = read_pod(paths, "kube-apiserver.yaml") {
        v.apiserver_etcd_servers = flag(&cmd, "etcd-servers")
            .map(|u| list(&u))
            .unwrap_or_default();
    }
    v
}

/// The discovery starting points: configured endpoints, else the local manifests.
pub fn seeds(view: &LocalView, c: &Coordination) -> Vec<String> {
    if c.etcd.endpoints.is_empty() {
        view.seeds()
    } else {
        c.etcd.endpoints.clone()
    }
}

/// The members last seen, kept in stateDir: the voting count, then their client URLs.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Seen {
    voting: usize,
    client_urls: Vec<String>,
}

fn read_seen(paths: &NodePaths) -> Option<Seen> {
    let bytes =
        crate::node::fsread::read_regular(&paths.state.join(LAST_SEEN), MAX_MANIFEST).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The number of voting members last seen.
pub fn last_seen(paths: &NodePaths) -> Option<usize> {
    read_seen(paths).map(|s| s.voting)
}

/// The client URLs of the members last seen (more ways in when the local member is down).
pub fn last_seen_urls(paths: &NodePaths) -> Vec<String> {
    read_seen(paths).map(|s| s.client_urls).unwrap_or_default()
}

/// Record the members seen (best effort: only fallbacks read it).
pub fn record_seen(paths: &NodePaths, members: &[super::client::Member]) {
    let voting: Vec<_> = members.iter().filter(|m| !m.is_learner).collect();
    let seen = Seen {
        voting: voting.len(),
        client_urls: voting.iter().flat_map(|m| m.client_urls.clone()).collect(),
    };
    if read_seen(paths).as_ref() == Some(&seen) {
        return;
    }
    let Ok(text) = serde_json::to_vec(&seen) else {
        return;
    };
    let _ = std::fs::create_dir_all(&paths.state);
    let _ = crate::act::store::atomic::write_atomic(&paths.state.join(LAST_SEEN), &text, 0o644);
}

/// The control-plane Nodes the Kubernetes API last listed, kept in stateDir by the daemon's
/// API task: `kubeadm join --control-plane` adds a member to etcd but changes nothing on the
/// first node's disk, so this is how that node learns, without asking etcd, that it is no
/// longer alone.
const CONTROL_PLANES_SEEN: &str = "control-plane-nodes.json";

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct ControlPlanes {
    count: usize,
}

/// The number of control-plane Nodes the API last listed.
pub fn control_planes_seen(paths: &NodePaths) -> Option<usize> {
    let bytes =
        crate::node::fsread::read_regular(&paths.state.join(CONTROL_PLANES_SEEN), MAX_MANIFEST)
            .ok()?;
    serde_json::from_slice::<ControlPlanes>(&bytes)
        .ok()
        .map(|c| c.count)
}

/// Record the number of control-plane Nodes listed (only when it changed; best effort).
pub fn record_control_planes(paths: &NodePaths, count: usize) {
    if control_planes_seen(paths) == Some(count) {
        return;
    }
    let Ok(text) = serde_json::to_vec(&ControlPlanes { count }) else {
        return;
    };
    let _ = std::fs::create_dir_all(&paths.state);
    let _ = crate::act::store::atomic::write_atomic(
        &paths.state.join(CONTROL_PLANES_SEEN),
        &text,
        0o644,
    );
}

/// [`local_size`] from the node's files: the etcd members last seen, the manifests, and the
/// control-plane Nodes the API last listed (more than one means several members to come,
/// whatever the older files say).
pub fn local_size_of(paths: &NodePaths, view: &LocalView, c: &Coordination) -> LocalSize {
    if control_planes_seen(paths).is_some_and(|n| n > 1) {
        return LocalSize::Several;
    }
    local_size(view, last_seen(paths), c)
}

/// `auto` mode with etcd unreachable: coordinate when the manifest or the last count says
/// the cluster has more than one member.
pub fn auto_offline(view: &LocalView, last: Option<usize>) -> bool {
    view.initial_cluster.len() > 1 || last.unwrap_or(0) > 1
}

/// The cluster's size as the node's own files tell it, without asking etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalSize {
    /// One member: the last look at etcd saw one, or, never looked, the local etcd
    /// manifest's `--initial-cluster` names one and no other endpoint is configured.
    Single,
    /// More than one member by the last look, `--initial-cluster` or the configured
    /// endpoints.
    Several,
    /// Nothing local tells (an external etcd not looked at yet).
    Unknown,
}

/// What the local files say. The last member count seen wins over the manifest: kubeadm
/// never rewrites the first node's `--initial-cluster` (one member) when others join, nor a
/// joined node's when members leave. A node that gained members without looking at etcd
/// since still reads `Single` here: only a look at etcd can tell.
pub fn local_size(view: &LocalView, last: Option<usize>, c: &Coordination) -> LocalSize {
    match last {
        Some(n) if n > 1 => LocalSize::Several,
        Some(_) => LocalSize::Single,
        None if view.initial_cluster.len() > 1 || c.etcd.endpoints.len() > 1 => LocalSize::Several,
        None if !view.local_client_urls.is_empty() && c.etcd.endpoints.is_empty() => {
            LocalSize::Single
        }
        None if view.local_client_urls.is_empty() && view.apiserver_etcd_servers.len() > 1 => {
            LocalSize::Several
        }
        None => LocalSize::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_in_both_forms() {
        let cmd: Vec<String> = ["etcd", "--name=a", "--initial-cluster", "a=x,b=y"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(flag(&cmd, "name").as_deref(), Some("a"));
        assert_eq!(flag(&cmd, "initial-cluster").as_deref(), Some("a=x,b=y"));
        assert_eq!(flag(&cmd, "nam"), None);
    }

    #[test]
    fn control_plane_nodes_listed_by_the_api_mean_several() {
        let t = tempfile::tempdir().unwrap();
        let paths =
            crate::config::Settings::default().paths(&crate::node::paths::Root::new(t.path()));
        let single = LocalView {
            initial_cluster: vec!["cp1".into()],
            local_client_urls: vec!["https://127.0.0.1:2379".into()],
            ..LocalView::default()
        };
        let c = Coordination::default();
        assert_eq!(local_size_of(&paths, &single, &c), LocalSize::Single);
        record_control_planes(&paths, 1);
        assert_eq!(local_size_of(&paths, &single, &c), LocalSize::Single);
        record_control_planes(&paths, 3);
        assert_eq!(control_planes_seen(&paths), Some(3));
        assert_eq!(local_size_of(&paths, &single, &c), LocalSize::Several);
    }

    #[test]
    fn local_size_prefers_the_last_look_then_the_manifest() {
        let c = Coordination::default();
        let single = LocalView {
            local_client_urls: vec!["https://10.0.0.1:2379".into()],
            initial_cluster: vec!["cp1".into()],
            ..LocalView::default()
        };
        assert_eq!(local_size(&single, None, &c), LocalSize::Single);
        // The first node of a cluster that grew: only a look at etcd tells.
        assert_eq!(local_size(&single, Some(3), &c), LocalSize::Several);
        let joined = LocalView {
            initial_cluster: vec!["cp1".into(), "cp2".into(), "cp3".into()],
            ..single.clone()
        };
        assert_eq!(local_size(&joined, None, &c), LocalSize::Several);
        // Members left since the join: the last look wins over --initial-cluster.
        assert_eq!(local_size(&joined, Some(1), &c), LocalSize::Single);
        // External etcd: one endpoint tells nothing, several do.
        let external = LocalView {
            apiserver_etcd_servers: vec!["https://10.0.0.9:2379".into()],
            ..LocalView::default()
        };
        assert_eq!(local_size(&external, None, &c), LocalSize::Unknown);
        let mut three = external.clone();
        three
            .apiserver_etcd_servers
            .push("https://10.0.0.8:2379".into());
        assert_eq!(local_size(&three, None, &c), LocalSize::Several);
        let mut configured = c.clone();
        configured.etcd.endpoints = vec!["https://10.0.0.9:2379".into()];
        assert_eq!(
            local_size(&single, None, &configured),
            LocalSize::Unknown,
            "a configured endpoint is not the local member"
        );
    }

    #[test]
    fn offline_decision() {
        let mut v = LocalView::default();
        assert!(!auto_offline(&v, None));
        assert!(!auto_offline(&v, Some(1)));
        assert!(auto_offline(&v, Some(3)));
        v.initial_cluster = vec!["a".into(), "b".into()];
        assert!(auto_offline(&v, None));
    }
}
