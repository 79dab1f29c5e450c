//! Faults (fail_next, conflict_next, hang, set_down), the request record, the transport
//! (keep-alive, chunked and 100-continue request bodies, ALPN http/1.1 only, loopback only)
//! and the test-kit helpers (kubeconfig pointing, CSR building).

use crate::apiserver_standin_support::*;
use kubeadm_certd::pki::inspect::KeyAlg;
use kubeadm_certd::testkit::apiserver::{
    issue_client, write_kubeconfig, ApiServer, CsrRequest, Options,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn approve_body(csr: &Value) -> Value {
    let mut c = csr.clone();
    c["status"]["conditions"] = json!([{"type": "Approved", "status": "True", "reason": "T"}]);
    c
}

#[test]
fn fail_next_answers_the_given_status_then_recovers() {
    let fx = Fx::new();
    let csr = fx.seed_csr("c", "w1");
    let path = format!("{CSRS}/c/approval");
    fx.api.fail_next("PUT", &path, 503, 2);
    assert_eq!(fx.admin.get(&path).0, 200, "another method is not affected");
    for _ in 0..2 {
        let (code, b) = fx.admin.put(&path, &approve_body(&csr));
        assert_eq!((code, reason(&b)), (503, ("ServiceUnavailable", 503)));
    }
    assert!(conditions(&fx.api.csr("c").unwrap()).is_empty());
    assert_eq!(fx.admin.put(&path, &approve_body(&csr)).0, 200);
    fx.api.fail_next("*", "/version", 429, 1);
    let (code, b) = fx.admin.get("/version");
    assert_eq!((code, reason(&b)), (429, ("TooManyRequests", 429)));
}

#[test]
fn conflict_next_acts_as_a_concurrent_writer() {
    let fx = Fx::new();
    fx.api
        .put_configmap("kube-system", "kubelet-config", &[("kubelet", "a: 1\n")]);
    let path = "/api/v1/namespaces/kube-system/configmaps/kubelet-config";
    fx.api.conflict_next("PUT", path, 1);
    let (_, read) = fx.admin.get(path);
    let mut edit = read.clone();
    edit["data"]["kubelet"] = json!("a: 2\n");
    let (code, b) = fx.admin.put(path, &edit);
    assert_eq!((code, reason(&b)), (409, ("Conflict", 409)));
    // Sending the same stale version again keeps failing: the client must read again.
    assert_eq!(fx.admin.put(path, &edit).0, 409);
    let (_, fresh) = fx.admin.get(path);
    assert_ne!(rv(&fresh), rv(&read));
    assert_eq!(
        fresh["data"], read["data"],
        "the other writer changed nothing we see"
    );
    let mut edit = fresh.clone();
    edit["data"]["kubelet"] = json!("a: 2\n");
    assert_eq!(fx.admin.put(path, &edit).0, 200);
}

#[test]
fn hang_keeps_the_request_open_and_silent() {
    let fx = Fx::new();
    fx.api.hang("/version", true);
    let impatient = Client::with_timeout(
        &fx.api.url(),
        &fx.ca,
        Some(&fx.admin_id),
        Duration::from_secs(1),
    );
    let t = Instant::now();
    let err = impatient
        .try_send("GET", "/version", "application/json", "")
        .unwrap_err();
    assert!(matches!(err, ureq::Error::Timeout(_)), "{err}");
    assert!(t.elapsed() >= Duration::from_millis(900));
    let hung = fx
        .api
        .wait_request(Duration::from_secs(2), |r| r.path == "/version")
        .unwrap();
    assert_eq!(hung.status, 0, "recorded, never answered");
    assert_eq!(fx.admin.get("/healthz").0, 200, "other paths answer");
    fx.api.hang("/version", false);
    assert_eq!(impatient.get("/version").0, 200);
}

#[test]
fn set_down_refuses_connections_and_up_serves_on_the_same_port() {
    let fx = Fx::new();
    let mut w = fx.admin.watch(&format!(
        "{CSRS}?watch=true&resourceVersion={}",
        fx.api.resource_version()
    ));
    assert!(fx.api.wait_watches(1, Duration::from_secs(5)));
    fx.api.set_down(true);
    assert!(w.try_next().is_err(), "the open watch is cut, not ended");
    assert!(
        TcpStream::connect(fx.api.addr()).is_err(),
        "connection refused"
    );
    assert!(fx
        .admin
        .try_send("GET", "/version", "application/json", "")
        .is_err());
    fx.api.set_down(false);
    assert_eq!(fx.admin.get("/version").0, 200);
    assert_eq!(fx.api.open_watches(), 0);
}

#[test]
fn requests_are_recorded_so_tests_can_say_what_was_written() {
    let fx = Fx::new();
    let csr = fx.seed_csr("c", "w1");
    fx.admin.get(CSRS);
    fx.admin
        .put(&format!("{CSRS}/c/approval"), &approve_body(&csr));
    let r = fx.api.requests();
    let writes: Vec<_> = r.iter().filter(|r| r.is_write()).collect();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].path_only(), format!("{CSRS}/c/approval"));
    assert_eq!(
        (writes[0].status, writes[0].user.as_deref()),
        (200, Some("kubernetes-admin"))
    );
    let sent: Value = serde_json::from_str(&writes[0].body).unwrap();
    assert_eq!(sent["spec"], csr["spec"]);
    fx.api.clear_requests();
    assert!(fx.api.requests().is_empty());
}

/// A raw TLS client: the admin's certificate, ALPN offering h2 first.
fn raw_conn(fx: &Fx) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(fx.ca.as_bytes()).unwrap())
        .unwrap();
    let id = issue_client(
        &fx.ca,
        &fx.ca_key,
        "kubernetes-admin",
        &["kubeadm:cluster-admins"],
    )
    .unwrap();
    let certs = vec![CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)
    .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    rustls::StreamOwned::new(conn, TcpStream::connect(fx.api.addr()).unwrap())
}

/// Read one Content-Length response: status and body.
fn response(s: &mut impl Read) -> (u16, String) {
    let mut r = BufReader::new(s);
    let mut head = String::new();
    r.read_line(&mut head).unwrap();
    let code: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (code, String::from_utf8(body).unwrap())
}

#[test]
fn one_connection_serves_many_requests_over_http_1_1_only() {
    let fx = Fx::new();
    fx.api.put_configmap("default", "cm", &[("a", "1")]);
    let mut s = raw_conn(&fx);
    s.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut s).0, 200);
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]), "never h2");
    // A chunked request body, on the same connection.
    let body = r#"{"metadata":{"name":"cm"},"data":{"a":"2"}}"#;
    let (p1, p2) = body.split_at(10);
    let req = format!(
        "PUT /api/v1/namespaces/default/configmaps/cm HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{p1}\r\n{:x}\r\n{p2}\r\n0\r\n\r\n",
        p1.len(),
        p2.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    assert_eq!(response(&mut s).0, 200);
    // Expect: 100-continue gets its interim answer before the body is sent.
    let body = r#"{"metadata":{"name":"cm"},"data":{"a":"3"}}"#;
    let head = format!(
        "PUT /api/v1/namespaces/default/configmaps/cm HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(body.as_bytes()).unwrap();
    assert_eq!(response(&mut s).0, 200);
    assert_eq!(fx.api.configmap("default", "cm").unwrap()["data"]["a"], "3");
    s.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut s).0, 404);
}

#[test]
fn the_stand_in_listens_on_loopback_only() {
    let fx = Fx::new();
    let mut o = Options::for_node(fx.root()).unwrap();
    o.addr = "0.0.0.0:0".into();
    assert!(ApiServer::start(o).is_err());
    assert!(fx.api.url().starts_with("https://127.0.0.1:"));
}

#[test]
fn kubeconfigs_point_at_the_stand_in() {
    let fx = Fx::new();
    let conf = fx.root().join("etc/kubernetes/admin.conf");
    let before = std::fs::read_to_string(&conf).unwrap();
    let other = "https://127.0.0.1:1";
    kubeadm_certd::testkit::apiserver::point_kubeconfig(&conf, other).unwrap();
    let after = std::fs::read_to_string(&conf).unwrap();
    let diff: Vec<(&str, &str)> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(diff.len(), 1);
    assert_eq!(diff[0].1, format!("    server: {other}"));
    assert_eq!(before.lines().count(), after.lines().count());
    // A kubeconfig for another identity, usable as written.
    let id = issue_client(&fx.ca, &fx.ca_key, "system:node:w1", &["system:nodes"]).unwrap();
    let path = fx.root().join("etc/kubernetes/w1.conf");
    write_kubeconfig(&path, &fx.api.url(), &fx.ca, &id, "system:node:w1").unwrap();
    let kc =
        kubeadm_certd::pki::kubeconfig::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(kc.user, "system:node:w1");
    assert_eq!(kc.client_cert, id.cert_pem.as_bytes());
}

#[test]
fn csr_requests_carry_the_subject_and_sans_asked_for() {
    use x509_parser::prelude::*;
    for key in [KeyAlg::EcP256, KeyAlg::Rsa(2048)] {
        let req = CsrRequest {
            cn: "system:node:w1",
            orgs: &["system:nodes", "extra"],
            dns: &["w1", "w1.example"],
            ips: &["127.0.0.2"],
            emails: &["root@w1"],
            uris: &["spiffe://w1"],
            key,
        };
        let (pem_text, key_pem) = req.generate().unwrap();
        assert!(key_pem.contains("PRIVATE KEY"));
        let block = ::pem::parse(&pem_text).unwrap();
        assert_eq!(block.tag(), "CERTIFICATE REQUEST");
        let (_, csr) = X509CertificationRequest::from_der(block.contents()).unwrap();
        csr.verify_signature().unwrap();
        let subject = csr.certification_request_info.subject.to_string();
        assert_eq!(
            subject, "O=system:nodes, O=extra, CN=system:node:w1",
            "{key}"
        );
        let mut sans = Vec::new();
        for ext in csr.requested_extensions().unwrap() {
            if let ParsedExtension::SubjectAlternativeName(s) = ext {
                for g in &s.general_names {
                    sans.push(match g {
                        GeneralName::DNSName(d) => format!("DNS:{d}"),
                        GeneralName::IPAddress(ip) => format!("IP:{ip:?}"),
                        GeneralName::RFC822Name(e) => format!("email:{e}"),
                        GeneralName::URI(u) => format!("URI:{u}"),
                        other => format!("{other:?}"),
                    });
                }
            }
        }
        assert_eq!(
            sans,
            [
                "DNS:w1",
                "DNS:w1.example",
                "IP:[127, 0, 0, 2]",
                "email:root@w1",
                "URI:spiffe://w1"
            ]
        );
    }
}
