//! List and watch: the global resourceVersion, the spec.signerName field selector,
//! limit/continue, and the watch stream (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR lines,
//! 410 after a compaction, timeouts and close_watches).

use crate::apiserver_standin_support::*;
use kubeadm_certd::pki::inspect::KeyAlg;
use kubeadm_certd::testkit::apiserver::{kubelet_serving_csr, CsrSpec};
use serde_json::Value;
use std::time::{Duration, Instant};

const BY_SIGNER: &str = "fieldSelector=spec.signerName%3Dkubernetes.io%2Fkubelet-serving";

fn seed_client_csr(fx: &Fx, name: &str) {
    let pem = kubelet_serving_csr(
        "system:node:w1",
        &["system:nodes"],
        &[],
        &[],
        KeyAlg::EcP256,
    )
    .unwrap();
    let mut spec = CsrSpec::kubelet_serving("w1", pem);
    spec.signer_name = "kubernetes.io/kube-apiserver-client-kubelet".into();
    spec.usages = vec!["digital signature".into(), "client auth".into()];
    fx.api.create_csr(name, spec);
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn event(w: &mut Watch) -> (String, String) {
    let e = w.next().expect("an event");
    let name = e["object"]["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    (e["type"].as_str().unwrap().to_string(), name)
}

#[test]
fn list_carries_the_global_resource_version_and_selects_by_signer() {
    let fx = Fx::new();
    fx.seed_csr("serving", "w1");
    seed_client_csr(&fx, "client");
    let (code, list) = fx.admin.get(&format!("{CSRS}?{BY_SIGNER}"));
    assert_eq!(
        (code, list["kind"].as_str()),
        (200, Some("CertificateSigningRequestList"))
    );
    assert_eq!(names(&list), ["serving"]);
    assert_eq!(rv(&list), fx.api.resource_version().to_string());
    let (_, all) = fx.admin.get(CSRS);
    assert_eq!(names(&all), ["client", "serving"]);
    let (_, none) = fx.admin.get(&format!("{CSRS}?fieldSelector=spec.signerName!%3Dkubernetes.io%2Fkubelet-serving,metadata.name%3Dserving"));
    assert!(names(&none).is_empty());
    let (code, b) = fx
        .admin
        .get(&format!("{CSRS}?fieldSelector=spec.username%3Dx"));
    assert_eq!(
        (code, b["message"].as_str()),
        (400, Some("field label not supported: spec.username"))
    );
}

#[test]
fn list_pages_with_limit_and_continue_and_old_tokens_expire() {
    let fx = Fx::new();
    for n in ["a", "b", "c"] {
        fx.seed_csr(n, "w1");
    }
    let (_, p1) = fx.admin.get(&format!("{CSRS}?limit=2"));
    assert_eq!(names(&p1), ["a", "b"]);
    assert_eq!(p1["metadata"]["remainingItemCount"], 1);
    let token = p1["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, p2) = fx.admin.get(&format!("{CSRS}?limit=2&continue={token}"));
    assert_eq!(names(&p2), ["c"]);
    assert!(p2["metadata"].get("continue").is_none());
    assert_eq!(rv(&p2), rv(&p1), "pages report the first page's version");
    // resourceVersion=0 is served whole, limit or not.
    assert_eq!(
        names(&fx.admin.get(&format!("{CSRS}?limit=1&resourceVersion=0")).1).len(),
        3
    );
    fx.api.compact();
    let (code, b) = fx.admin.get(&format!("{CSRS}?limit=2&continue={token}"));
    assert_eq!((code, reason(&b)), (410, ("Expired", 410)));
}

#[test]
fn list_at_an_exact_old_version_is_410_and_a_future_one_504() {
    let fx = Fx::new();
    let old = fx.api.resource_version();
    fx.seed_csr("a", "w1");
    let (code, b) = fx.admin.get(&format!(
        "{CSRS}?resourceVersion={old}&resourceVersionMatch=Exact"
    ));
    assert_eq!((code, reason(&b)), (410, ("Expired", 410)));
    // NotOlderThan an old version: the current state.
    let (code, l) = fx.admin.get(&format!(
        "{CSRS}?resourceVersion={old}&resourceVersionMatch=NotOlderThan"
    ));
    assert_eq!((code, names(&l)), (200, vec!["a".to_string()]));
    let (code, b) = fx.admin.get(&format!("{CSRS}?resourceVersion=999999"));
    assert_eq!((code, reason(&b)), (504, ("Timeout", 504)));
}

#[test]
fn watch_without_a_version_sends_the_current_objects_then_every_change() {
    let fx = Fx::new();
    fx.seed_csr("old", "w1");
    seed_client_csr(&fx, "client");
    let mut w = fx
        .admin
        .watch(&format!("{CSRS}?&watch=true&{BY_SIGNER}&timeoutSeconds=30"));
    assert_eq!(w.status, 200);
    assert_eq!(event(&mut w), ("ADDED".into(), "old".into()));
    fx.seed_csr("new", "w2");
    seed_client_csr(&fx, "client2"); // another signer: not in this watch
    assert_eq!(event(&mut w), ("ADDED".into(), "new".into()));
    fx.api.set_condition("new", "Approved", "Test", "").unwrap();
    let e = w.next().unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(
        conditions(&e["object"]),
        [("Approved".into(), "True".into())]
    );
    assert_eq!(
        e["object"]["kind"], "CertificateSigningRequest",
        "event objects carry their kind"
    );
    assert_eq!(rv(&e["object"]), rv(&fx.api.csr("new").unwrap()));
    fx.api.delete_csr("old");
    assert_eq!(event(&mut w), ("DELETED".into(), "old".into()));
}

#[test]
fn watch_from_a_version_replays_only_later_changes() {
    let fx = Fx::new();
    fx.seed_csr("before", "w1");
    let (_, list) = fx.admin.get(CSRS);
    fx.seed_csr("after", "w1");
    fx.api
        .set_condition("before", "Denied", "Test", "no")
        .unwrap();
    let mut w = fx.admin.watch(&format!(
        "{CSRS}?watch=1&resourceVersion={}&timeoutSeconds=30",
        rv(&list)
    ));
    assert_eq!(event(&mut w), ("ADDED".into(), "after".into()));
    assert_eq!(event(&mut w), ("MODIFIED".into(), "before".into()));
}

#[test]
fn watch_from_a_compacted_version_is_an_error_event_with_410_expired() {
    let fx = Fx::new();
    let (_, list) = fx.admin.get(CSRS);
    fx.api.compact();
    let mut w = fx
        .admin
        .watch(&format!("{CSRS}?watch=true&resourceVersion={}", rv(&list)));
    assert_eq!(w.status, 200, "the error comes inside the stream");
    let e = w.next().unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(reason(&e["object"]), ("Expired", 410));
    assert!(e["object"]["message"]
        .as_str()
        .unwrap()
        .starts_with("too old resource version: "));
    assert!(w.next().is_none(), "then the stream ends");
    // A fresh list gives a version that can be watched from.
    let (_, fresh) = fx.admin.get(CSRS);
    let mut w = fx.admin.watch(&format!(
        "{CSRS}?watch=true&resourceVersion={}&timeoutSeconds=1",
        rv(&fresh)
    ));
    assert!(
        w.next().is_none(),
        "no error, no event, ended by timeoutSeconds"
    );
}

#[test]
fn watch_from_a_compacted_version_can_be_an_http_410() {
    let fx = Fx::new();
    fx.api.set_expired_watch_as_http(true);
    fx.api.compact();
    let mut w = fx
        .admin
        .watch(&format!("{CSRS}?watch=true&resourceVersion=1"));
    assert_eq!(w.status, 410);
    let body: Value = serde_json::from_str(&w.rest()).unwrap();
    assert_eq!(reason(&body), ("Expired", 410));
}

#[test]
fn bookmarks_carry_the_current_resource_version() {
    let fx = Fx::new();
    fx.api.set_bookmark_interval(Duration::from_millis(100));
    let (_, list) = fx.admin.get(CSRS);
    let mut w = fx.admin.watch(&format!(
        "{CSRS}?watch=true&allowWatchBookmarks=true&resourceVersion={}",
        rv(&list)
    ));
    fx.api.add_node("n1", &[]); // moves the global version, not a CSR event
    let e = loop {
        let e = w.next().unwrap();
        if rv(&e["object"]) == fx.api.resource_version().to_string() {
            break e;
        }
    };
    assert_eq!(e["type"], "BOOKMARK");
    assert_eq!(e["object"]["kind"], "CertificateSigningRequest");
}

#[test]
fn send_initial_events_ends_with_an_annotated_bookmark() {
    let fx = Fx::new();
    fx.seed_csr("a", "w1");
    let mut w = fx.admin.watch(&format!(
        "{CSRS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=30"
    ));
    assert_eq!(event(&mut w), ("ADDED".into(), "a".into()));
    let b = w.next().unwrap();
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(
        b["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[test]
fn timeout_seconds_ends_the_stream() {
    let fx = Fx::new();
    let t = Instant::now();
    let mut w = fx
        .admin
        .watch(&format!("{CSRS}?watch=true&timeoutSeconds=1"));
    assert!(w.next().is_none());
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The connection stays usable for the next request.
    assert_eq!(fx.admin.get("/version").0, 200);
}

#[test]
fn close_watches_ends_every_open_stream() {
    let fx = Fx::new();
    let path = format!(
        "{CSRS}?watch=true&resourceVersion={}",
        fx.api.resource_version()
    );
    let mut a = fx.admin.watch(&path);
    let mut b = fx.node("w1").watch(&path);
    assert!(fx.api.wait_watches(2, Duration::from_secs(5)));
    fx.api.close_watches();
    let t = Instant::now();
    assert!(a.next().is_none() && b.next().is_none());
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(fx.api.wait_watches(0, Duration::from_secs(5)));
    // Watching again works, and sees what happened since.
    fx.seed_csr("later", "w1");
    let mut c = fx.admin.watch(&path);
    assert_eq!(event(&mut c), ("ADDED".into(), "later".into()));
}
