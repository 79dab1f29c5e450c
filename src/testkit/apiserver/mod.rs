//! A stand-in kube-apiserver for tests (issue 17), written from the API's rules, not from
//! any client: no kube-apiserver binary can be installed here. It runs in the test process,
//! on threads, over TLS on a loopback address, and serves what kubeadm-certd uses:
//! Nodes, ConfigMaps, the `kubernetes` Service, CertificateSigningRequests with their
//! `/approval` subresource (the real strategy and validation), list and watch with
//! resourceVersions, and /version, /healthz, /livez, /readyz. What it implements and what it
//! leaves out is listed in TESTING.md ("The stand-in kube-apiserver").
//!
//! Tests seed and read the state through [`ApiServer`], switch faults on, and assert on the
//! recorded requests. `tests/apiserver_standin.rs` shows every feature.

mod configmap;
mod csr;
mod faults;
mod http;
mod kit;
mod list;
mod patch;
mod resources;
mod router;
mod seed;
mod server;
mod signer;
mod status;
mod store;
mod tls;
mod watch;

pub use kit::{
    issue_client, kubelet_serving_csr, point_kubeconfig, write_kubeconfig, CsrRequest, Identity,
};

use anyhow::{bail, Context, Result};
use server::Shared;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::Kind;

/// How to start the stand-in.
#[derive(Debug, Clone)]
pub struct Options {
    /// The cluster CA (PEM): it signs the serving certificate and verifies client certificates.
    pub ca_cert_pem: String,
    /// The cluster CA's key (PEM: PKCS#1, SEC1 or PKCS#8).
    pub ca_key_pem: String,
    /// Where to listen: a loopback address, port 0 for any ("127.0.0.1:0").
    pub addr: String,
}

impl Options {
    /// The CA of a node built by `testkit::nodebuilder` (etc/kubernetes/pki/ca.crt and
    /// ca.key under `root`), on 127.0.0.1 and any port.
    pub fn for_node(root: &Path) -> Result<Options> {
        let read = |f: &str| {
            let p = root.join("etc/kubernetes/pki").join(f);
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        };
        Ok(Options {
            ca_cert_pem: read("ca.crt")?,
            ca_key_pem: read("ca.key")?,
            addr: "127.0.0.1:0".into(),
        })
    }
}

/// A CSR as a client would submit it; the requester's identity is given here because the
/// seeding helper bypasses authentication.
#[derive(Debug, Clone)]
pub struct CsrSpec {
    /// spec.username, e.g. `system:node:w1`.
    pub username: String,
    /// spec.groups, e.g. `["system:nodes"]` (`system:authenticated` is added if missing).
    pub groups: Vec<String>,
    /// spec.signerName, e.g. `kubernetes.io/kubelet-serving`.
    pub signer_name: String,
    /// spec.usages, e.g. `["digital signature", "server auth"]`.
    pub usages: Vec<String>,
    /// The PKCS#10 request, PEM.
    pub request_pem: String,
}

impl CsrSpec {
    /// What the kubelet of `node` submits for its serving certificate (an ECDSA key:
    /// digital signature + server auth; kubernetes pkg/kubelet/certificate/kubelet.go).
    pub fn kubelet_serving(node: &str, request_pem: String) -> CsrSpec {
        CsrSpec {
            username: format!("system:node:{node}"),
            groups: vec!["system:nodes".into()],
            signer_name: "kubernetes.io/kubelet-serving".into(),
            usages: vec!["digital signature".into(), "server auth".into()],
            request_pem,
        }
    }
}

/// One request the server received, with the status it answered (0: hung, unanswered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// GET, PUT, ...
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// The authenticated user (certificate CN); `None` when authentication failed.
    pub user: Option<String>,
    /// The user's groups (certificate O values, plus `system:authenticated`).
    pub groups: Vec<String>,
    /// The HTTP status answered; 0 while a hung request has had no answer.
    pub status: u16,
    /// The request body, as text.
    pub body: String,
}

impl Recorded {
    /// The path without the query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    /// Whether this was a write (POST, PUT, PATCH, DELETE).
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }
}

/// The running stand-in. Dropping it stops the server and cuts every connection.
pub struct ApiServer {
    shared: Arc<Shared>,
}

impl ApiServer {
    /// Listen on `opts.addr` (loopback only) with a serving certificate signed by the CA.
    pub fn start(opts: Options) -> Result<ApiServer> {
        let addr: SocketAddr = opts
            .addr
            .parse()
            .with_context(|| format!("stand-in address {:?}", opts.addr))?;
        if !addr.ip().is_loopback() {
            bail!(
                "the stand-in listens on loopback addresses only, not {}",
                addr.ip()
            );
        }
        let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr()?;
        let tls = tls::setup(&opts.ca_cert_pem, &opts.ca_key_pem, addr.ip())?;
        let shared = Arc::new(Shared::new(tls, addr, opts.ca_cert_pem, opts.ca_key_pem));
        let s = ApiServer { shared };
        s.shared.mutate(|st| {
            let key = (
                Kind::Service,
                "default".to_string(),
                "kubernetes".to_string(),
            );
            st.create(key, seed::kubernetes_service("10.96.0.1"))
        });
        server::listen(&s.shared, listener);
        Ok(s)
    }

    /// `https://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("https://{}", self.shared.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The current resourceVersion (the global counter).
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.mutate(|st| st.requests.clear());
    }

    /// Wait up to `timeout` for a recorded request that `pred` accepts.
    pub fn wait_request(
        &self,
        timeout: Duration,
        pred: impl Fn(&Recorded) -> bool,
    ) -> Option<Recorded> {
        let end = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if let Some(r) = st.requests.iter().find(|r| pred(r)) {
                return Some(r.clone());
            }
            let now = Instant::now();
            if now >= end {
                return None;
            }
            st = self.shared.wait(st, end - now);
        }
    }

    /// How many watch streams are open now.
    pub fn open_watches(&self) -> usize {
        self.shared.lock().open_watches
    }

    /// Wait up to `timeout` until exactly `n` watch streams are open.
    pub fn wait_watches(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while st.open_watches != n {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            st = self.shared.wait(st, end - now);
        }
        true
    }

    /// The next `times` requests with this method (`"*"`: any) and path prefix are answered
    /// `status` with a Status body (reason from the code: 503 ServiceUnavailable, ...).
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16, times: usize) {
        self.shared
            .mutate(|st| st.faults.fail_next(method, path_prefix, status, times));
    }

    /// Requests under `path_prefix` are read and never answered: the connection stays open
    /// and silent until `hang(prefix, false)`, `set_down(true)` or drop, then it is closed.
    pub fn hang(&self, path_prefix: &str, on: bool) {
        self.shared.mutate(|st| st.faults.hang(path_prefix, on));
    }

    /// End every open watch stream (cleanly, as at timeoutSeconds).
    pub fn close_watches(&self) {
        self.shared.mutate(|st| st.watch_gen += 1);
    }

    /// Compact the history: every resourceVersion handed out so far is too old to watch from
    /// (410 Expired); a fresh list gives one that works.
    pub fn compact(&self) {
        self.shared.mutate(store::State::compact);
    }

    /// The next `times` writes with this method and path prefix meet a concurrent writer:
    /// the target object's resourceVersion moves on just before the write, so a write that
    /// carries the version it read gets 409 Conflict, as against a real cluster. A write
    /// without a resourceVersion applies (unconditional update); to force a 409 on any write,
    /// use `fail_next(method, prefix, 409, times)`.
    pub fn conflict_next(&self, method: &str, path_prefix: &str, times: usize) {
        self.shared
            .mutate(|st| st.faults.conflict_next(method, path_prefix, times));
    }

    /// Down: the listener is closed (connections are refused) and every open connection is
    /// cut, as when the apiserver process dies. Up again: the same port is listened on.
    pub fn set_down(&self, down: bool) {
        let was = self
            .shared
            .mutate(|st| std::mem::replace(&mut st.down, down));
        if was == down {
            return;
        }
        if down {
            server::stop_listening(&self.shared);
            self.shared.drop_connections();
        } else if let Err(e) = server::bind_again(&self.shared) {
            eprintln!(
                "apiserver stand-in: cannot listen on {} again: {e}",
                self.shared.addr
            );
        }
    }

    /// Answer a watch from a compacted resourceVersion with an HTTP 410 Status instead of a
    /// 200 stream holding one ERROR event (both are what clients meet in practice).
    pub fn set_expired_watch_as_http(&self, on: bool) {
        self.shared.mutate(|st| st.gone_as_http = on);
    }

    /// How often watches with allowWatchBookmarks get a BOOKMARK (every minute at start, as kube-apiserver sends them).
    pub fn set_bookmark_interval(&self, every: Duration) {
        self.shared
            .mutate(|st| st.bookmark_every = every.max(Duration::from_millis(10)));
    }

    /// Point the kubeconfig at `path` (e.g. a node's etc/kubernetes/admin.conf) at this
    /// server: its `server:` lines are rewritten, nothing else.
    pub fn point_kubeconfig(&self, path: &Path) -> Result<()> {
        point_kubeconfig(path, &self.url())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shared.mutate(|st| st.stopping = true);
        server::stop_listening(&self.shared);
        self.shared.drop_connections();
    }
}
