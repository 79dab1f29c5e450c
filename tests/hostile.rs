//! The hostile-input corpus (issue 6, item 3). Each case breaks one thing on a copy of a test
//! node, runs the command where that thing matters, and asserts: one `error:` line naming the
//! file and what is wrong, a non-zero exit (no panic, no hang, no crash), an unchanged node tree
//! (bytes, modes, symlink targets; the state dir excluded) and no staged file left anywhere.
//! A few cases ("either") accept a success too, and then check that the result is sound.

mod hostile_support;

#[path = "hostile/inputs.rs"]
mod inputs;
#[path = "hostile/kubelet.rs"]
mod kubelet;
#[path = "hostile/pki.rs"]
mod pki;
#[path = "hostile/required.rs"]
mod required;

use hostile_support::certs::{self, OsslLeaf};
use hostile_support::{
    can_mount, expect_failure, expect_failures, failure_problems, mount_read_only, mount_tmpfs,
    openssl, run, sh, staged_files, tree, tree_diff, Needles, Node, Run,
};
use std::path::Path;

const CRT: &str = "/etc/kubernetes/pki/apiserver.crt";
const KEY: &str = "/etc/kubernetes/pki/apiserver.key";
const CA_CRT: &str = "/etc/kubernetes/pki/ca.crt";
const CA_KEY: &str = "/etc/kubernetes/pki/ca.key";
const ADMIN: &str = "/etc/kubernetes/admin.conf";
const SCHED: &str = "/etc/kubernetes/manifests/kube-scheduler.yaml";
const RENEW: &[&str] = &["renew", "all", "--no-restart"];
const CHECK: &[&str] = &["check-expiration"];
/// Restarts fail fast if they get as far as a hold.
const QUICK_RESTART: &str = "restart:\n  timeout: 5s\n  minHold: 1s\n";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mkfifo(p: &Path) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// Run once; on success call `ok` (which checks the result), else check a clean failure.
fn either(node: &Node, args: &[&str], needles: Needles, ok: impl FnOnce(&Node, &Run)) {
    let before = tree(&node.root);
    let r = run(&node.root, None, args);
    if r.code == Some(0) && !r.hung {
        eprintln!("`{}` succeeded; checking the result", args.join(" "));
        ok(node, &r);
        return;
    }
    let mut p = failure_problems(&r, needles);
    let diff = tree_diff(&before, &tree(&node.root));
    if !diff.is_empty() {
        p.push(format!(
            "failed run changed the tree:\n  {}",
            diff.join("\n  ")
        ));
    }
    let staged = staged_files(&node.root);
    if !staged.is_empty() {
        p.push(format!("failed run left staged files: {staged:?}"));
    }
    assert!(p.is_empty(), "{}", p.join("\n"));
}

/// `openssl verify` of the node's apiserver.crt against ca.crt.
fn assert_verifies(node: &Node) {
    let out = openssl(&["verify", "-CAfile", s(&node.p(CA_CRT)), s(&node.p(CRT))]);
    assert!(String::from_utf8_lossy(&out).trim().ends_with(": OK"));
}

/// Nine levels of nine aliases each: 9^9 strings if expanded.
fn alias_bomb(last: &str) -> String {
    let mut y = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        y.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    y + last
}
