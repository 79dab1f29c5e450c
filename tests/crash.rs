//! Crash at every step (issue 6 item 2): run the binary with a failpoint, wait until it sits
//! at the point, SIGKILL it (or let the `panic` action abort it), then run `recover` or start
//! the daemon again, and check the node: manifests back byte-identical, every pair matching
//! and chaining to its CA, every kubeconfig parsing with a matching pair, no temp file, and
//! the material from before the change in the backup.
//!
//! Run with `cargo test --features failpoints --test crash`. Failpoints use `delay`, a busy
//! wait, so that the test can tell from CPU time that the process sits at the point.
#![cfg(feature = "failpoints")]

mod crash_support;
#[path = "crash_support/revive.rs"]
mod revive_crash;
#[path = "revive_support/mod.rs"]
mod revive_support;

use crash_support::*;
use std::time::SystemTime;

const SPIN: &str = "delay(60000)";

fn fp(point: &str, action: &str) -> String {
    format!("{point}={action}")
}

/// A node with its stand-in kubelet running.
fn live_node() -> Node {
    let mut n = Node::new();
    n.start_kubelet();
    n
}

/// `recover`, then every check; returns the outcome.
fn recover_and_check(n: &Node, changed: &[String], past_backup: bool) -> Outcome {
    let r = n.run(&["recover"]);
    r.assert_ok("recover");
    assert_node_sound(n, changed, past_backup);
    let o = outcome(n, changed, &r.stdout);
    eprintln!("outcome: {o}\nrecover said:\n{}", r.stdout);
    o
}

/// `renew all` stopped at `point` (SIGKILL once `evidence` holds), then `recover`.
fn renew_crash(point: &str, evidence: impl FnMut(&Node) -> bool, past_backup: bool) -> Outcome {
    let n = live_node();
    let spec = point.to_string();
    let mut run = n.spawn(&["renew", "all"], Some(&spec));
    let mut evidence = evidence;
    run.wait_at_point(point, || evidence(&n));
    run.sigkill();
    let o = recover_and_check(&n, &renew_all_files(), past_backup);
    assert_all_running(&n);
    o
}

#[test]
fn after_backup() {
    let files = renew_all_files();
    let o = renew_crash(
        &fp("renew::after-backup", SPIN),
        |n| backed_up(n, &files) && n.staged_files().is_empty(),
        true,
    );
    assert_eq!(o, Outcome::Untouched);
}

#[test]
fn after_stage() {
    let o = renew_crash(
        &fp("renew::after-stage", SPIN),
        |n| journal(n).is_some(),
        true,
    );
    assert_eq!(o, Outcome::RolledForward);
}

#[test]
fn between_key_and_cert() {
    let o = renew_crash(
        &fp("renew::between-key-and-cert", SPIN),
        |n| committed_first(n, ".key"),
        true,
    );
    assert_eq!(o, Outcome::RolledForward);
}

#[test]
fn after_kubeconfig_rename() {
    let o = renew_crash(
        &fp("renew::mid-kubeconfig", SPIN),
        |n| committed_first(n, ".conf"),
        true,
    );
    assert_eq!(o, Outcome::RolledForward);
}

#[test]
fn mid_commit() {
    let o = renew_crash(
        &fp("renew::mid-commit", SPIN),
        |n| committed_first(n, ""),
        true,
    );
    assert_eq!(o, Outcome::RolledForward);
}

/// Staged writes of `renew all`: 20 backup copies, then admin.conf, the apiserver,
/// apiserver-etcd-client and apiserver-kubelet-client pairs (handler order), then
/// controller-manager.conf: skipping 27 hits stops half-way through controller-manager.conf.
const MID_CM_CONF: &str = "atomic::mid-write=27*off->delay(60000)";
const CM_CONF_STAGED: &str = "etc/kubernetes/.controller-manager.conf.kubeadm-certd-new";

#[test]
fn mid_kubeconfig_write() {
    let o = renew_crash(MID_CM_CONF, |n| n.p(CM_CONF_STAGED).exists(), true);
    assert_eq!(o, Outcome::RolledBack);
}

/// The first staged write of `renew all` is the backup copy of admin.conf.
#[test]
fn mid_backup_write() {
    let n = live_node();
    let point = fp("atomic::mid-write", SPIN);
    let mut run = n.spawn(&["renew", "all"], Some(&point));
    run.wait_at_point(&point, || {
        n.staged_files().iter().any(|f| f.starts_with(BACKUPS))
    });
    run.sigkill();
    let r = n.run(&["recover"]);
    r.assert_ok("recover");
    // The checks hold: the renewal never began.
    assert_node_sound(&n, &renew_all_files(), false);
    assert_eq!(
        outcome(&n, &renew_all_files(), &r.stdout),
        Outcome::Untouched
    );
    // But the half-written copy (half of admin.conf, key included) stays in the backup.
    let left = n.staged_files();
    assert!(left.is_empty(), "temp files left after recover: {left:?}");
}

/// `renew all` stopped in the restarts that follow it.
fn restart_crash(point: &str, evidence: impl FnMut(&Node) -> bool) -> Outcome {
    renew_crash(point, evidence, true)
}

fn parked(n: &Node, component: &str) -> bool {
    n.p(&format!("{PARKING}/{component}.yaml")).exists()
}

#[test]
fn after_park() {
    // The second component: etcd has restarted, the API server is parked.
    let o = restart_crash(&fp("restart::after-park", "1*off->delay(60000)"), |n| {
        parked(n, "kube-apiserver")
    });
    assert_eq!(o, Outcome::Recovered);
}

#[test]
fn during_hold() {
    // Spinning proves the hold (a sleep) has ended: the process is past it, at the point.
    let o = restart_crash(&fp("restart::during-hold", SPIN), |n| parked(n, "etcd"));
    assert_eq!(o, Outcome::Recovered);
}

#[test]
fn after_unpark() {
    let mut seen_parked = false;
    let o = restart_crash(&fp("restart::after-unpark", SPIN), move |n| {
        seen_parked |= parked(n, "etcd");
        seen_parked && !parked(n, "etcd") && n.p(&format!("{MANIFESTS}/etcd.yaml")).exists()
    });
    assert_eq!(o, Outcome::Recovered);
}

/// `renew all` aborted by a panic at `point`, then `recover`.
fn panic_crash(point: &str) -> Outcome {
    let n = live_node();
    let d = n
        .spawn(&["renew", "all"], Some(&fp(point, "panic")))
        .finish();
    assert!(!d.status.success(), "{point}: no panic\n{}", d.stderr);
    assert!(
        d.stderr.contains(&format!("failpoint {point} panic")),
        "{point}: did not panic at the point\n{}",
        d.stderr
    );
    let o = recover_and_check(&n, &renew_all_files(), true);
    assert_all_running(&n);
    o
}

#[test]
fn panic_between_key_and_cert() {
    assert_eq!(
        panic_crash("renew::between-key-and-cert"),
        Outcome::RolledForward
    );
}

#[test]
fn panic_during_hold() {
    assert_eq!(panic_crash("restart::during-hold"), Outcome::Recovered);
}

/// A panic between park and unpark in a one-shot command: `restart_one`'s guard puts the
/// manifest back while the panic unwinds, before any recovery runs. Without the guard it stayed
/// parked until the next run (a cargo-mutants survivor, see TESTING.md).
#[test]
fn panic_after_park_puts_the_manifest_back_on_unwind() {
    let n = live_node();
    let point = "restart::after-park";
    let d = n
        .spawn(&["renew", "all"], Some(&fp(point, "panic")))
        .finish();
    assert!(!d.status.success(), "no panic\n{}", d.stderr);
    assert!(
        d.stderr.contains(&format!("failpoint {point} panic")),
        "did not panic at the point\n{}",
        d.stderr
    );
    // Nothing has run `recover`: only the unwinding guard can have moved it back.
    assert!(!parked(&n, "etcd"), "still parked\n{}", d.stderr);
    assert!(n.p(&format!("{MANIFESTS}/etcd.yaml")).exists());
}

/// A node with `apiserver.key` and `.csr` from `renew --csr-only`, and `apiserver.crt` signed
/// by the node's CA with openssl, in `<root>/csr`.
fn signed_node() -> Node {
    let mut n = Node::new();
    let csr = n.p("csr");
    let dir = csr.to_str().expect("utf-8").to_string();
    n.run(&["renew", "--csr-only", "--csr-dir", &dir, "apiserver"])
        .assert_ok("renew --csr-only");
    let ext = n.p("csr/ext.cnf");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    let s = |rel: &str| n.p(rel).to_str().expect("utf-8").to_string();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &s("csr/apiserver.csr"),
        "-CA",
        &s(&format!("{PKI}/ca.crt")),
        "-CAkey",
        &s(&format!("{PKI}/ca.key")),
        "-set_serial",
        "0x1d2c3b4a59687766",
        "-days",
        "365",
        "-copy_extensions",
        "copyall",
        "-extfile",
        &s("csr/ext.cnf"),
        "-out",
        &s("csr/apiserver.crt"),
    ]);
    n.pre = n.snapshot();
    n.start_kubelet();
    n
}

fn apiserver_files() -> Vec<String> {
    vec![
        format!("{PKI}/apiserver.key"),
        format!("{PKI}/apiserver.crt"),
    ]
}

/// `install-signed` stopped at `point`, then `recover`.
fn install_crash(point: &str, evidence: impl Fn(&Node, u32) -> bool, past_backup: bool) -> Node {
    let n = signed_node();
    let dir = n.p("csr").to_str().expect("utf-8").to_string();
    let mut run = n.spawn(
        &["install-signed", "--csr-dir", &dir, "apiserver"],
        Some(point),
    );
    let pid = run.pid();
    run.wait_at_point(point, || evidence(&n, pid));
    run.sigkill();
    let o = recover_and_check(&n, &apiserver_files(), past_backup);
    eprintln!("install-signed at {point}: {o}");
    assert_all_running(&n);
    n
}

#[test]
fn install_signed_before_commit() {
    let point = fp("install-signed::before-commit", SPIN);
    let n = install_crash(
        &point,
        |n, pid| {
            // It holds the lock (so its recovery is done) and has written nothing.
            std::fs::read_to_string(n.p(&format!("{STATE}/lock")))
                .is_ok_and(|p| p.split_whitespace().next() == Some(pid.to_string().as_str()))
        },
        false,
    );
    assert_eq!(outcome(&n, &apiserver_files(), ""), Outcome::Untouched);
    assert!(n.backups().is_empty(), "a backup before the commit began");
}

#[test]
fn install_signed_between_key_and_cert() {
    let point = fp("renew::between-key-and-cert", SPIN);
    let n = install_crash(&point, |n, _| committed_first(n, ".key"), true);
    // Rolled forward to the externally signed pair.
    let post = n.snapshot();
    assert_eq!(
        post[&format!("{PKI}/apiserver.key")],
        n.pre["csr/apiserver.key"]
    );
    let der = |b: &[u8]| pem::parse(b).expect("PEM").into_contents();
    assert_eq!(
        der(&post[&format!("{PKI}/apiserver.crt")]),
        der(&n.pre["csr/apiserver.crt"])
    );
}

#[test]
fn install_signed_mid_write() {
    // Two backup copies, then the staged key: the third write stops half-way.
    let point = "atomic::mid-write=2*off->delay(60000)";
    let n = install_crash(
        point,
        |n, _| {
            n.p(&format!("{PKI}/.apiserver.key{STAGED_SUFFIX}"))
                .exists()
        },
        true,
    );
    let post = n.snapshot();
    for f in apiserver_files() {
        assert_eq!(post.get(&f), n.pre.get(&f), "{f} changed");
    }
}

/// `renew all` stopped at `point`, SIGKILLed, then the daemon started again (`run --once`).
/// Also returns when the crashed run started.
fn daemon_after_crash(
    point: &str,
    evidence: impl FnMut(&Node) -> bool,
) -> (Node, Done, SystemTime) {
    let n = live_node();
    let t0 = SystemTime::now();
    let mut run = n.spawn(&["renew", "all"], Some(point));
    let mut evidence = evidence;
    run.wait_at_point(point, || evidence(&n));
    run.sigkill();
    let d = n.run(&["run", "--once"]);
    d.assert_ok("run --once");
    assert_node_sound(&n, &renew_all_files(), true);
    assert_all_running(&n);
    (n, d, t0)
}

#[test]
fn daemon_after_stage() {
    let (n, d, _) = daemon_after_crash(&fp("renew::after-stage", SPIN), |n| journal(n).is_some());
    assert_eq!(
        outcome(&n, &renew_all_files(), &d.stderr),
        Outcome::RolledForward
    );
}

#[test]
fn daemon_mid_kubeconfig_write() {
    let (n, d, _) = daemon_after_crash(MID_CM_CONF, |n| n.p(CM_CONF_STAGED).exists());
    assert!(
        d.stderr.contains("removed unfinished temp file"),
        "{}",
        d.stderr
    );
    // Rolled back, then the daemon's own cycle renewed everything that was due.
    let post = n.snapshot();
    for f in renew_all_files() {
        assert_ne!(post.get(&f), n.pre.get(&f), "{f} not renewed by the daemon");
    }
}

#[test]
fn daemon_after_park() {
    let (n, d, _) = daemon_after_crash(&fp("restart::after-park", "1*off->delay(60000)"), |n| {
        parked(n, "kube-apiserver")
    });
    assert!(d.stderr.contains("moved parked manifest"), "{}", d.stderr);
    assert_eq!(
        outcome(&n, &renew_all_files(), &d.stderr),
        Outcome::Recovered
    );
}

/// After a crash that leaves renewed files on disk but the components not restarted, the
/// daemon must restart every component that uses them: otherwise they keep serving the old
/// certificates from memory until those expire.
fn restarts_after(point: &str, evidence: impl FnMut(&Node) -> bool) {
    let (n, d, t0) = daemon_after_crash(point, evidence);
    let h = n.kubelet();
    let stale: Vec<&str> = COMPONENTS
        .into_iter()
        .filter(|c| started_since(h, c, t0).is_empty())
        .collect();
    assert!(
        stale.is_empty(),
        "after {point} and `run --once`, these components still run the processes from before \
         the renewal, with the old certificates in memory: {stale:?}\ndaemon:\n{}",
        d.stderr
    );
}

#[test]
fn daemon_restarts_components_after_rolling_forward() {
    restarts_after(&fp("renew::after-stage", SPIN), |n| journal(n).is_some());
}

#[test]
fn daemon_restarts_components_left_after_a_crash_mid_restart() {
    restarts_after(&fp("restart::after-park", "1*off->delay(60000)"), |n| {
        parked(n, "kube-apiserver")
    });
}

/// The panic action inside the running daemon: a restart in a later cycle (started by a
/// reload) panics with etcd parked. The daemon survives the panic; whether it goes on or is
/// stopped, it must not leave a control-plane manifest parked behind it.
#[test]
fn daemon_panic_in_a_later_cycle_leaves_nothing_parked() {
    use nix::sys::signal::Signal;
    let n = live_node();
    let cfg = n.p("etc/kubeadm-certd/config.yaml");
    // Leaves have 3 days left: not due with renewBefore 2d, due with 30d.
    std::fs::write(&cfg, "renewBefore: 2d\nrestart:\n  timeout: 60s\n").expect("config");
    let mut d = n.spawn(&["run"], Some(&fp("restart::after-park", "panic")));
    d.wait_for_stderr("certificates ok");
    std::fs::write(&cfg, "renewBefore: 30d\nrestart:\n  timeout: 60s\n").expect("config");
    d.signal(Signal::SIGHUP);
    d.wait_for_stderr("failpoint restart::after-park panic");
    d.wait_for_stderr("cycle failed");
    d.signal(Signal::SIGTERM);
    let done = d.finish();
    eprintln!("daemon exit: {}\n{}", done.status, done.stderr);
    assert_node_sound(&n, &renew_all_files(), true);
}

// The kubelet file edits: `kubelet-serving-certs` (config.yaml) and `repair-kubelet-conf`.

/// `args` stopped at `point`, then `recover`; `file` is the one file the command edits.
fn file_edit_crash(n: Node, args: &[&str], point: &str, file: &str) -> Outcome {
    let staged = {
        let p = std::path::Path::new(file);
        let name = p.file_name().expect("name").to_string_lossy();
        p.with_file_name(format!(".{name}{STAGED_SUFFIX}"))
    };
    let mut run = n.spawn(args, Some(point));
    run.wait_at_point(point, || {
        if point.starts_with("atomic::") {
            n.p(staged.to_str().expect("utf-8")).exists()
        } else {
            backed_up(&n, &[file.to_string()])
        }
    });
    run.sigkill();
    recover_and_check(&n, &[file.to_string()], true)
}

fn kubelet_edit_crash(point: &str) -> Outcome {
    let n = live_node();
    let args = ["kubelet-serving-certs", "enable", "--no-restart"];
    file_edit_crash(n, &args, point, KUBELET_CONFIG)
}

#[test]
fn before_kubelet_config_write() {
    assert_eq!(
        kubelet_edit_crash(&fp("kubelet-edit::mid-write", SPIN)),
        Outcome::Untouched
    );
}

#[test]
fn mid_kubelet_config_write() {
    // The backup copy, then the staged config: the second write stops half-way.
    assert_eq!(
        kubelet_edit_crash("atomic::mid-write=1*off->delay(60000)"),
        Outcome::RolledBack
    );
}

/// A node whose kubelet.conf embeds the kubelet's client pair (clusters made before
/// kubeadm 1.17), the input of `repair-kubelet-conf`.
fn embedded_kubelet_conf_node() -> Node {
    use base64::Engine as _;
    let n = Node::new();
    // The kubelet's link is absolute: resolve it below the root.
    let link = n.p("var/lib/kubelet/pki/kubelet-client-current.pem");
    let real = kubeadm_certd::node::paths::Root::new(n.root())
        .resolve_chroot(&link)
        .expect("resolve");
    let pem = std::fs::read(real).expect("pem");
    let blocks = pem::parse_many(&pem).expect("pem blocks");
    let b64 = |tag: &str| {
        let b = blocks
            .iter()
            .find(|b| b.tag().contains(tag))
            .expect("block");
        base64::engine::general_purpose::STANDARD.encode(pem::encode(b))
    };
    let conf = n.p(&format!("{KUBECONFIG_DIR}/kubelet.conf"));
    let text = std::fs::read_to_string(&conf).expect("kubelet.conf");
    let refs = "    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem\n";
    assert!(text.contains(refs), "{text}");
    let embedded = format!(
        "    client-certificate-data: {}\n    client-key-data: {}\n",
        b64("CERTIFICATE"),
        b64("PRIVATE KEY")
    );
    std::fs::write(&conf, text.replace(refs, &embedded)).expect("write");
    Node::open(n.dir)
}

#[test]
fn before_kubelet_conf_repair_write() {
    let n = embedded_kubelet_conf_node();
    let point = fp("kubelet-conf::mid-write", SPIN);
    let file = format!("{KUBECONFIG_DIR}/kubelet.conf");
    let o = file_edit_crash(n, &["repair-kubelet-conf"], &point, &file);
    assert_eq!(o, Outcome::Untouched);
}

#[test]
fn mid_kubelet_conf_repair_write() {
    let n = embedded_kubelet_conf_node();
    let file = format!("{KUBECONFIG_DIR}/kubelet.conf");
    let point = "atomic::mid-write=1*off->delay(60000)";
    let o = file_edit_crash(n, &["repair-kubelet-conf"], point, &file);
    assert_eq!(o, Outcome::RolledBack);
}
