//! A node built by testkit::nodebuilder, the stand-in started with its CA, and plain HTTPS
//! clients (ureq 3 over rustls) holding the identities the tests need.
#![allow(dead_code)]

use kubeadm_certd::pki::inspect::KeyAlg;
use kubeadm_certd::testkit::apiserver::{
    issue_client, kubelet_serving_csr, ApiServer, CsrSpec, Identity, Options,
};
use kubeadm_certd::testkit::nodebuilder::{self, NodeSpec};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};

pub const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
pub const SERVING: &str = "kubernetes.io/kubelet-serving";

/// The node, the server, and the admin client (admin.conf's identity:
/// kubernetes-admin in kubeadm:cluster-admins).
pub struct Fx {
    pub dir: tempfile::TempDir,
    pub api: ApiServer,
    pub ca: String,
    pub ca_key: String,
    pub admin: Client,
    pub admin_id: Identity,
}

impl Fx {
    pub fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = NodeSpec::new(time::OffsetDateTime::now_utc());
        spec.key = KeyAlg::EcP256;
        nodebuilder::build(dir.path(), &spec).unwrap();
        let opts = Options::for_node(dir.path()).unwrap();
        let (ca, ca_key) = (opts.ca_cert_pem.clone(), opts.ca_key_pem.clone());
        let api = ApiServer::start(opts).unwrap();
        let admin_conf = dir.path().join("etc/kubernetes/admin.conf");
        api.point_kubeconfig(&admin_conf).unwrap();
        let kc =
            kubeadm_certd::pki::kubeconfig::parse(&std::fs::read_to_string(&admin_conf).unwrap())
                .unwrap();
        let id = Identity {
            cert_pem: String::from_utf8(kc.client_cert).unwrap(),
            key_pem: String::from_utf8(kc.client_key).unwrap(),
        };
        let admin = Client::new(&api.url(), &ca, Some(&id));
        Fx {
            dir,
            api,
            ca,
            ca_key,
            admin,
            admin_id: id,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A client as a user with these groups, with a certificate from the cluster CA.
    pub fn user(&self, cn: &str, orgs: &[&str]) -> Client {
        let id = issue_client(&self.ca, &self.ca_key, cn, orgs).unwrap();
        Client::new(&self.api.url(), &self.ca, Some(&id))
    }

    /// The kubelet of `name`: system:node:NAME in system:nodes.
    pub fn node(&self, name: &str) -> Client {
        self.user(&format!("system:node:{name}"), &["system:nodes"])
    }

    /// A client without a client certificate.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.api.url(), &self.ca, None)
    }

    /// Seed a kubelet-serving CSR from `node` for 127.0.0.2 and its name.
    pub fn seed_csr(&self, name: &str, node: &str) -> Value {
        let cn = format!("system:node:{node}");
        let pem = kubelet_serving_csr(
            &cn,
            &["system:nodes"],
            &[node],
            &["127.0.0.2"],
            KeyAlg::EcP256,
        )
        .unwrap();
        self.api
            .create_csr(name, CsrSpec::kubelet_serving(node, pem))
    }
}

/// An HTTPS client of the stand-in.
pub struct Client {
    agent: ureq::Agent,
    base: String,
}

pub fn tls_config(ca: &str, id: Option<&Identity>) -> TlsConfig {
    let roots = RootCerts::new_with_certs(&[Certificate::from_pem(ca.as_bytes()).unwrap()]);
    let mut b = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .root_certs(roots);
    if let Some(id) = id {
        let cert = Certificate::from_pem(id.cert_pem.as_bytes()).unwrap();
        let key = PrivateKey::from_pem(id.key_pem.as_bytes()).unwrap();
        b = b.client_cert(Some(ClientCert::new_with_certs(&[cert], key)));
    }
    b.build()
}

impl Client {
    pub fn new(url: &str, ca: &str, id: Option<&Identity>) -> Client {
        Client::with_timeout(url, ca, id, Duration::from_secs(20))
    }

    pub fn with_timeout(url: &str, ca: &str, id: Option<&Identity>, t: Duration) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls_config(ca, id))
            .http_status_as_error(false)
            .timeout_global(Some(t))
            .proxy(None)
            .build()
            .into();
        Client {
            agent,
            base: url.to_string(),
        }
    }

    /// Send a request; the status and the body parsed as JSON (a string if it is not JSON).
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        ct: &str,
        body: &str,
    ) -> Result<(u16, Value), ureq::Error> {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Content-Type", ct)
            .header("Accept", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap();
        let mut resp = self.agent.run(req)?;
        let code = resp.status().as_u16();
        let text = resp.body_mut().read_to_string()?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((code, v))
    }

    pub fn send(&self, method: &str, path: &str, ct: &str, body: &str) -> (u16, Value) {
        self.try_send(method, path, ct, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let mut resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let code = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send("PUT", path, "application/json", &body.to_string())
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send("POST", path, "application/json", &body.to_string())
    }

    pub fn patch(&self, path: &str, ct: &str, body: &Value) -> (u16, Value) {
        self.send("PATCH", path, ct, &body.to_string())
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        let mut resp = self
            .agent
            .delete(format!("{}{path}", self.base))
            .call()
            .unwrap();
        let code = resp.status().as_u16();
        (
            code,
            serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap(),
        )
    }

    /// Start a watch: its status and a reader of its event lines.
    pub fn watch(&self, path: &str) -> Watch {
        let resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap_or_else(|e| panic!("watch {path}: {e}"));
        let status = resp.status().as_u16();
        Watch {
            status,
            lines: Box::new(BufReader::new(resp.into_body().into_reader())),
        }
    }
}

/// A watch stream.
pub struct Watch {
    pub status: u16,
    lines: Box<dyn BufRead + Send>,
}

impl Watch {
    /// The next event, or `None` when the stream has ended cleanly.
    pub fn next(&mut self) -> Option<Value> {
        self.try_next()
            .unwrap_or_else(|e| panic!("reading the watch: {e}"))
    }

    /// The next event; an error when the stream was cut.
    pub fn try_next(&mut self) -> std::io::Result<Option<Value>> {
        let mut line = String::new();
        Ok(match self.lines.read_line(&mut line)? {
            0 => None,
            _ => {
                Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("event {line:?}: {e}")))
            }
        })
    }

    /// The rest of the body (for a non-200 answer).
    pub fn rest(&mut self) -> String {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut self.lines, &mut s).unwrap();
        s
    }
}

/// `metadata.resourceVersion` of an object or list.
pub fn rv(v: &Value) -> String {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The CSR's conditions, as (type, status) pairs.
pub fn conditions(v: &Value) -> Vec<(String, String)> {
    v["status"]["conditions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["type"].as_str().unwrap().into(),
                        c["status"].as_str().unwrap().into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A Status body's reason and code.
pub fn reason(v: &Value) -> (&str, u64) {
    assert_eq!(v["kind"], "Status", "not a Status: {v}");
    (
        v["reason"].as_str().unwrap_or(""),
        v["code"].as_u64().unwrap_or(0),
    )
}
