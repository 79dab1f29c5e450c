//! Builds a kubeadm-shaped node under a directory with the project's own code: the PKI of
//! reference §1, the kubeconfigs of §2, kubelet files, static pod manifests and a kubelet
//! config. Used by `demo` and by the tests.

mod kubelet;
mod manifests;

use crate::pki::inspect::KeyAlg;
use crate::pki::keys::{self, KeyFormat};
use anyhow::{Context, Result};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose as Eku, IsCa, Issuer,
    KeyPair, KeyUsagePurpose as Ku, SanType,
};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

/// What node to build.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Key algorithm of every key.
    pub key: KeyAlg,
    /// nodeRegistration.name
    pub node_name: String,
    /// localAPIEndpoint.advertiseAddress
    pub advertise: IpAddr,
    /// "Now" for the build.
    pub now: OffsetDateTime,
    /// Leaf certificates expire this long after `now`.
    pub leaf_left: Duration,
    /// CAs expire this long after `now` (they started 10 years minus this before).
    pub ca_left: Duration,
    /// CAs already expired (NotAfter one day before `now`).
    pub ca_expired: bool,
    /// No etcd PKI (external etcd).
    pub external_etcd: bool,
    /// Write super-admin.conf (only the init node has it).
    pub super_admin: bool,
    /// Remove ca.key after building (external-CA mode).
    pub external_ca: bool,
    /// Write static pod manifests and the kubelet config.
    pub control_plane_files: bool,
    /// Ports the manifests' probes use: etcd metrics, apiserver, controller-manager, scheduler.
    pub ports: Ports,
    /// Run every component as `<exe> standin ...` (the demo's stand-ins) instead of its
    /// real binary; the real flags follow, so the command line still names the files.
    pub standin: Option<PathBuf>,
    /// fileCheckFrequency written into the kubelet config (kubeadm writes `0s`).
    pub file_check_frequency: String,
    /// NotAfter of the kubelet's client certificate, which then lived a year as the kubelet's
    /// do. Default: `leaf_left` ahead and as much behind, mid-life (its rotation not overdue).
    pub kubelet_client_not_after: Option<OffsetDateTime>,
    /// Take the CAs and the service-account key from this node root instead of creating
    /// them (the other control-plane nodes of an HA cluster share them).
    pub shared_cas: Option<PathBuf>,
}

/// Loopback ports named in the manifests.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// etcd client port.
    pub etcd_client: u16,
    /// etcd peer port.
    pub etcd_peer: u16,
    /// etcd metrics/health port (plain HTTP).
    pub etcd_metrics: u16,
    /// kube-apiserver secure port.
    pub apiserver: u16,
    /// kube-controller-manager secure port.
    pub controller_manager: u16,
    /// kube-scheduler secure port.
    pub scheduler: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            etcd_client: 2379,
            etcd_peer: 2380,
            etcd_metrics: 2381,
            apiserver: 6443,
            controller_manager: 10257,
            scheduler: 10259,
        }
    }
}

impl NodeSpec {
    /// kubeadm's defaults: RSA-2048, leaves with 3 days left, CAs with 10 years left.
    pub fn new(now: OffsetDateTime) -> NodeSpec {
        NodeSpec {
            key: KeyAlg::Rsa(2048),
            node_name: "cp1".into(),
            advertise: IpAddr::from([10, 0, 0, 10]),
            now,
            leaf_left: Duration::from_secs(3 * 86_400),
            ca_left: Duration::from_secs(3650 * 86_400),
            ca_expired: false,
            external_etcd: false,
            super_admin: true,
            external_ca: false,
            control_plane_files: true,
            ports: Ports::default(),
            standin: None,
            file_check_frequency: "0s".into(),
            kubelet_client_not_after: None,
            shared_cas: None,
        }
    }
}

struct Ca {
    pem: String,
    key: KeyPair,
}

struct Builder<'a> {
    root: &'a Path,
    spec: &'a NodeSpec,
}

/// Build the node under `root`.
pub fn build(root: &Path, spec: &NodeSpec) -> Result<()> {
    let b = Builder { root, spec };
    let ca = b.ca("ca", "kubernetes")?;
    let fp = b.ca("front-proxy-ca", "front-proxy-ca")?;
    let n = spec.node_name.as_str();
    let adv = spec.advertise;
    let lo4 = IpAddr::from([127, 0, 0, 1]);
    let lo6 = IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]);
    let svc = IpAddr::from([10, 96, 0, 1]);
    let api_dns = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        n,
    ];
    b.leaf(
        &ca,
        "apiserver",
        "kube-apiserver",
        &[],
        &api_dns,
        &[svc, adv],
        &[Eku::ServerAuth],
    )?;
    let admins = ["kubeadm:cluster-admins"];
    b.leaf(
        &ca,
        "apiserver-kubelet-client",
        "kube-apiserver-kubelet-client",
        &admins,
        &[],
        &[],
        &[Eku::ClientAuth],
    )?;
    b.leaf(
        &fp,
        "front-proxy-client",
        "front-proxy-client",
        &[],
        &[],
        &[],
        &[Eku::ClientAuth],
    )?;
    if !spec.external_etcd {
        let etcd = b.ca("etcd/ca", "etcd-ca")?;
        let both = [Eku::ServerAuth, Eku::ClientAuth];
        b.leaf(
            &etcd,
            "etcd/server",
            n,
            &[],
            &[n, "localhost"],
            &[adv, lo4, lo6],
            &both,
        )?;
        b.leaf(
            &etcd,
            "etcd/peer",
            n,
            &[],
            &[n, "localhost"],
            &[adv, lo4, lo6],
            &both,
        )?;
        b.leaf(
            &etcd,
            "etcd/healthcheck-client",
            "kube-etcd-healthcheck-client",
            &[],
            &[],
            &[],
            &[Eku::ClientAuth],
        )?;
        b.leaf(
            &etcd,
            "apiserver-etcd-client",
            "kube-apiserver-etcd-client",
            &[],
            &[],
            &[],
            &[Eku::ClientAuth],
        )?;
    }
    let (sa, sa_pem) = match &spec.shared_cas {
        Some(from) => b.shared_key(from, "sa")?,
        None => {
            let k = keys::generate(spec.key)?;
            let pem = keys::encode(&k, spec.key, KeyFormat::kubeadm_default(spec.key))?;
            (k, pem)
        }
    };
    b.write("etc/kubernetes/pki/sa.key", &sa_pem, 0o600)?;
    b.write("etc/kubernetes/pki/sa.pub", &sa.public_key_pem(), 0o600)?;
    let server = format!("https://{}:{}", spec.advertise, spec.ports.apiserver);
    // admin.conf is what the daemon's CSR approver dials (approver.mode: auto): a built node
    // must never send it off the machine (the advertise address is 10.0.0.10), nor to the
    // harness's stand-in components; nothing listens on 127.0.0.1:6443 here. Tests of the
    // approver point it at the stand-in API server instead.
    let admin_server = "https://127.0.0.1:6443";
    b.kubeconfig(&ca, "admin.conf", "kubernetes-admin", &admins, admin_server)?;
    if spec.super_admin {
        b.kubeconfig(
            &ca,
            "super-admin.conf",
            "kubernetes-super-admin",
            &["system:masters"],
            &server,
        )?;
    }
    b.kubeconfig(
        &ca,
        "controller-manager.conf",
        "system:kube-controller-manager",
        &[],
        &server,
    )?;
    b.kubeconfig(&ca, "scheduler.conf", "system:kube-scheduler", &[], &server)?;
    b.kubelet(&ca, &server)?;
    if spec.control_plane_files {
        for (name, text) in manifests::all(spec, root) {
            b.write(
                &format!("etc/kubernetes/manifests/{name}.yaml"),
                &text,
                0o600,
            )?;
        }
        let kubelet = manifests::KUBELET_CONFIG.replace(
            "fileCheckFrequency: 0s",
            &format!("fileCheckFrequency: {}", spec.file_check_frequency),
        );
        b.write("var/lib/kubelet/config.yaml", &kubelet, 0o644)?;
    }
    if spec.external_ca {
        std::fs::remove_file(root.join("etc/kubernetes/pki/ca.key")).context("removing ca.key")?;
    }
    Ok(())
}

impl Builder<'_> {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn write(&self, rel: &str, text: &str, mode: u32) -> Result<()> {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    fn key_pem(&self, k: &KeyPair) -> Result<String> {
        Ok(keys::encode(
            k,
            self.spec.key,
            KeyFormat::kubeadm_default(self.spec.key),
        )?)
    }

    /// A key of another node root, as a key pair.
    /// A key of another node root: the pair, and the file's text (copied as it is).
    fn shared_key(&self, from: &Path, base: &str) -> Result<(KeyPair, String)> {
        let p = from.join(format!("etc/kubernetes/pki/{base}.key"));
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        Ok((keys::parse_key_file(text.as_bytes())?.pair, text))
    }

    fn ca(&self, base: &str, cn: &str) -> Result<Ca> {
        if let Some(from) = &self.spec.shared_cas {
            let p = from.join(format!("etc/kubernetes/pki/{base}.crt"));
            let pem =
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            let (key, key_pem) = self.shared_key(from, base)?;
            self.write(&format!("etc/kubernetes/pki/{base}.crt"), &pem, 0o644)?;
            self.write(&format!("etc/kubernetes/pki/{base}.key"), &key_pem, 0o600)?;
            return Ok(Ca { pem, key });
        }
        let key = keys::generate(self.spec.key)?;
        let mut p = CertificateParams::new(vec![cn.to_string()])?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![Ku::DigitalSignature, Ku::KeyEncipherment, Ku::KeyCertSign];
        p.serial_number = Some(crate::pki::issue::random_serial().into());
        let s = self.spec;
        let ten_years = Duration::from_secs(3650 * 86_400);
        if s.ca_expired {
            p.not_after = s.now - Duration::from_secs(86_400);
        } else {
            p.not_after = s.now + s.ca_left;
        }
        p.not_before = p.not_after - ten_years;
        let cert = p.self_signed(&key)?;
        self.write(
            &format!("etc/kubernetes/pki/{base}.crt"),
            &cert.pem(),
            0o644,
        )?;
        self.write(
            &format!("etc/kubernetes/pki/{base}.key"),
            &self.key_pem(&key)?,
            0o600,
        )?;
        Ok(Ca {
            pem: cert.pem(),
            key,
        })
    }

    /// Sign a leaf the way kubeadm's `NewSignedCert` does; returns (cert PEM, key PEM).
    #[allow(clippy::too_many_arguments)]
    fn sign(
        &self,
        ca: &Ca,
        cn: &str,
        orgs: &[&str],
        dns: &[&str],
        ips: &[IpAddr],
        eku: &[Eku],
    ) -> Result<(String, String)> {
        let key = keys::generate(self.spec.key)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        for (i, o) in orgs.iter().enumerate() {
            let ty = if i == 0 {
                DnType::OrganizationName
            } else {
                DnType::CustomDnType(vec![2, 5, 4, 10])
            };
            p.distinguished_name.push(ty, *o);
        }
        p.distinguished_name.push(DnType::CommonName, cn);
        let mut dns: Vec<&str> = dns.to_vec();
        dns.sort();
        for d in dns {
            p.subject_alt_names
                .push(SanType::DnsName(d.to_string().try_into()?));
        }
        p.subject_alt_names
            .extend(ips.iter().copied().map(SanType::IpAddress));
        p.extended_key_usages = eku.to_vec();
        p.key_usages = vec![Ku::DigitalSignature, Ku::KeyEncipherment];
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = true;
        p.serial_number = Some(crate::pki::issue::random_serial().into());
        let s = self.spec;
        p.not_after = s.now + s.leaf_left;
        p.not_before = p.not_after - Duration::from_secs(365 * 86_400);
        let issuer = Issuer::from_ca_cert_pem(&ca.pem, &ca.key)?;
        let cert = p.signed_by(&key, &issuer)?;
        Ok((cert.pem(), self.key_pem(&key)?))
    }

    #[allow(clippy::too_many_arguments)]
    fn leaf(
        &self,
        ca: &Ca,
        base: &str,
        cn: &str,
        orgs: &[&str],
        dns: &[&str],
        ips: &[IpAddr],
        eku: &[Eku],
    ) -> Result<()> {
        let (cert, key) = self.sign(ca, cn, orgs, dns, ips, eku)?;
        self.write(&format!("etc/kubernetes/pki/{base}.crt"), &cert, 0o644)?;
        self.write(&format!("etc/kubernetes/pki/{base}.key"), &key, 0o600)
    }

    fn kubeconfig(&self, ca: &Ca, file: &str, cn: &str, orgs: &[&str], server: &str) -> Result<()> {
        let (cert, key) = self.sign(ca, cn, orgs, &[], &[], &[Eku::ClientAuth])?;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let user = format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&cert),
            b64(&key)
        );
        self.write(
            &format!("etc/kubernetes/{file}"),
            &kubeconfig_text(&b64(&ca.pem), server, cn, &user),
            0o600,
        )
    }
}

/// A kubeconfig laid out as client-go's `clientcmd.WriteToFile` writes it.
fn kubeconfig_text(ca_b64: &str, server: &str, user: &str, user_fields: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca_b64}\n    server: {server}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: {user}\n  name: {user}@kubernetes\ncurrent-context: {user}@kubernetes\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n{user_fields}"
    )
}
