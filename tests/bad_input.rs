//! Issue 2 "Bad input": each case gets one clear line that names the file (by its host path)
//! and what is wrong, exit code 1, and a node tree left byte-identical (everything under the
//! root except the tool's own state directory, plus any files outside the root that a
//! symlink points at).

mod common;

use common::*;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// One pristine node per test binary; each case works on a copy.
fn fresh() -> Node {
    static TEMPLATE: OnceLock<Node> = OnceLock::new();
    Node::copy_of(TEMPLATE.get_or_init(Node::default_node))
}

const RENEW: &[&str] = &["renew", "all", "--no-restart"];
const CHECK: &[&str] = &["check-expiration"];

/// Run each command on the broken node: exit 1, one error line naming `file` and containing
/// one of `what`, nothing changed (also under `outside`, if given). Every command runs; the
/// failures of all of them are reported together.
#[track_caller]
fn expect_refusal(n: &Node, cmds: &[&[&str]], file: &str, what: &[&str], outside: Option<&Path>) {
    expect_refusal_lines(n, cmds, file, what, outside, false)
}

/// [`expect_refusal`]; with `per_file`, one error line for each affected file under `file`
/// (a directory) instead of exactly one.
#[track_caller]
fn expect_refusal_lines(
    n: &Node,
    cmds: &[&[&str]],
    file: &str,
    what: &[&str],
    outside: Option<&Path>,
    per_file: bool,
) {
    let mut fails = Vec::new();
    for cmd in cmds {
        let t = n.tree();
        let o = outside.map(|p| Tree::of(p, &[]));
        let Some(out) = n.run_watchdog(cmd, Duration::from_secs(60)) else {
            fails.push(format!(
                "{cmd:?} hung (still running after 60 s) on bad input {file}"
            ));
            continue;
        };
        let mut f = |m: String| {
            fails.push(format!(
                "{cmd:?}: {m}\n--- stdout\n{}--- stderr\n{}",
                out.stdout, out.stderr
            ))
        };
        if out.code != 1 {
            f(format!("exit code {}, want 1", out.code));
        }
        let errs = out.error_lines();
        if errs.is_empty() || (errs.len() != 1 && !per_file) {
            f(format!("{} error lines, want 1", errs.len()));
        }
        for line in &errs {
            let low = line.to_lowercase();
            if !line.contains(file) {
                f(format!("error line does not name {file}"));
            }
            if !what.iter().any(|w| low.contains(&w.to_lowercase())) {
                f(format!("error line does not say any of {what:?}"));
            }
            if line.contains(&n.root.display().to_string()) {
                f("error line names the temp path, not the host path".into());
            }
        }
        let d = t.diff(&n.tree());
        if !d.is_empty() {
            f(format!("the node tree changed: {d:?}"));
        }
        if let (Some(p), Some(o)) = (outside, &o) {
            let d = o.diff(&Tree::of(p, &[]));
            if !d.is_empty() {
                f(format!("files outside the root changed: {d:?}"));
            }
        }
        if !n.backups().is_empty() {
            f("a backup was made".into());
        }
    }
    assert!(
        fails.is_empty(),
        "bad input {file}:\n{}",
        fails.join("\n\n")
    );
}

fn cut_in_half(p: &Path) {
    let b = std::fs::read(p).unwrap();
    std::fs::write(p, &b[..b.len() / 2]).unwrap();
}

#[test]
fn truncated_cert() {
    let n = fresh();
    cut_in_half(&n.pki("apiserver.crt"));
    expect_refusal(
        &n,
        &[CHECK, RENEW],
        "/etc/kubernetes/pki/apiserver.crt",
        &["truncated"],
        None,
    );
}

#[test]
fn non_pem_cert() {
    let n = fresh();
    // The same certificate in DER form: a common mistake.
    let der = pem_ders(&std::fs::read(n.pki("front-proxy-client.crt")).unwrap()).remove(0);
    std::fs::write(n.pki("front-proxy-client.crt"), der).unwrap();
    expect_refusal(
        &n,
        &[CHECK, RENEW],
        "/etc/kubernetes/pki/front-proxy-client.crt",
        &["PEM"],
        None,
    );
}

#[test]
fn garbage_cert() {
    let n = fresh();
    std::fs::write(n.pki("etcd/server.crt"), "this is not a certificate\n").unwrap();
    expect_refusal(
        &n,
        &[CHECK, RENEW],
        "/etc/kubernetes/pki/etcd/server.crt",
        &["PEM"],
        None,
    );
}

#[test]
fn key_not_matching_its_cert() {
    let n = fresh();
    std::fs::copy(n.pki("front-proxy-client.key"), n.pki("apiserver.key")).unwrap();
    // kubeadm's check-expiration never reads keys; renewal must refuse the broken pair.
    expect_refusal(
        &n,
        &[RENEW],
        "/etc/kubernetes/pki/apiserver",
        &["match"],
        None,
    );
}

fn edit(p: &Path, f: impl FnOnce(String) -> String) {
    let t = std::fs::read_to_string(p).unwrap();
    let new = f(t.clone());
    assert_ne!(new, t, "edit of {} changed nothing", p.display());
    std::fs::write(p, new).unwrap();
}

fn replace_line(text: &str, starts: &str, with: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with(starts) {
                with.to_string()
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .filter(|l| l != "\n")
        .collect()
}

#[test]
fn kubeconfig_key_not_matching_its_cert() {
    let n = fresh();
    let other = std::fs::read_to_string(n.kc("scheduler.conf")).unwrap();
    let key_line = other
        .lines()
        .find(|l| l.trim_start().starts_with("client-key-data:"))
        .unwrap()
        .to_string();
    edit(&n.kc("admin.conf"), |t| {
        replace_line(&t, "client-key-data:", &key_line)
    });
    expect_refusal(&n, &[RENEW], "/etc/kubernetes/admin.conf", &["match"], None);
}

#[test]
fn kubeconfig_without_current_context() {
    let n = fresh();
    edit(&n.kc("controller-manager.conf"), |t| {
        replace_line(&t, "current-context:", "")
    });
    expect_refusal(
        &n,
        &[CHECK, RENEW],
        "/etc/kubernetes/controller-manager.conf",
        &["current-context"],
        None,
    );
}

#[test]
fn kubeconfig_with_file_references() {
    let n = fresh();
    edit(&n.kc("admin.conf"), |t| {
        let t = replace_line(
            &t,
            "client-certificate-data:",
            "    client-certificate: /etc/kubernetes/pki/admin.crt",
        );
        replace_line(
            &t,
            "client-key-data:",
            "    client-key: /etc/kubernetes/pki/admin.key",
        )
    });
    expect_refusal(
        &n,
        &[CHECK, RENEW],
        "/etc/kubernetes/admin.conf",
        &["client-certificate", "embedded"],
        None,
    );
}

#[test]
fn kubeconfig_with_invalid_base64() {
    let n = fresh();
    edit(&n.kc("scheduler.conf"), |t| {
        replace_line(
            &t,
            "client-certificate-data:",
            "    client-certificate-data: not_valid_base64%",
        )
    });
    expect_refusal(
        &n,
        &[CHECK, RENEW],
        "/etc/kubernetes/scheduler.conf",
        &["base64"],
        None,
    );
}

#[test]
fn ca_cert_that_is_not_a_ca() {
    let n = fresh();
    std::fs::copy(n.pki("front-proxy-client.crt"), n.pki("front-proxy-ca.crt")).unwrap();
    expect_refusal(
        &n,
        &[CHECK, RENEW],
        "/etc/kubernetes/pki/front-proxy-ca.crt",
        &["not a CA"],
        None,
    );
}

#[test]
fn unreadable_cert_a_directory() {
    let n = fresh();
    // Permissions do not stop root; a directory in place of the file makes read(2) fail.
    std::fs::remove_file(n.pki("apiserver-kubelet-client.crt")).unwrap();
    std::fs::create_dir(n.pki("apiserver-kubelet-client.crt")).unwrap();
    expect_refusal(
        &n,
        &[CHECK, RENEW],
        "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
        &["read", "regular", "directory"],
        None,
    );
}

#[test]
fn unreadable_cert_a_fifo() {
    let n = fresh();
    // Opening a FIFO for reading blocks until a writer appears: the tool must not hang.
    std::fs::remove_file(n.pki("apiserver.crt")).unwrap();
    nix::unistd::mkfifo(
        &n.pki("apiserver.crt"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    expect_refusal(
        &n,
        &[CHECK, RENEW],
        "/etc/kubernetes/pki/apiserver.crt",
        &["read", "regular", "fifo"],
        None,
    );
}

#[test]
fn unreadable_kubeconfig_a_directory() {
    let n = fresh();
    std::fs::remove_file(n.kc("super-admin.conf")).unwrap();
    std::fs::create_dir(n.kc("super-admin.conf")).unwrap();
    expect_refusal(
        &n,
        &[CHECK, RENEW],
        "/etc/kubernetes/super-admin.conf",
        &["read", "regular", "directory"],
        None,
    );
}

/// Move `rel` (under certificatesDir) outside the root and leave a symlink to it.
fn symlink_out(n: &Node, rel: &str) -> std::path::PathBuf {
    let out_dir = n.outside("outside");
    std::fs::create_dir_all(&out_dir).unwrap();
    let target = out_dir.join(rel.replace('/', "_"));
    std::fs::rename(n.pki(rel), &target).unwrap();
    std::os::unix::fs::symlink(&target, n.pki(rel)).unwrap();
    out_dir
}

const OUTSIDE: &[&str] = &["outside", "symlink"];

#[test]
fn symlinked_cert_outside_the_root() {
    let n = fresh();
    let o = symlink_out(&n, "apiserver.crt");
    expect_refusal(
        &n,
        &[CHECK, RENEW],
        "/etc/kubernetes/pki/apiserver.crt",
        OUTSIDE,
        Some(&o),
    );
}

#[test]
fn symlinked_key_outside_the_root() {
    let n = fresh();
    let o = symlink_out(&n, "apiserver.key");
    expect_refusal(
        &n,
        &[RENEW],
        "/etc/kubernetes/pki/apiserver.key",
        OUTSIDE,
        Some(&o),
    );
}

#[test]
fn symlinked_ca_outside_the_root() {
    let n = fresh();
    let o = symlink_out(&n, "front-proxy-ca.crt");
    expect_refusal(
        &n,
        &[CHECK, RENEW],
        "/etc/kubernetes/pki/front-proxy-ca.crt",
        OUTSIDE,
        Some(&o),
    );
}

#[test]
fn symlinked_directory_outside_the_root() {
    let n = fresh();
    // The whole etcd PKI directory lives outside the root: never write through it.
    let o = symlink_out(&n, "etcd");
    expect_refusal_lines(
        &n,
        &[CHECK, RENEW],
        "/etc/kubernetes/pki/etcd",
        OUTSIDE,
        Some(&o),
        true,
    );
}

fn config_case(yaml: &str, key: &str) {
    let n = fresh();
    let cfg = n.outside("config.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let c = cfg.to_str().unwrap();
    let check: &[&str] = &["--config", c, "check-expiration"];
    let renew: &[&str] = &["--config", c, "renew", "all", "--no-restart"];
    expect_refusal(&n, &[check, renew], c, &[key], None);
}

#[test]
fn unknown_config_key() {
    config_case("renewBefore: 30d\nrenewBefor: 3d\n", "renewBefor");
}

#[test]
fn zero_duration() {
    config_case("renewBefore: 0s\n", "renewBefore");
}

#[test]
fn negative_duration() {
    config_case("certificateValidity: -5d\n", "certificateValidity");
}

#[test]
fn zero_validity() {
    config_case("certificateValidity: 0d\n", "certificateValidity");
}

/// No etcd answering (nothing listens on the manifest's client URL): `cluster status` says so
/// in one line with the root cause, not tonic's Debug rendering of the transport error.
#[test]
fn cluster_status_without_etcd_is_one_line_with_the_cause() {
    let n = fresh();
    // A port nothing listens on (2379 may be a packaged etcd's).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    edit(&n.path("/etc/kubernetes/manifests/etcd.yaml"), |t| {
        t.replace("127.0.0.1:2379", &format!("127.0.0.1:{port}"))
    });
    let out = n.run(&["cluster", "status"]);
    out.assert_code(1);
    let err = out.stderr.trim();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no etcd member answered")
            && err.contains(&format!("127.0.0.1:{port}"))
            && err.contains("Connection refused"),
        "{err}"
    );
    for debug in ["source:", "Some(", "ConnectError(", "Os {"] {
        assert!(!err.contains(debug), "Rust Debug format in: {err}");
    }
}
