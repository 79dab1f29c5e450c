//! Issue 20's evidence on an HA control plane: three real daemons (`run`) on three node roots
//! sharing their CAs, each with its own stand-in kubelet, where etcd.yaml runs a real member of
//! a 3-member etcd 3.4 cluster over TLS. `ca rotate etcd-ca` on one node; the daemons carry it
//! out. A writer puts a key every 100 ms throughout, with a node's current files as identity.

#[path = "support/cluster.rs"]
mod cluster_support;
#[path = "support/ha.rs"]
mod ha;
#[path = "support/kubelet.rs"]
mod kubelet;
mod rotation_support;
#[allow(dead_code)]
#[path = "support/etcd.rs"]
mod support_etcd;

use cluster_support::Daemon;
use ha::{assert_one_node_down_at_a_time, logs, Ha, Writer, FILES, LIMIT};
use kubeadm_certd::cluster::settings::{Coordination, Mode};
use kubeadm_certd::cluster::Coordinator;
use kubeadm_certd::plan::rotation::{Phase, Rotation};
use kubelet::KubeletHarness;
use rotation_support::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Leaves are not due (renewBefore 1d < 3d left), so only the rotation restarts anything.
const CFG: &str = "renewBefore: 1d\nkubelet:\n  reviveClientCert: false\ncoordination:\n  lockTTL: 5s\n  lockTimeout: 10m\n";

fn pki(ha: &Ha, i: usize) -> PathBuf {
    ha.node(i).root.join("etc/kubernetes/pki")
}

/// What `read` finds through the first member that answers (None while none does).
fn any_member<T>(ha: &Ha, read: impl Fn(&Coordinator) -> Option<T>) -> Option<T> {
    let s = Coordination {
        mode: Mode::Etcd,
        ..Coordination::default()
    };
    (0..3).find_map(|i| {
        read(
            &Coordinator::connect(&ha.node(i).paths(), &s)
                .ok()
                .flatten()?,
        )
    })
}

/// The record.
fn record(ha: &Ha) -> Option<Rotation> {
    any_member(ha, |c| c.rotation("etcd-ca").ok().flatten().map(|(r, _)| r))
}

/// The halt record.
fn halt(ha: &Ha) -> Option<kubeadm_certd::cluster::halt::Halt> {
    any_member(ha, |c| c.halt_record().ok().flatten())
}

/// Wait until the record satisfies `ok`.
fn wait_record(ha: &Ha, ds: &[&Daemon], what: &str, ok: impl Fn(&Rotation) -> bool) -> Rotation {
    let mut last = None;
    let hit = KubeletHarness::wait_until(LIMIT, || {
        last = record(ha);
        last.as_ref().is_some_and(&ok)
    });
    assert!(hit, "rotation never reached {what}: {last:?}\n{}", logs(ds));
    last.unwrap()
}

/// `etcdctl endpoint health` on node i's member with these files.
fn health(i: usize, ca: &Path, cert: &Path, key: &Path) -> bool {
    let url = format!("https://{}:2379", cluster_support::IPS[i]);
    support_etcd::etcdctl_health(&url, ca, cert, key).expect("run etcdctl")
}

/// The end state every node must be in: `ca.crt` holds `ca` alone, the same bytes on every
/// node; each leaf verifies with it and not with `other`; each member answers its own node's
/// healthcheck client and refuses `intruder` (a client certificate of `other`).
fn assert_end_state(ha: &Ha, ca: &Path, other: &Path, intruder: &(PathBuf, PathBuf)) {
    let want = certs_der(ca);
    for i in 0..3 {
        let p = pki(ha, i);
        assert_eq!(
            certs_der(&p.join("etcd/ca.crt")),
            want,
            "node {} ca.crt",
            i + 1
        );
        let bad = leaves_signed_by(&p, ca, other);
        assert!(bad.is_empty(), "node {}: {bad:#?}", i + 1);
        assert!(
            health(
                i,
                &p.join("etcd/ca.crt"),
                &p.join("etcd/healthcheck-client.crt"),
                &p.join("etcd/healthcheck-client.key")
            ),
            "node {} member refuses its own node's new material",
            i + 1
        );
        assert!(
            !health(i, &p.join("etcd/ca.crt"), &intruder.0, &intruder.1),
            "node {} member accepts a client certificate of the CA rotated out",
            i + 1
        );
    }
}

/// Every node ends on the new CA (as node 1 holds it), the old CA's client refused.
fn assert_on_new_ca(ha: &Ha, old: &Old) {
    let new_ca = old._dir.path().join("new-ca.crt");
    write_pem(&new_ca, &certs_der(&pki(ha, 0).join("etcd/ca.crt"))[0]);
    assert_ne!(certs_der(&new_ca), certs_der(&old.ca));
    assert_end_state(ha, &new_ca, &old.ca, &old.intruder);
}

/// The writer's longest gap, printed for BENCHMARKS.md, at most 3 s.
fn assert_gap(gap: Duration, what: &str) {
    println!("LONGEST_WRITE_GAP seconds={:.2}{what}", gap.as_secs_f64());
    assert!(
        gap <= Duration::from_secs(3),
        "etcd was not writable for {gap:?}"
    );
}

struct Old {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    intruder: (PathBuf, PathBuf),
}

/// The old CA (from node 1) and a client certificate it signs, accepted before the rotation
/// (so the refusal at the end is the rotation's doing).
fn old_ca(ha: &Ha) -> Old {
    let dir = tempfile::tempdir().unwrap();
    let (ca, key) = (dir.path().join("old-ca.crt"), dir.path().join("old-ca.key"));
    std::fs::copy(pki(ha, 0).join("etcd/ca.crt"), &ca).unwrap();
    std::fs::copy(pki(ha, 0).join("etcd/ca.key"), &key).unwrap();
    let intruder = client_cert(dir.path(), &ca, &key);
    assert!(
        health(0, &ca, &intruder.0, &intruder.1),
        "the old CA's client is accepted before"
    );
    Old {
        _dir: dir,
        ca,
        intruder,
    }
}

#[test]
fn three_daemons_rotate_the_etcd_ca_one_node_at_a_time_and_etcd_stays_writable() {
    let Some(ha) = Ha::start() else { return };
    let t0 = SystemTime::now();
    let old = old_ca(&ha);
    let writer = Writer::start(ha.node(0));
    let mut ds = ha.daemons(&[0, 1, 2], CFG);
    let refs: Vec<&Daemon> = ds.iter().collect();
    let started = Instant::now();
    let out = ha.cli(1, CFG, &["ca", "rotate", "etcd-ca"]);
    assert!(out.status.success());
    // While it runs, `cluster status` mentions it.
    let st = ha.cli(2, CFG, &["cluster", "status"]);
    assert!(String::from_utf8_lossy(&st.stdout).contains("CA rotation: etcd-ca rotation"));
    let end = wait_record(&ha, &refs, "done", |r| r.phase == Phase::Done);
    let wall = started.elapsed();
    let (gap, writes) = writer.finish();
    for d in &mut ds {
        d.stop();
    }
    assert_eq!(
        end.history.iter().map(|h| h.phase).collect::<Vec<_>>(),
        [Phase::TrustBoth, Phase::Reissue, Phase::TrustNew]
    );
    assert!(
        end.new_key.is_none(),
        "the sealed key stays in etcd after the rotation"
    );
    assert_one_node_down_at_a_time(&ha.down());
    // Restarts per node, as each kubelet saw them (stops of each manifest since the start).
    let restarts: Vec<Vec<usize>> = (0..3)
        .map(|i| FILES.iter().map(|f| ha.stops(i, f, t0)).collect())
        .collect();
    println!(
        "BENCH ca_rotation_3_nodes_seconds={:.1} restarts_per_node={}",
        wall.as_secs_f64(),
        restarts
            .iter()
            .enumerate()
            .map(|(i, r)| format!(
                "cp{}:etcd={},kube-apiserver={},other={}",
                i + 1,
                r[0],
                r[1],
                r[2] + r[3]
            ))
            .collect::<Vec<_>>()
            .join(";")
    );
    // The floor, and nothing more: 3 etcd and 3 kube-apiserver restarts per node.
    for (i, r) in restarts.iter().enumerate() {
        assert_eq!(r, &[3, 3, 0, 0], "node {} restarts of {FILES:?}", i + 1);
    }
    assert_on_new_ca(&ha, &old);
    assert_gap(gap, &format!(" writes={writes}"));
    let st = ha.cli(0, CFG, &["ca", "status"]);
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(text.contains("Phase:      done, progress 100%"), "{text}");
}

#[test]
fn a_daemon_killed_mid_rotation_picks_its_step_up_again_after_a_restart() {
    let Some(ha) = Ha::start() else { return };
    let old = old_ca(&ha);
    let writer = Writer::start(ha.node(0));
    let mut ds = ha.daemons(&[0, 1, 2], CFG);
    assert!(ha
        .cli(0, CFG, &["ca", "rotate", "etcd-ca"])
        .status
        .success());
    // Node 2's etcd parked during its reissue step: SIGKILL its daemon there.
    let parked = ha.node(1).parking().join("etcd.yaml");
    let caught = KubeletHarness::wait_until(LIMIT, || {
        parked.exists() && record(&ha).is_some_and(|r| r.phase == Phase::Reissue)
    });
    assert!(caught, "{}", logs(&ds.iter().collect::<Vec<_>>()));
    ds[1].kill();
    let killed_log = ds[1].log_text();
    // A while with node 2's member down and its daemon dead: the others must not restart
    // their etcd (the quorum guard), whatever they do.
    std::thread::sleep(Duration::from_secs(8));
    assert!(parked.exists(), "someone moved node 2's manifest back");
    ds[1] = ha.node(1).daemon(&ha.node(1).write_config(CFG));
    let refs: Vec<&Daemon> = ds.iter().collect();
    wait_record(&ha, &refs, "done", |r| r.phase == Phase::Done);
    let (gap, _) = writer.finish();
    for d in &mut ds {
        d.stop();
    }
    // Never two etcd members down at once.
    let etcd_only: Vec<Vec<_>> = ha
        .down()
        .into_iter()
        .map(|v| v.into_iter().filter(|(f, _, _)| f == "etcd.yaml").collect())
        .collect();
    assert_one_node_down_at_a_time(&etcd_only);
    assert_on_new_ca(&ha, &old);
    let relog = ds[1].log_text();
    println!("--- node 2's daemon, killed then restarted:\n{relog}");
    assert!(
        relog.contains("reissue done on cp2"),
        "the restarted daemon did not finish its step:\n{killed_log}\n-----\n{relog}"
    );
    assert_gap(gap, " (one daemon killed)");
}

#[test]
fn abort_during_reissue_returns_every_node_to_the_old_ca() {
    let Some(ha) = Ha::start() else { return };
    let old = old_ca(&ha);
    let old_key = std::fs::read(pki(&ha, 0).join("etcd/ca.key")).unwrap();
    let writer = Writer::start(ha.node(0));
    let mut ds = ha.daemons(&[0, 1, 2], CFG);
    let refs: Vec<&Daemon> = ds.iter().collect();
    assert!(ha
        .cli(0, CFG, &["ca", "rotate", "etcd-ca"])
        .status
        .success());
    wait_record(&ha, &refs, "reissue", |r| r.phase == Phase::Reissue);
    // From now on each kube-apiserver drains for a while on SIGTERM (the stand-in kubelet
    // kills it after 5 s), so a reissue step takes a few seconds longer: time to abort
    // after the first node has re-issued and before the last one has.
    for i in 0..3 {
        ha.node(i).hook("kube-apiserver.slowexit", Some("8"));
    }
    let r = wait_record(&ha, &refs, "reissue done on a node", |r| {
        r.phase != Phase::Reissue || !r.done.is_empty()
    });
    assert_eq!(
        r.phase,
        Phase::Reissue,
        "the reissue phase ended before the test could abort it"
    );
    // The new CA and a client certificate it signs (a node that re-issued holds its key).
    let k: usize = r.done.keys().next().unwrap()[2..].parse::<usize>().unwrap() - 1;
    let dir = old._dir.path().join("new");
    std::fs::create_dir_all(&dir).unwrap();
    let (new_ca, new_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    write_pem(&new_ca, &certs_der(&pki(&ha, k).join("etcd/ca.crt"))[0]);
    std::fs::copy(pki(&ha, k).join("etcd/ca.key"), &new_key).unwrap();
    assert_ne!(certs_der(&new_ca), certs_der(&old.ca));
    let new_intruder = client_cert(&dir, &new_ca, &new_key);
    let out = ha.cli(2, CFG, &["ca", "rotate", "etcd-ca", "--abort"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("reissue-old begins"));
    for i in 0..3 {
        ha.node(i).hook("kube-apiserver.slowexit", None);
    }
    let end = wait_record(&ha, &refs, "aborted", |r| r.phase == Phase::Aborted);
    let (gap, _) = writer.finish();
    for d in &mut ds {
        d.stop();
    }
    assert!(end.aborted_by.is_some() && end.new_key.is_none());
    assert_eq!(
        end.history.iter().map(|h| h.phase).collect::<Vec<_>>(),
        [
            Phase::TrustBoth,
            Phase::Reissue,
            Phase::ReissueOld,
            Phase::UntrustNew
        ]
    );
    // Once aborted, another abort is refused with a reason.
    let again = ha.cli(0, CFG, &["ca", "rotate", "etcd-ca", "--abort"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is over (aborted)"));
    assert_one_node_down_at_a_time(&ha.down());
    assert_end_state(&ha, &old.ca, &new_ca, &new_intruder);
    for i in 0..3 {
        assert_eq!(
            std::fs::read(pki(&ha, i).join("etcd/ca.key")).unwrap(),
            old_key,
            "node {} ca.key is not the old key, byte for byte",
            i + 1
        );
    }
    assert_gap(gap, " (abort)");
}

/// A failing step on an HA control plane: node 2's kube-apiserver refuses the etcd client
/// certificate the new CA re-issued (`kube-apiserver.accept`: it starts only with the one it
/// has now). Node 2's reissue step is rolled back (its files from the step's backup,
/// kube-apiserver and etcd restarted on them), the halt record names it, no other node moves
/// on, and `ca status` and `cluster status` say so. The operator removes the cause and runs
/// `cluster resume`: the rotation goes on to done, with every end check.
#[test]
fn a_failing_step_rolls_back_halts_the_others_and_cluster_resume_finishes_the_rotation() {
    let Some(ha) = Ha::start() else { return };
    let old = old_ca(&ha);
    let p2 = pki(&ha, 1);
    let client = "/etc/kubernetes/pki/apiserver-etcd-client.crt";
    let client_now = std::fs::read_to_string(p2.join("apiserver-etcd-client.crt")).unwrap();
    ha.node(1).hook(
        "kube-apiserver.accept",
        Some(&serde_json::json!({ client: client_now }).to_string()),
    );
    // Node 2's files from before the rotation that its reissue step replaces.
    let files: Vec<String> = LEAVES
        .iter()
        .flat_map(|l| [l.to_string(), l.replace(".crt", ".key")])
        .chain(["etcd/ca.key".to_string()])
        .collect();
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(p2.join(f)).unwrap())
        .collect();
    let writer = Writer::start(ha.node(0));
    let mut ds = ha.daemons(&[0, 2], CFG);
    let cfg2 = ha.node(1).write_config(CFG);
    let text = std::fs::read_to_string(&cfg2).unwrap();
    std::fs::write(&cfg2, text.replace("timeout: 60s", "timeout: 8s")).unwrap();
    ds.insert(1, ha.node(1).daemon(&cfg2));
    let refs: Vec<&Daemon> = ds.iter().collect();
    assert!(ha
        .cli(0, CFG, &["ca", "rotate", "etcd-ca"])
        .status
        .success());
    let mut seen = None;
    let hit = KubeletHarness::wait_until(LIMIT, || {
        seen = halt(&ha);
        seen.is_some()
    });
    assert!(hit, "no halt record\n{}", logs(&refs));
    let h = seen.unwrap();
    assert_eq!(
        (h.node.as_str(), h.component.as_str()),
        ("cp2", "kube-apiserver")
    );
    // Node 2's daemon finishes its rollback (etcd restarted on the files put back), then
    // gives the lock back.
    let said = "the step's files were restored from the step's backup; etcd restarted on them; the rotation is halted";
    let rolled = KubeletHarness::wait_until(LIMIT, || ds[1].log_text().contains(said));
    assert!(rolled, "{}", ds[1].log_text());
    let held = wait_record(&ha, &refs, "reissue", |r| r.phase == Phase::Reissue);
    assert!(!held.done.contains_key("cp2"), "{held:?}");
    // Node 2 is as after trust-both: bundle old then new, the old key and the old leaves.
    let new_der = pem::parse(&held.new_ca).unwrap().into_contents();
    assert_eq!(
        certs_der(&p2.join("etcd/ca.crt")),
        [certs_der(&old.ca)[0].clone(), new_der]
    );
    for (f, b) in files.iter().zip(&before) {
        assert!(
            &std::fs::read(p2.join(f)).unwrap() == b,
            "node 2 {f} not restored"
        );
    }
    // No other node moves on while the halt stands.
    let t_halt = SystemTime::now();
    std::thread::sleep(Duration::from_secs(6));
    ha.assert_no_stops(&[0, 2], t_halt);
    assert_eq!(
        record(&ha).unwrap().done,
        held.done,
        "progress during the halt"
    );
    let st = ha.cli(2, CFG, &["ca", "status"]);
    let text = String::from_utf8_lossy(&st.stdout).to_string();
    assert!(
        text.contains("Halt: halted by cp2") && text.contains("STEP OF REISSUE"),
        "{text}"
    );
    let st = ha.cli(0, CFG, &["cluster", "status"]);
    let text = String::from_utf8_lossy(&st.stdout).to_string();
    assert!(
        text.contains("Halt: halted by cp2") && text.contains("CA rotation: etcd-ca rotation"),
        "{text}"
    );
    // Fixed, resumed: the rotation ends on the new CA everywhere.
    ha.node(1).hook("kube-apiserver.accept", None);
    let out = ha.cli(2, CFG, &["cluster", "resume"]);
    assert!(out.status.success());
    wait_record(&ha, &refs, "done", |r| r.phase == Phase::Done);
    let (gap, _) = writer.finish();
    for d in &mut ds {
        d.stop();
    }
    assert_one_node_down_at_a_time(&ha.down());
    assert_on_new_ca(&ha, &old);
    assert_gap(gap, " (a failed step, rolled back)");
}
