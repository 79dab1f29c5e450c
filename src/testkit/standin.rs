//! `standin`: a stand-in for a control-plane component, for `demo` (hidden command). It
//! answers every HTTP(S) GET with 200 "ok", like a healthy component's /livez or /healthz.
//! The kube-apiserver stand-in serves apiserver.crt (read under `--root`), as the real one
//! does; the others serve a certificate made in memory at start, as kube-controller-manager
//! and kube-scheduler do. Trailing arguments are the component's own flags, kept so that the
//! process's command line names the files it uses.

use anyhow::{Context, Result};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;

/// What to serve.
#[derive(Debug)]
pub struct Standin<'a> {
    /// The node root (certificate flags are host paths under it).
    pub root: &'a Path,
    /// host:port to listen on.
    pub listen: &'a str,
    /// Plain HTTP (etcd's metrics port) instead of HTTPS.
    pub http: bool,
    /// The component's flags.
    pub flags: &'a [String],
}

fn flag<'a>(flags: &'a [String], name: &str) -> Option<&'a str> {
    flags
        .iter()
        .find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
}

fn tls_config(s: &Standin<'_>) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let (certs, key) = match (
        flag(s.flags, "--tls-cert-file"),
        flag(s.flags, "--tls-private-key-file"),
    ) {
        (Some(c), Some(k)) => {
            let root = crate::node::paths::Root::new(s.root);
            let certs = CertificateDer::pem_file_iter(root.resolve(c))
                .with_context(|| format!("reading {c}"))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("parsing {c}"))?;
            let key = PrivateKeyDer::from_pem_file(root.resolve(k))
                .with_context(|| format!("reading {k}"))?;
            (certs, key)
        }
        _ => {
            let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
            let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
                .map_err(|e| anyhow::anyhow!(e))?;
            (vec![ck.cert.der().clone()], key)
        }
    };
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(cfg))
}

fn answer(mut s: impl Read + Write) {
    let mut buf = [0u8; 2048];
    let _ = s.read(&mut buf);
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
    let _ = s.flush();
}

fn handle(conn: TcpStream, tls: Option<Arc<ServerConfig>>) {
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    match tls {
        None => answer(conn),
        Some(cfg) => {
            if let Ok(c) = ServerConnection::new(cfg) {
                answer(StreamOwned::new(c, conn));
            }
        }
    }
}

/// Serve until killed.
pub fn run(s: &Standin<'_>) -> Result<()> {
    let tls = if s.http { None } else { Some(tls_config(s)?) };
    let l = TcpListener::bind(s.listen).with_context(|| format!("listening on {}", s.listen))?;
    for conn in l.incoming().flatten() {
        let tls = tls.clone();
        std::thread::spawn(move || handle(conn, tls));
    }
    Ok(())
}
