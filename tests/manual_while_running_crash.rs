//! A manual command SIGKILLed mid-write while `run` is active (issue 19): the daemon holds no
//! lock between its cycles, so nothing but its next cycle is there to finish what the command
//! left. It must, without anyone running `recover`: roll the journal forward, and carry out
//! the restarts the command owed.
//!
//! Run with `CARGO_TARGET_DIR=target/failpoints cargo test --features failpoints --test
//! manual_while_running_crash` (the crash suite's node, binary and checks: tests/crash_support).
#![cfg(feature = "failpoints")]

mod crash_support;

use crash_support::kubelet::KubeletHarness;
use crash_support::*;
use std::time::SystemTime;

#[test]
fn a_command_killed_mid_write_is_recovered_by_the_running_daemons_next_cycle() {
    let mut n = Node::new();
    // The leaves (3 days left) are not due for the daemon: only the command renews. The
    // kubelet's client certificate is left alone (its revival would restart the kubelet).
    std::fs::write(
        n.p("etc/kubeadm-certd/config.yaml"),
        "renewBefore: 2d\nkubelet:\n  reviveClientCert: false\nrestart:\n  timeout: 60s\n",
    )
    .expect("config");
    n.start_kubelet();
    let mut daemon = n.spawn(&["run"], None);
    daemon.wait_for_stderr("certificates ok");
    assert!(n.backups().is_empty(), "the daemon renewed something");

    let t0 = SystemTime::now();
    let point = "renew::between-key-and-cert=delay(60000)";
    let mut renew = n.spawn(&["renew", "all"], Some(point));
    // The first key is renamed in, its certificate not: a mismatched pair on disk, and a
    // change in pki/ that starts a daemon cycle, which waits for the command's lock.
    renew.wait_at_point(point, || committed_first(&n, ".key"));
    renew.sigkill();

    // No `recover`: the daemon's waiting cycle gets the lock and finishes the commit.
    let done = KubeletHarness::wait_until(LIMIT, || {
        journal(&n).is_none() && n.staged_files().is_empty()
    });
    assert!(
        done,
        "the daemon did not finish the interrupted renewal\n{}",
        daemon.stderr()
    );
    daemon.wait_for_stderr("finished interrupted renewal");
    // The command owed restarts of every component using the renewed files: the daemon's
    // cycle carries them out (within its restart budget), one at a time.
    let h = n.kubelet();
    let restarted = KubeletHarness::wait_until(LIMIT, || {
        COMPONENTS
            .iter()
            .all(|c| !started_since(h, c, t0).is_empty())
    });
    assert!(
        restarted,
        "components still run on the certificates from before the renewal\n{}",
        daemon.stderr()
    );
    assert_node_sound(&n, &renew_all_files(), true);
    assert_eq!(
        outcome(&n, &renew_all_files(), &daemon.stderr()),
        Outcome::RolledForward
    );
    assert!(
        !std::fs::read_to_string(n.p(&format!("{STATE}/restarts-owed.json")))
            .is_ok_and(|s| s.contains("kube")),
        "restarts still owed"
    );
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let d = daemon.finish();
    d.assert_ok("the daemon");
}
