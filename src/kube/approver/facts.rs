//! What the rules need besides the CSR, gathered per decision pass: the Nodes, the API
//! server's names (apiserver.crt's SANs on disk, the `kubernetes` Service ClusterIP, the
//! controlPlaneEndpoint), and this host's own view for attestation.

use crate::kube::client::Kube;
use crate::kube::views::node_view;
use crate::kube::KubeError;
use crate::node::NodePaths;
use crate::plan::approve::{api_server_names, ApiServerNames, HostView, NodeView, Policy};
use std::net::IpAddr;
use std::sync::Arc;

/// This host's attested view (interfaces, hostname), refreshed at every pass because
/// addresses change; `None` when the node's own name is unknown.
pub type HostFn = Arc<dyn Fn() -> Option<HostView> + Send + Sync>;

/// Everything the approver and `csr list|approve` need to decide.
#[derive(Clone)]
pub struct Env {
    /// The node (apiserver.crt is read from its PKI directory).
    pub paths: NodePaths,
    /// approver.ipPrefixes and dnsPattern.
    pub policy: Policy,
    /// approver.deny: deny instead of leaving pending.
    pub deny: bool,
    /// This host's view.
    pub host: HostFn,
    /// This node's name (named in the messages written on CSRs).
    pub node: Option<String>,
    /// The clock (conditions are stamped with it).
    pub now: fn() -> time::OffsetDateTime,
}

/// One pass's facts.
pub struct Facts {
    /// Every Node.
    pub nodes: Vec<NodeView>,
    /// The API server's names and addresses.
    pub api: ApiServerNames,
    /// This host, attested.
    pub host: Option<HostView>,
}

/// Gather the facts: two API reads (Nodes, the Service) and one kubeadm-config read for the
/// controlPlaneEndpoint (absent or unreadable: the kubeconfig's server stands in for it).
pub async fn gather(kube: &Kube, env: &Env) -> Result<Facts, KubeError> {
    let nodes = kube.nodes().await?.iter().map(node_view).collect();
    let service_ips = match kube.kubernetes_service_ips().await {
        Ok(ips) => ips,
        Err(e) if e.not_found() => Vec::new(),
        Err(e) => return Err(e),
    };
    // kubeadm-config's controlPlaneEndpoint; without one, the kubeconfig's server (the
    // endpoint when one is set, else this node's advertise address).
    let endpoint = match control_plane_endpoint(kube).await {
        Ok(Some(e)) => e,
        Ok(None) => kube.url().to_string(),
        Err(e) if e.transient() => return Err(e),
        Err(_) => kube.url().to_string(),
    };
    let (dns, ips) = apiserver_sans(&env.paths);
    let api = api_server_names(&ips, &dns, &service_ips, Some(&endpoint));
    Ok(Facts {
        nodes,
        api,
        host: (env.host)(),
    })
}

/// The DNS and IP SANs of this node's apiserver.crt (none when it cannot be read: a
/// control-plane node without it has bigger problems, and the Service IP and endpoint still
/// count).
fn apiserver_sans(paths: &NodePaths) -> (Vec<String>, Vec<IpAddr>) {
    let file = paths.pki.join("apiserver.crt");
    crate::node::fsread::read_node_file(&paths.root, &file)
        .ok()
        .and_then(|b| crate::pki::inspect::parse_cert_file(&b).ok())
        .and_then(|c| c.into_iter().next())
        .map(|c| (c.dns, c.ips))
        .unwrap_or_default()
}

/// The controlPlaneEndpoint's host from kube-system/kubeadm-config's ClusterConfiguration.
async fn control_plane_endpoint(kube: &Kube) -> Result<Option<String>, KubeError> {
    let cm = kube.configmap("kube-system", "kubeadm-config").await?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get("ClusterConfiguration"))
        .cloned()
        .unwrap_or_default();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or(serde_yaml::Value::Null);
    Ok(doc
        .get("controlPlaneEndpoint")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned))
}
