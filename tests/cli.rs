//! The command line (issue 2 §2–4): usage errors exit 2, `--version`, and `--config` rules
//! (an explicit file must exist; the default one under `--root` may be absent).

mod common;

use common::*;

#[track_caller]
fn usage_error(args: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    let mut full = vec!["--root", d.path().to_str().unwrap()];
    full.extend_from_slice(args);
    let out = run_bin(&full);
    out.assert_code(2);
    assert!(
        out.stdout.is_empty(),
        "{args:?} printed to stdout:\n{}",
        out.stdout
    );
    assert!(!out.stderr.trim().is_empty(), "{args:?}: no message");
    // A usage error touches nothing.
    assert!(
        std::fs::read_dir(d.path()).unwrap().next().is_none(),
        "{args:?} created files under the root"
    );
}

#[test]
fn unknown_flag() {
    usage_error(&["check-expiration", "--bogus"]);
    usage_error(&["--bogus", "renew", "all"]);
}

#[test]
fn renew_without_target() {
    usage_error(&["renew"]);
    usage_error(&["renew", "--dry-run"]);
}

#[test]
fn csr_dir_without_csr_only() {
    usage_error(&["renew", "--csr-dir", "/tmp/x", "apiserver"]);
}

#[test]
fn bad_output_format() {
    usage_error(&["check-expiration", "-o", "xml"]);
    usage_error(&["check-expiration", "-o", "wide"]);
}

#[test]
fn no_subcommand() {
    usage_error(&[]);
}

#[test]
fn install_signed_without_csr_dir() {
    usage_error(&["install-signed"]);
}

#[test]
fn version() {
    let out = run_bin(&["--version"]);
    out.ok();
    assert!(
        out.stdout.starts_with("kubeadm-certd 0.1.0"),
        "{}",
        out.stdout
    );
}

#[test]
fn explicit_config_must_exist() {
    let n = Node::default_node();
    let missing = n.outside("no-such-config.yaml");
    let m = missing.to_str().unwrap();
    for cmd in [
        &["check-expiration"][..],
        &["renew", "all", "--no-restart"][..],
    ] {
        let t = n.tree();
        let mut args = vec!["--config", m];
        args.extend_from_slice(cmd);
        let out = n.run(&args);
        out.assert_code(1);
        out.assert_one_error(&[m]);
        t.assert_same(&n.tree(), "missing --config");
    }
}

#[test]
fn default_config_may_be_absent_and_is_read_when_present() {
    let n = Node::default_node();
    assert!(!n.path("/etc/kubeadm-certd/config.yaml").exists());
    let out = n.run(&["check-expiration", "-o", "json"]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["certificates"][0]["status"], "due",
        "built-in renewBefore 30d"
    );
    // The default file under --root is used when present.
    let cfg = n.path("/etc/kubeadm-certd/config.yaml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, "renewBefore: 1d\n").unwrap();
    let out = n.run(&["check-expiration", "-o", "json"]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["certificates"][0]["status"], "ok",
        "renewBefore 1d from the default config"
    );
    // And a broken default file is an error that names it.
    std::fs::write(&cfg, "renewBefore: soon\n").unwrap();
    let out = n.run(&["check-expiration"]);
    out.assert_code(1);
    out.assert_one_error(&["kubeadm-certd/config.yaml", "renewBefore"]);
}

#[test]
fn unknown_certificate_name() {
    let n = Node::default_node();
    let t = n.tree();
    let out = n.run(&["renew", "apiservr", "--no-restart"]);
    assert_ne!(out.code, 0, "an unknown name succeeded");
    assert!(
        out.stderr.contains("apiservr"),
        "the bad name is not named:\n{}",
        out.stderr
    );
    t.assert_same(&n.tree(), "renew of an unknown name");
}

#[test]
fn all_cannot_be_combined_with_names() {
    let n = Node::default_node();
    let t = n.tree();
    let out = n.run(&["renew", "all", "apiserver", "--no-restart"]);
    assert_ne!(out.code, 0);
    t.assert_same(&n.tree(), "renew all + name");
}
