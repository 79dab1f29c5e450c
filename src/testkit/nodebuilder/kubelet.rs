//! The kubelet's own files, laid out as the kubelet writes them: kubelet.conf referencing
//! `kubelet-client-current.pem`, an absolute symlink to a dated
//! `kubelet-client-<YYYY-MM-DD-HH-MM-SS>.pem` holding an ECDSA P-256 pair (certificate then
//! key), and the self-signed serving pair kubelet.crt/kubelet.key.

use super::{kubeconfig_text, Builder, Ca};
use crate::node::kubelet_pki::{dated_client_pem, CLIENT_CURRENT};
use crate::pki::inspect::KeyAlg;
use crate::pki::keys::{self, KeyFormat};
use anyhow::{Context, Result};
use base64::Engine;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose as Eku, IsCa, Issuer, KeyUsagePurpose as Ku,
};
use std::time::Duration;
use time::OffsetDateTime;

const PKI: &str = "/var/lib/kubelet/pki";

impl Builder<'_> {
    pub(super) fn kubelet(&self, ca: &Ca, server: &str) -> Result<()> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&ca.pem);
        let cn = format!("system:node:{}", self.spec.node_name);
        let current = format!("{PKI}/{CLIENT_CURRENT}");
        let user = format!("    client-certificate: {current}\n    client-key: {current}\n");
        let text = kubeconfig_text(&b64, server, &cn, &user);
        self.write("etc/kubernetes/kubelet.conf", &text, 0o600)?;

        let (pem, not_before) = self.kubelet_client_pem(ca, &cn)?;
        // The kubelet's store names the file after the time it wrote it.
        let dated = dated_client_pem(not_before);
        self.write(&format!("var/lib/kubelet/pki/{dated}"), &pem, 0o600)?;
        let link = self.path(&format!("var/lib/kubelet/pki/{CLIENT_CURRENT}"));
        let _ = std::fs::remove_file(&link);
        // Absolute, as the kubelet links it; it resolves below --root.
        std::os::unix::fs::symlink(format!("{PKI}/{dated}"), &link).context("symlink")?;

        // The kubelet's self-signed serving certificate.
        let skey = keys::generate(self.spec.key)?;
        let host = format!("{}@{}", self.spec.node_name, self.spec.now.unix_timestamp());
        let mut p = CertificateParams::new(vec![self.spec.node_name.clone()])?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, host);
        p.not_before = self.spec.now - Duration::from_secs(86_400);
        p.not_after = self.spec.now + Duration::from_secs(364 * 86_400);
        p.serial_number = Some(crate::pki::issue::random_serial().into());
        let scert = p.self_signed(&skey)?;
        self.write("var/lib/kubelet/pki/kubelet.crt", &scert.pem(), 0o644)?;
        self.write(
            "var/lib/kubelet/pki/kubelet.key",
            &self.key_pem(&skey)?,
            0o600,
        )
    }

    /// The client pair the controller-manager's signer issues the kubelet: ECDSA P-256,
    /// O=system:nodes, CN=system:node:NAME, clientAuth, digitalSignature; and its NotBefore.
    /// By default it is in mid-life (NotAfter `leaf_left` ahead, NotBefore as far behind), so
    /// that the kubelet's own rotation is not overdue; with `kubelet_client_not_after` it
    /// lived a year, as the kubelet's certificates do.
    fn kubelet_client_pem(&self, ca: &Ca, cn: &str) -> Result<(String, OffsetDateTime)> {
        let key = keys::generate(KeyAlg::EcP256)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::OrganizationName, "system:nodes");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![Eku::ClientAuth];
        p.key_usages = vec![Ku::DigitalSignature];
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = true;
        p.serial_number = Some(crate::pki::issue::random_serial().into());
        let s = self.spec;
        (p.not_before, p.not_after) = match s.kubelet_client_not_after {
            Some(t) => (t - Duration::from_secs(365 * 86_400), t),
            None => (s.now - s.leaf_left, s.now + s.leaf_left),
        };
        let issuer = Issuer::from_ca_cert_pem(&ca.pem, &ca.key)?;
        let cert = p.signed_by(&key, &issuer)?;
        let key_pem = keys::encode(&key, KeyAlg::EcP256, KeyFormat::Sec1)?;
        Ok((format!("{}{key_pem}", cert.pem()), p.not_before))
    }
}
