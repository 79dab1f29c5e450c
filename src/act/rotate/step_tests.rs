//! A node's steps through every phase on a built node, without restarts: what each writes,
//! that a step run again writes nothing, that renewal and check-expiration read every state
//! the way kubeadm would, and the abort's way back to the old key byte for byte.

use super::*;
use crate::act::rotate::material;
use crate::act::rotate::start::{self, Place};
use crate::plan::rotation::{Phase, Rotation};
use crate::plan::{Decision, Selection, Skip};

fn node() -> (tempfile::TempDir, NodePaths, Settings) {
    let d = tempfile::tempdir().unwrap();
    let mut spec = crate::testkit::nodebuilder::NodeSpec::new(OffsetDateTime::now_utc());
    spec.key = crate::pki::inspect::KeyAlg::EcP256;
    spec.leaf_left = std::time::Duration::from_secs(200 * 86_400);
    crate::testkit::nodebuilder::build(d.path(), &spec).unwrap();
    let s = Settings::default();
    let paths = s.paths(&crate::node::paths::Root::new(d.path()));
    (d, paths, s)
}

/// Do `rec`'s step on this node (files only); what it wrote.
fn step_in(paths: &NodePaths, s: &Settings, rec: &Rotation) -> Step {
    let t = rec.phase.target().unwrap();
    let cas = material::load(paths, rec, t.key == crate::plan::rotation::Which::New).unwrap();
    material::keep_old(paths, rec, &cas, OffsetDateTime::now_utc()).unwrap();
    let st = prepare(paths, s, &t, &cas, OffsetDateTime::now_utc()).unwrap();
    if !st.changes.is_empty() {
        commit(paths, rec, &st, OffsetDateTime::now_utc()).unwrap();
    }
    // Run again: nothing left to do.
    let cas = material::load(paths, rec, t.key == crate::plan::rotation::Which::New).unwrap();
    let again = prepare(paths, s, &t, &cas, OffsetDateTime::now_utc()).unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    st
}

fn names(st: &Step, paths: &NodePaths) -> Vec<String> {
    st.changes.iter().map(|c| paths.show(&c.target)).collect()
}

/// The renewal sees every etcd leaf as signed by the CA it will use: none is refused or
/// skipped as user-provided, and the CA it pairs with ca.key is the bundle's first.
fn renewal_reads_it_as_kubeadm(paths: &NodePaths, s: &Settings, first: &[u8]) {
    let scan = crate::plan::scan::scan(paths);
    let ca = scan.ca(CaId::EtcdCa).unwrap();
    assert_eq!(ca.cert.as_ref().unwrap().der, first);
    crate::pki::external::load_ca_key(paths, ca).expect("ca.key pairs with the first CA");
    let plan = crate::plan::plan(&scan, &Selection::All, s, OffsetDateTime::now_utc());
    for i in plan.items.iter().filter(|i| i.handler.ca == CaId::EtcdCa) {
        assert!(
            matches!(i.decision, Decision::Renew { .. }),
            "{}: {:?}",
            i.handler.name,
            i.decision
        );
        assert!(!matches!(
            i.decision,
            Decision::Skip(Skip::NotSignedByCa(_))
        ));
    }
}

#[test]
fn every_phase_writes_what_it_must_once_and_renewal_follows_it() {
    let (_d, paths, s) = node();
    let old_key = std::fs::read(paths.pki.join("etcd/ca.key")).unwrap();
    let started =
        start::prepare(&paths, &s, &Place::Local, None, OffsetDateTime::now_utc()).unwrap();
    let mut rec = started.record.clone();
    let (old, new) = (started.old.der.clone(), started.new.der.clone());
    let bundle = |p: &NodePaths| -> Vec<Vec<u8>> {
        material::current_bundle(p)
            .unwrap()
            .into_iter()
            .map(|c| c.der)
            .collect()
    };

    let st = step_in(&paths, &s, &rec);
    assert_eq!(names(&st, &paths), ["/etc/kubernetes/pki/etcd/ca.crt"]);
    assert_eq!(st.components, [Component::Etcd, Component::KubeApiserver]);
    assert_eq!(
        crate::act::store::owed::read(&paths),
        ["etcd", "kube-apiserver"]
    );
    assert_eq!(bundle(&paths), [old.clone(), new.clone()]);
    assert!(
        material::kept_set(&paths, &rec.id).is_some(),
        "the old CA is kept first"
    );
    renewal_reads_it_as_kubeadm(&paths, &s, &old);

    rec.phase = Phase::Reissue;
    let st = step_in(&paths, &s, &rec);
    assert_eq!(st.changes.len(), 2 + 4 * 2, "{:?}", names(&st, &paths));
    assert_eq!(st.reissued.len(), 4);
    assert_eq!(bundle(&paths), [new.clone(), old.clone()]);
    renewal_reads_it_as_kubeadm(&paths, &s, &new);

    // An abort from here: back to the old key (the same bytes) and old-signed leaves.
    let mut back = rec.clone();
    back.phase = Phase::ReissueOld;
    let st = step_in(&paths, &s, &back);
    assert_eq!(st.reissued.len(), 4);
    assert_eq!(
        std::fs::read(paths.pki.join("etcd/ca.key")).unwrap(),
        old_key
    );
    renewal_reads_it_as_kubeadm(&paths, &s, &old);
    back.phase = Phase::UntrustNew;
    step_in(&paths, &s, &back);
    assert_eq!(bundle(&paths), std::slice::from_ref(&old));

    // Forward again from there (the same record: reissue, then trust-new).
    step_in(&paths, &s, &rec);
    rec.phase = Phase::TrustNew;
    let st = step_in(&paths, &s, &rec);
    assert_eq!(names(&st, &paths), ["/etc/kubernetes/pki/etcd/ca.crt"]);
    assert_eq!(bundle(&paths), std::slice::from_ref(&new));
    renewal_reads_it_as_kubeadm(&paths, &s, &new);
    // check-expiration shows the CA kubeadm would show: the file's first certificate.
    let scan = crate::plan::scan::scan(&paths);
    assert_eq!(
        scan.ca(CaId::EtcdCa).unwrap().cert.as_ref().unwrap().der,
        new
    );
}

#[test]
fn a_leaf_signed_by_neither_ca_stops_the_step_before_anything_is_written() {
    let (_d, paths, s) = node();
    let started =
        start::prepare(&paths, &s, &Place::Local, None, OffsetDateTime::now_utc()).unwrap();
    let mut rec = started.record;
    rec.phase = Phase::Reissue;
    // A user-provided etcd server certificate: self-signed.
    let ck = rcgen::generate_simple_self_signed(vec!["etcd".to_string()]).unwrap();
    std::fs::write(paths.pki.join("etcd/server.crt"), ck.cert.pem()).unwrap();
    std::fs::write(
        paths.pki.join("etcd/server.key"),
        ck.signing_key.serialize_pem(),
    )
    .unwrap();
    let before = std::fs::read(paths.pki.join("etcd/ca.crt")).unwrap();
    let cas = material::load(&paths, &rec, true).unwrap();
    let t = rec.phase.target().unwrap();
    let e = prepare(&paths, &s, &t, &cas, OffsetDateTime::now_utc()).unwrap_err();
    assert!(
        format!("{e:#}").starts_with("/etc/kubernetes/pki/etcd/server.crt: signed by neither"),
        "{e:#}"
    );
    assert_eq!(
        std::fs::read(paths.pki.join("etcd/ca.crt")).unwrap(),
        before
    );
}
