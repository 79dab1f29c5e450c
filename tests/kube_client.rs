//! The Kubernetes API client (`kubeadm_certd::kube`) in this process against the stand-in
//! kube-apiserver (issue 17): kube-client's own retry layer is off (our retries are bounded
//! and logged), a decision written on a CSR someone else decided meanwhile is not an error,
//! transient errors are retried a bounded number of times and a 403 not at all, every call
//! is bounded in time and cut short by a stop request, a watch ends cleanly when the server
//! closes it, and the kubeconfig must not run programs.

mod support;

use futures::StreamExt;
use kubeadm_certd::act::cancel::Cancel;
use kubeadm_certd::kube::approver::decide::{write, Kind, Written};
use kubeadm_certd::kube::{Kube, KubeError};
use kubeadm_certd::node::paths::Root;
use kubeadm_certd::testkit::apiserver::{issue_client, write_kubeconfig};
use std::time::{Duration, Instant};
use support::kube::{calls, Cluster, ADMIN_CONF, CSRS};

/// A client (kube-client's connection worker lives on the runtime that made it, so each test
/// runs on one runtime).
async fn connect(c: &Cluster, kubeconfig: &str, cancel: &Cancel) -> Kube {
    Kube::connect(&Root::new(c.root()), kubeconfig, cancel)
        .await
        .unwrap()
        .unwrap()
}

async fn admin(c: &Cluster) -> Kube {
    connect(c, &format!("/{ADMIN_CONF}"), &Cancel::new()).await
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

#[tokio::test(flavor = "current_thread")]
async fn kube_clients_own_retries_are_off() {
    let c = Cluster::new(300);
    let k = admin(&c).await;
    c.api.fail_next("GET", CSRS, 503, 1);
    let r = k.list_csrs().await;
    // With kube-client's default_retry, this 503 would be retried inside the client and the
    // list would succeed.
    let e = r.expect_err("the 503 reached the caller");
    assert_eq!(e.code(), Some(503), "{e}");
    assert!(e.transient());
    assert_eq!(c.api.requests().len(), 1);
    assert!(k.list_csrs().await.is_ok());
}

#[tokio::test(flavor = "current_thread")]
async fn a_csr_decided_by_someone_else_meanwhile_is_not_an_error() {
    let c = Cluster::new(300);
    let k = admin(&c).await;
    c.good_csr("csr-1", "w1");
    let read = k.get_csr("csr-1").await.unwrap();
    // Another control-plane daemon (or kubectl) approves it first.
    c.api
        .set_condition("csr-1", "Approved", "Other", "first")
        .unwrap();
    c.api.clear_requests();
    let r = write(&k, &read, Kind::Approve, "m", &now).await.unwrap();
    assert_eq!(r, Written::AlreadyDecided("Approved".into()));
    // Our write carried the version we read: 409, then a re-read, and nothing more.
    assert_eq!(calls(&c.api.requests()), ["PUT approval 409", "GET 200"]);
    let conds = c.conditions("csr-1");
    assert_eq!(conds.len(), 1);
    assert_eq!(conds[0]["reason"], "Other");
    // Gone meanwhile: not an error either.
    c.good_csr("csr-2", "w1");
    let read = k.get_csr("csr-2").await.unwrap();
    assert!(c.api.delete_csr("csr-2"));
    let r = write(&k, &read, Kind::Deny, "m", &now).await.unwrap();
    assert_eq!(r, Written::Gone);
}

#[tokio::test(flavor = "current_thread")]
async fn transient_errors_are_retried_a_bounded_number_of_times_and_a_403_not_at_all() {
    let c = Cluster::new(300);
    let k = admin(&c).await;
    c.good_csr("csr-1", "w1");
    let read = k.get_csr("csr-1").await.unwrap();
    c.api.clear_requests();
    c.api
        .fail_next("PUT", &format!("{CSRS}/csr-1/approval"), 503, 100);
    let t = Instant::now();
    let e = write(&k, &read, Kind::Approve, "m", &now)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(503));
    let puts = c
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .count();
    assert_eq!(puts, 5, "{:?}", calls(&c.api.requests()));
    // Backoff between attempts (0.2 s doubling, capped): bounded, and not instant.
    assert!(t.elapsed() > Duration::from_millis(1400) && t.elapsed() < Duration::from_secs(10));
    assert_eq!(c.state("csr-1"), "Pending");
    // A node's credentials may not approve: 403, one attempt, no retry.
    let id = issue_client(
        &std::fs::read_to_string(c.root().join("etc/kubernetes/pki/ca.crt")).unwrap(),
        &std::fs::read_to_string(c.root().join("etc/kubernetes/pki/ca.key")).unwrap(),
        "system:node:w1",
        &["system:nodes"],
    )
    .unwrap();
    let ca = std::fs::read_to_string(c.root().join("etc/kubernetes/pki/ca.crt")).unwrap();
    write_kubeconfig(
        &c.root().join("etc/kubernetes/node.conf"),
        &c.api.url(),
        &ca,
        &id,
        "system:node:w1",
    )
    .unwrap();
    let node = connect(&c, "/etc/kubernetes/node.conf", &Cancel::new()).await;
    c.good_csr("csr-2", "w1");
    let read = k.get_csr("csr-2").await.unwrap();
    c.api.clear_requests();
    let e = write(&node, &read, Kind::Approve, "m", &now)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(403), "{e}");
    assert!(!e.transient());
    assert_eq!(calls(&c.api.requests()), ["PUT approval 403"]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_hung_call_is_given_up_within_its_bound_and_at_once_on_a_stop() {
    let c = Cluster::new(300);
    c.api.hang(CSRS, true);
    let k = admin(&c).await;
    let t = Instant::now();
    let e = k.list_csrs().await.unwrap_err();
    let took = t.elapsed();
    assert!(e.unreachable(), "{e}");
    assert!(
        took >= Duration::from_secs(9) && took <= Duration::from_secs(16),
        "{took:?}: {e}"
    );
    // A stop request ends a hung call within the poll interval.
    let cancel = Cancel::new();
    let k = connect(&c, &format!("/{ADMIN_CONF}"), &cancel).await;
    let stopper = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            cancel.cancel();
            Instant::now()
        })
    };
    let e = k.list_csrs().await.unwrap_err();
    let at = stopper.join().unwrap();
    assert!(matches!(e, KubeError::Cancelled), "{e}");
    assert!(
        at.elapsed() < Duration::from_millis(300),
        "{:?}",
        at.elapsed()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_watch_ends_cleanly_when_the_server_closes_it() {
    let c = Cluster::new(300);
    let k = admin(&c).await;
    let rv = k
        .list_csrs()
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    async {
        let s = k.watch_csrs(&rv, 60).await.unwrap();
        let mut s = std::pin::pin!(s);
        c.good_csr("csr-1", "w1");
        let ev = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .unwrap();
        assert!(matches!(ev, Some(Ok(kube::api::WatchEvent::Added(_)))));
        c.api.close_watches();
        let ev = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .unwrap();
        assert!(
            ev.is_none(),
            "a closed watch ends with None, which the approver reopens"
        );
    }
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_kubeconfig_that_would_run_a_program_is_refused_and_a_missing_one_is_none() {
    let c = Cluster::new(300);
    let p = c.root().join(ADMIN_CONF);
    let text = std::fs::read_to_string(&p).unwrap();
    let (head, _) = text.split_once("  user:\n").unwrap();
    std::fs::write(
        &p,
        format!("{head}  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/touch\n      args: [/tmp/pwned]\n"),
    )
    .unwrap();
    let r = Kube::connect(
        &Root::new(c.root()),
        &format!("/{ADMIN_CONF}"),
        &Cancel::new(),
    )
    .await;
    let e = r.err().expect("refused");
    assert!(
        e.to_string()
            .contains("exec and auth-provider credentials are not supported"),
        "{e}"
    );
    assert!(c.api.requests().is_empty());
    let r = Kube::connect(
        &Root::new(c.root()),
        "/etc/kubernetes/none.conf",
        &Cancel::new(),
    )
    .await;
    assert!(matches!(r, Ok(None)));
}
