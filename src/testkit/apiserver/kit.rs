//! Helpers for tests that talk to the stand-in: CSRs as a kubelet makes them (and broken
//! ones), client identities issued by the cluster CA, and kubeconfigs pointed at the server.

use crate::pki::inspect::KeyAlg;
use crate::pki::keys::{self, KeyFormat};
use anyhow::{Context, Result};
use base64::Engine;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// A PKCS#10 request to build. Email and URI SANs exist for negative tests: the kubelet never
/// asks for them, and the kubelet-serving signer refuses them.
#[derive(Debug, Clone)]
pub struct CsrRequest<'a> {
    /// Subject CN, e.g. `system:node:w1`.
    pub cn: &'a str,
    /// Subject O values, in order (the kubelet sends one: `system:nodes`).
    pub orgs: &'a [&'a str],
    /// DNS SANs.
    pub dns: &'a [&'a str],
    /// IP SANs (text; each must parse as an address).
    pub ips: &'a [&'a str],
    /// Email SANs.
    pub emails: &'a [&'a str],
    /// URI SANs.
    pub uris: &'a [&'a str],
    /// The key's algorithm (the kubelet uses ECDSA P-256).
    pub key: KeyAlg,
}

/// Push subject O values; rcgen's DistinguishedName keeps one value per type, so the second
/// and later go in under the same OID as a custom type (as testkit::nodebuilder does).
fn push_orgs(dn: &mut rcgen::DistinguishedName, orgs: &[&str]) {
    for (i, o) in orgs.iter().enumerate() {
        let ty = if i == 0 {
            DnType::OrganizationName
        } else {
            DnType::CustomDnType(vec![2, 5, 4, 10])
        };
        dn.push(ty, *o);
    }
}

impl CsrRequest<'_> {
    /// The request (PEM) and its private key (PEM, kubeadm's format for the algorithm).
    pub fn generate(&self) -> Result<(String, String)> {
        let key = keys::generate(self.key)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        push_orgs(&mut p.distinguished_name, self.orgs);
        p.distinguished_name.push(DnType::CommonName, self.cn);
        for d in self.dns {
            p.subject_alt_names.push(SanType::DnsName((*d).try_into()?));
        }
        for ip in self.ips {
            let ip: IpAddr = ip.parse().with_context(|| format!("IP SAN {ip:?}"))?;
            p.subject_alt_names.push(SanType::IpAddress(ip));
        }
        for e in self.emails {
            p.subject_alt_names
                .push(SanType::Rfc822Name((*e).try_into()?));
        }
        for u in self.uris {
            p.subject_alt_names.push(SanType::URI((*u).try_into()?));
        }
        let csr = p.serialize_request(&key)?;
        let key_pem = keys::encode(&key, self.key, KeyFormat::kubeadm_default(self.key))?;
        Ok((csr.pem()?, key_pem))
    }

    /// The request, PEM.
    pub fn pem(&self) -> Result<String> {
        Ok(self.generate()?.0)
    }
}

/// A kubelet-serving request: CN, O values, DNS and IP SANs, key algorithm.
pub fn kubelet_serving_csr(
    cn: &str,
    orgs: &[&str],
    dns: &[&str],
    ips: &[&str],
    key: KeyAlg,
) -> Result<String> {
    CsrRequest {
        cn,
        orgs,
        dns,
        ips,
        emails: &[],
        uris: &[],
        key,
    }
    .pem()
}

/// A client certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// A client certificate (clientAuth, ECDSA P-256, a day either side of now) for CN and O
/// values, signed by the given CA, e.g. a node's `system:node:w1` in `system:nodes`.
pub fn issue_client(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    cn: &str,
    orgs: &[&str],
) -> Result<Identity> {
    let ca_key = KeyPair::from_pem(ca_key_pem).context("parsing the CA key")?;
    let issuer =
        Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).context("parsing the CA certificate")?;
    let key = keys::generate(KeyAlg::EcP256)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    push_orgs(&mut p.distinguished_name, orgs);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    p.serial_number = Some(crate::pki::issue::random_serial().into());
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - Duration::from_secs(86_400);
    p.not_after = now + Duration::from_secs(86_400);
    let cert = p.signed_by(&key, &issuer)?;
    Ok(Identity {
        cert_pem: cert.pem(),
        key_pem: keys::encode(&key, KeyAlg::EcP256, KeyFormat::Sec1)?,
    })
}

/// Rewrite every `server:` line of the kubeconfig at `path` to `url`, leaving every other
/// byte (and the file's mode) as it was.
pub fn point_kubeconfig(path: &Path, url: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut found = false;
    let out: Vec<String> = text
        .split_inclusive('\n')
        .map(|line| {
            let body = line.trim_start();
            if body.starts_with("server:") {
                found = true;
                let indent = &line[..line.len() - body.len()];
                let nl = if line.ends_with('\n') { "\n" } else { "" };
                format!("{indent}server: {url}{nl}")
            } else {
                line.to_string()
            }
        })
        .collect();
    if !found {
        anyhow::bail!("{} has no server: line", path.display());
    }
    std::fs::write(path, out.concat()).with_context(|| format!("writing {}", path.display()))
}

/// Write a kubeconfig for `user` with embedded credentials, laid out as client-go writes it.
pub fn write_kubeconfig(
    path: &Path,
    url: &str,
    ca_pem: &str,
    id: &Identity,
    user: &str,
) -> Result<()> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let text = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {url}\n  \
         name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: {user}\n  \
         name: {user}@kubernetes\ncurrent-context: {user}@kubernetes\nkind: Config\npreferences: {{}}\n\
         users:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem),
        b64(&id.cert_pem),
        b64(&id.key_pem)
    );
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
