//! TLS and authentication as kube-apiserver does them with `--client-ca-file`: the handshake
//! asks for a client certificate but does not require one (Go's `tls.RequestClientCert`);
//! the x509 authenticator then verifies the chain against the client CA and takes the user
//! from the subject, CN = name and each O = a group (kubernetes
//! `staging/src/k8s.io/apiserver/pkg/authentication/request/x509/x509.go`, `CommonNameUserConversion`).
//! A missing or unverifiable certificate is a 401 (the stand-in runs as with
//! `--anonymous-auth=false`); the group `system:authenticated` is added to every user, as the
//! apiserver's `AuthenticatedGroupAdder` does.

use anyhow::{Context, Result};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }
}

/// Accepts any certificate during the handshake (still checking the client's proof of
/// possession through the webpki verifier), so that the chain can be judged afterwards and a
/// bad one answered with an HTTP 401 rather than a TLS alert, as kube-apiserver answers.
#[derive(Debug)]
pub(crate) struct DeferredVerifier {
    pub inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for DeferredVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The server's TLS setup and the client-CA verifier used after the handshake.
pub(crate) struct Tls {
    pub config: Arc<ServerConfig>,
    pub verifier: Arc<dyn ClientCertVerifier>,
}

/// Issue the serving certificate with the cluster CA (SANs: the bound IP, 127.0.0.1,
/// localhost and the `kubernetes` service names, like apiserver.crt) and build the config.
/// ALPN offers only `http/1.1`: the stand-in speaks no HTTP/2.
pub(crate) fn setup(ca_cert_pem: &str, ca_key_pem: &str, ip: IpAddr) -> Result<Tls> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let ca_key = KeyPair::from_pem(ca_key_pem).context("parsing the CA key")?;
    let issuer =
        Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).context("parsing the CA certificate")?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let mut ips = vec![ip, IpAddr::from([127, 0, 0, 1])];
    ips.dedup();
    p.subject_alt_names = ips.into_iter().map(SanType::IpAddress).collect();
    for d in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    ] {
        p.subject_alt_names.push(SanType::DnsName(d.try_into()?));
    }
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    p.serial_number = Some(crate::pki::issue::random_serial().into());
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - Duration::from_secs(3600);
    p.not_after = now + Duration::from_secs(7 * 86_400);
    let cert = p.signed_by(&key, &issuer)?;

    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_cert_pem.as_bytes()) {
        roots
            .add(c?)
            .context("adding the CA to the client-CA store")?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("building the client-certificate verifier")?;
    let key_der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| anyhow::anyhow!(e))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(DeferredVerifier {
            inner: verifier.clone(),
        }))
        .with_single_cert(vec![cert.der().clone()], key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        verifier,
    })
}

/// Why a connection has no user: the reason a 401 carries in the server's log, never sent.
pub(crate) type AuthResult = std::result::Result<User, String>;

/// The x509 authenticator: verify the presented chain against the client CA (including
/// validity and the clientAuth usage), then CN = user, O = groups.
pub(crate) fn authenticate(
    verifier: &dyn ClientCertVerifier,
    certs: Option<&[CertificateDer<'_>]>,
) -> AuthResult {
    let Some((leaf, rest)) = certs.and_then(|c| c.split_first()) else {
        return Err("no client certificate".into());
    };
    verifier
        .verify_client_cert(leaf, rest, UnixTime::now())
        .map_err(|e| format!("client certificate not verified: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("client certificate unparsable: {e}"))?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        return Err("client certificate has no common name".into());
    }
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    groups.push("system:authenticated".into());
    Ok(User { name, groups })
}
