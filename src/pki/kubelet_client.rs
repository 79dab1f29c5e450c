//! A kubelet client certificate issued in memory with the cluster CA, as the
//! controller-manager's `kubernetes.io/kube-apiserver-client-kubelet` signer would issue the
//! kubelet's own CSR: a new ECDSA P-256 key, O=system:nodes, CN=system:node:NAME, clientAuth,
//! digitalSignature. Also the kubelet.conf for another node (`kubelet-client kubeconfig`).

use crate::pki::inspect::{CertInfo, KeyAlg};
use crate::pki::issue::IssueError;
use crate::pki::keys::{self, KeyFormat};
use base64::Engine;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_yaml::Value;
use std::time::Duration;
use time::OffsetDateTime;

/// `O=` of every node's client certificate.
pub const NODES_ORG: &str = "system:nodes";

/// A freshly issued, verified client pair for one node.
#[derive(Debug)]
pub struct NodeClient {
    /// The node's user name, `system:node:NAME`.
    pub user: String,
    /// Certificate PEM.
    pub cert_pem: String,
    /// Key PEM (SEC1 `EC PRIVATE KEY`, as the kubelet writes it).
    pub key_pem: String,
    /// Parsed view of the certificate.
    pub info: CertInfo,
    /// Whether NotAfter was clamped to the CA's.
    pub clamped: bool,
}

impl NodeClient {
    /// Certificate then key, the kubelet's store format.
    pub fn combined_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }
}

/// Issue a client pair for node `name`, valid from now − 5 min for `validity` (clamped to the
/// CA's NotAfter), and verify it before anyone writes it.
pub fn issue(
    name: &str,
    ca: &CertInfo,
    ca_key: &KeyPair,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<NodeClient, IssueError> {
    if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/') {
        return Err(IssueError::Profile(format!(
            "{name:?} is not a valid node name"
        )));
    }
    let user = format!("system:node:{name}");
    let key = keys::generate(KeyAlg::EcP256).map_err(|e| IssueError::Sign(e.to_string()))?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, NODES_ORG);
    dn.push(DnType::CommonName, user.as_str());
    p.distinguished_name = dn;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let clamped = crate::pki::issue::leaf_basics(&mut p, ca, now, validity);
    let issuer = Issuer::from_ca_cert_der(&ca.der.clone().into(), ca_key)
        .map_err(|e| IssueError::Sign(e.to_string()))?;
    let cert = p
        .signed_by(&key, &issuer)
        .map_err(|e| IssueError::Sign(e.to_string()))?;
    let info = CertInfo::from_der(cert.der()).map_err(|e| IssueError::Verify(e.to_string()))?;
    let v = |m: &str| Err(IssueError::Verify(m.to_string()));
    if info.issuer_raw != ca.subject_raw || !info.signed_by(ca) {
        return v("it does not chain to the CA");
    }
    if info.spki != rcgen::PublicKeyData::subject_public_key_info(&key) {
        return v("it does not match the new key");
    }
    if info.cn() != Some(user.as_str()) || info.orgs() != [NODES_ORG] {
        return v("its subject is not O=system:nodes, CN=system:node:NAME");
    }
    if !info.client_auth || info.server_auth || info.is_ca {
        return v("it is not a client-only, non-CA certificate");
    }
    let key_pem = keys::encode(&key, KeyAlg::EcP256, KeyFormat::Sec1)
        .map_err(|e| IssueError::Sign(e.to_string()))?;
    Ok(NodeClient {
        user,
        cert_pem: cert.pem(),
        key_pem,
        info,
        clamped,
    })
}

/// The current context's cluster in a kubeconfig: its name and server.
pub fn current_cluster(text: &str) -> Result<(String, String), String> {
    crate::node::yamlguard::check_nesting(text)?;
    let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("not a kubeconfig: {e}"))?;
    use crate::pki::kubeconfig::{named_entry, str_field as s};
    let named = |list: &str, name: &str| named_entry(&doc, list, name);
    let ctx = s(&doc, "current-context")
        .filter(|c| !c.is_empty())
        .ok_or("it has no current-context")?;
    let cluster = named("contexts", &ctx)
        .and_then(|c| c.get("context").and_then(|c| s(c, "cluster")))
        .ok_or_else(|| format!("context {ctx:?} names no cluster"))?;
    let server = named("clusters", &cluster)
        .and_then(|c| c.get("cluster").and_then(|c| s(c, "server")))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("cluster {cluster:?} has no server"))?;
    Ok((cluster, server))
}

/// A kubelet.conf for `client`, laid out as client-go's `clientcmd.WriteToFile` writes it (what
/// `kubeadm kubeconfig user` prints), with everything embedded.
pub fn kubeconfig(cluster: &str, server: &str, ca_pem: &str, client: &NodeClient) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let user = &client.user;
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: {cluster}\ncontexts:\n- context:\n    cluster: {cluster}\n    user: {user}\n  name: {user}@{cluster}\ncurrent-context: {user}@{cluster}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem),
        b64(&client.cert_pem),
        b64(&client.key_pem)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn issues_a_node_client_and_clamps_to_the_ca() {
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "kubernetes");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.not_before = datetime!(2020-01-01 0:00 UTC);
        p.not_after = datetime!(2027-01-01 0:00 UTC);
        let ca = CertInfo::from_der(p.self_signed(&ca_key).unwrap().der()).unwrap();
        let now = datetime!(2026-11-29 9:30 UTC);
        let c = issue("cp1", &ca, &ca_key, now, Duration::from_secs(365 * 86_400)).unwrap();
        assert_eq!(c.info.cn(), Some("system:node:cp1"));
        assert!(c.clamped);
        assert_eq!(c.info.not_after, ca.not_after);
        assert_eq!(c.info.key_alg, Some(KeyAlg::EcP256));
        assert!(c.key_pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        assert!(issue("a/b", &ca, &ca_key, now, Duration::from_secs(60)).is_err());

        let text = kubeconfig("kubernetes", "https://10.0.0.10:6443", "CA", &c);
        assert_eq!(
            current_cluster(&text).unwrap(),
            ("kubernetes".into(), "https://10.0.0.10:6443".into())
        );
        assert!(text.contains("current-context: system:node:cp1@kubernetes\n"));
    }
}
