//! Health probes as the kubelet runs them (HTTP GET, 200..=399 is healthy,
//! HTTPS without certificate verification), and fetching the certificate a
//! component serves. Production only probes health; the restart tests use
//! [`tls_peer_cert`] to prove that a restarted component serves the renewed file.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use crate::node::manifests::{Probe, Scheme};

/// What one probe attempt saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// Status 200..=399.
    Healthy {
        /// The status code.
        status: u16,
    },
    /// Any other status.
    BadStatus {
        /// The status code.
        status: u16,
    },
    /// Nothing listens on the port.
    ConnectionRefused,
    /// No answer within the timeout.
    Timeout,
    /// The TLS handshake failed.
    Tls(String),
    /// Anything else (reset connection, malformed response, ...).
    Failed(String),
}

impl ProbeResult {
    /// Whether the kubelet would count this as a success.
    pub fn is_healthy(&self) -> bool {
        matches!(self, ProbeResult::Healthy { .. })
    }
}

impl fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeResult::Healthy { status } => write!(f, "healthy (HTTP {status})"),
            ProbeResult::BadStatus { status } => write!(f, "unhealthy (HTTP {status})"),
            ProbeResult::ConnectionRefused => f.write_str("connection refused"),
            ProbeResult::Timeout => f.write_str("timed out"),
            ProbeResult::Tls(e) => write!(f, "TLS error: {e}"),
            ProbeResult::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// Why the served certificate could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum PeerCertError {
    /// TCP connect failed (refused, unreachable, timed out).
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {addr}: {source}")]
    Handshake {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The server sent no certificate.
    #[error("{addr} presented no certificate")]
    NoCertificate {
        /// Where.
        addr: SocketAddr,
    },
    /// The TLS client could not be set up.
    #[error("setting up the TLS client: {0}")]
    Setup(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The probe URL; `default_host` stands in for an empty `httpGet.host`
/// (the kubelet uses the pod IP, i.e. the node for host-network pods).
pub fn probe_url(p: &Probe, default_host: &str) -> String {
    let scheme = match p.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let host = p.host.as_deref().unwrap_or(default_host);
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    format!("{scheme}://{host}:{}{}", p.port, p.path)
}

/// Runs one probe attempt like the kubelet: GET, redirects not followed
/// (a 3xx already counts as healthy), certificates not verified.
pub fn probe(p: &Probe, default_host: &str, timeout: Duration) -> ProbeResult {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider())
        .disable_verification(true)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .user_agent("kube-probe/kubeadm-certd")
        .proxy(None)
        .build()
        .into();
    match agent.get(&probe_url(p, default_host)).call() {
        Ok(mut resp) => {
            // Drain a little of the body so the server sees a normal exchange; errors do not matter.
            let mut sink = [0u8; 1024];
            let _ = resp.body_mut().as_reader().read(&mut sink);
            let status = resp.status().as_u16();
            if (200..=399).contains(&status) {
                ProbeResult::Healthy { status }
            } else {
                ProbeResult::BadStatus { status }
            }
        }
        Err(e) => classify(e),
    }
}

fn classify(e: ureq::Error) -> ProbeResult {
    match e {
        ureq::Error::Timeout(_) => ProbeResult::Timeout,
        ureq::Error::Io(io) => classify_io(io),
        ureq::Error::Rustls(e) => ProbeResult::Tls(e.to_string()),
        ureq::Error::Tls(e) => ProbeResult::Tls(e.to_owned()),
        other => ProbeResult::Failed(other.to_string()),
    }
}

fn classify_io(io: io::Error) -> ProbeResult {
    if let Some(tls) = io
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return ProbeResult::Tls(tls.to_string());
    }
    match io.kind() {
        io::ErrorKind::ConnectionRefused => ProbeResult::ConnectionRefused,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ProbeResult::Timeout,
        _ => ProbeResult::Failed(io.to_string()),
    }
}

/// Connects with TLS (no SNI for IP addresses, no verification) and returns
/// the DER of the leaf certificate the server presents. The handshake
/// signature is still checked, so the server does hold that certificate's key.
pub fn tls_peer_cert(addr: SocketAddr, timeout: Duration) -> Result<Vec<u8>, PeerCertError> {
    let provider = provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    let mut conn =
        ClientConnection::new(Arc::new(config), ServerName::IpAddress(addr.ip().into()))?;

    let connect_err = |source| PeerCertError::Connect { addr, source };
    let mut sock = TcpStream::connect_timeout(&addr, timeout).map_err(connect_err)?;
    sock.set_read_timeout(Some(timeout)).map_err(connect_err)?;
    sock.set_write_timeout(Some(timeout)).map_err(connect_err)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .map_err(|source| PeerCertError::Handshake { addr, source })?;
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|c| c.as_ref().to_vec())
        .ok_or(PeerCertError::NoCertificate { addr })?;
    // Be polite; the certificate is already in hand whatever happens here.
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    let _ = sock.flush();
    Ok(leaf)
}

/// Accepts any certificate: we want to see what is served, not to trust it.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    use rustls::pki_types::PrivateKeyDer;
    use rustls::{ServerConfig, ServerConnection, StreamOwned};

    /// Reads a request head, then answers with `status`.
    fn answer<S: Read + Write>(mut s: S, status: u16) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let body = if status == 200 { "ok" } else { "no" };
        let _ = write!(
            s,
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = s.flush();
    }

    /// A server on 127.0.0.1:0 answering every request with `status`, over TLS if given.
    fn serve(status: u16, tls: Option<Arc<ServerConfig>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                match &tls {
                    None => answer(stream, status),
                    Some(cfg) => {
                        let conn = ServerConnection::new(cfg.clone()).unwrap();
                        let mut s = StreamOwned::new(conn, stream);
                        answer(&mut s, status);
                        s.conn.send_close_notify();
                        let _ = s.flush();
                    }
                }
            }
        });
        addr
    }

    /// A self-signed server config and its certificate DER.
    fn self_signed() -> (Arc<ServerConfig>, Vec<u8>) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let der = ck.cert.der().to_vec();
        let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
        let cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(der.clone())], key)
            .unwrap();
        (Arc::new(cfg), der)
    }

    fn probe_for(addr: SocketAddr, scheme: Scheme, path: &str) -> Probe {
        Probe {
            scheme,
            host: None,
            port: addr.port(),
            path: path.to_owned(),
        }
    }

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn url_forms() {
        let mut p = probe_for(
            "127.0.0.1:2381".parse().unwrap(),
            Scheme::Http,
            "/health?exclude=NOSPACE&serializable=true",
        );
        assert_eq!(
            probe_url(&p, "10.0.0.1"),
            "http://10.0.0.1:2381/health?exclude=NOSPACE&serializable=true"
        );
        p.host = Some("fd00::1".into());
        p.scheme = Scheme::Https;
        assert_eq!(
            probe_url(&p, "x"),
            "https://[fd00::1]:2381/health?exclude=NOSPACE&serializable=true"
        );
    }

    #[test]
    fn plain_http_status_codes() {
        let ok = serve(200, None);
        let r = probe(&probe_for(ok, Scheme::Http, "/livez"), "127.0.0.1", T);
        assert_eq!(r, ProbeResult::Healthy { status: 200 });
        let bad = serve(500, None);
        let r = probe(&probe_for(bad, Scheme::Http, "/livez"), "127.0.0.1", T);
        assert_eq!(r, ProbeResult::BadStatus { status: 500 });
        assert!(!r.is_healthy());
        // A redirect is not followed; like the kubelet, 3xx counts as healthy.
        let redirect = serve(302, None);
        let r = probe(&probe_for(redirect, Scheme::Http, "/"), "127.0.0.1", T);
        assert_eq!(r, ProbeResult::Healthy { status: 302 });
    }

    #[test]
    fn refused_port() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let r = probe(&probe_for(port, Scheme::Http, "/"), "127.0.0.1", T);
        assert_eq!(r, ProbeResult::ConnectionRefused);
        let e = tls_peer_cert(port, T).unwrap_err();
        assert!(matches!(e, PeerCertError::Connect { .. }), "{e}");
    }

    #[test]
    fn silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            // Accept and hold every connection without answering.
            let held: Vec<_> = listener.incoming().collect();
            drop(held);
        });
        let r = probe(
            &probe_for(addr, Scheme::Http, "/"),
            "127.0.0.1",
            Duration::from_millis(300),
        );
        assert_eq!(r, ProbeResult::Timeout);
    }

    #[test]
    fn https_without_verification_and_served_cert() {
        let (cfg, der) = self_signed();
        let addr = serve(200, Some(cfg.clone()));
        let r = probe(&probe_for(addr, Scheme::Https, "/healthz"), "127.0.0.1", T);
        assert_eq!(r, ProbeResult::Healthy { status: 200 });
        assert_eq!(tls_peer_cert(addr, T).unwrap(), der);

        let failing = serve(503, Some(cfg));
        let r = probe(
            &probe_for(failing, Scheme::Https, "/healthz"),
            "127.0.0.1",
            T,
        );
        assert_eq!(r, ProbeResult::BadStatus { status: 503 });
        // Speaking plain HTTP to a TLS port is not a success.
        let r = probe(
            &probe_for(failing, Scheme::Http, "/healthz"),
            "127.0.0.1",
            T,
        );
        assert!(!r.is_healthy(), "{r}");
    }

    #[test]
    fn tls_to_a_non_tls_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            }
        });
        let r = probe(&probe_for(addr, Scheme::Https, "/"), "127.0.0.1", T);
        assert!(matches!(r, ProbeResult::Tls(_)), "{r:?}");
        let e = tls_peer_cert(addr, T).unwrap_err();
        assert!(matches!(e, PeerCertError::Handshake { .. }), "{e}");
    }
}
