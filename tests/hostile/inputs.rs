//! The config file, manifests and restarts, the command line, CSR directories and state.

use super::*;

// ---------------------------------------------------------------- the config file

#[test]
fn config_is_a_yaml_list() {
    let n = Node::new();
    let c = n.outside_file("config.yaml", "- renewBefore: 30d\n");
    expect_failure(&n, Some(&c), CHECK, &[&[s(&c)], &["sequence", "mapping"]]);
}

#[test]
fn config_with_tab_indentation() {
    let n = Node::new();
    let c = n.outside_file("config.yaml", "restart:\n\tenabled: true\n");
    let w: Needles = &[
        &[s(&c)],
        &["tab", "cannot start any token", "found character"],
    ];
    expect_failure(&n, Some(&c), CHECK, w);
}

#[test]
fn config_is_a_directory() {
    let n = Node::new();
    let d = n.outside.join("config.d");
    std::fs::create_dir(&d).unwrap();
    expect_failure(
        &n,
        Some(&d),
        CHECK,
        &[&[s(&d)], &["not a regular file", "directory"]],
    );
}

#[test]
fn default_config_is_a_directory() {
    let n = Node::new();
    std::fs::create_dir_all(n.p("/etc/kubeadm-certd/config.yaml")).unwrap();
    let w: Needles = &[
        &["/etc/kubeadm-certd/config.yaml"],
        &["not a regular file", "directory"],
    ];
    expect_failure(&n, None, CHECK, w);
}

#[test]
fn explicit_config_missing() {
    let n = Node::new();
    let c = n.outside.join("absent.yaml");
    expect_failure(
        &n,
        Some(&c),
        CHECK,
        &[&[s(&c)], &["No such file", "does not exist"]],
    );
}

#[test]
fn config_is_a_fifo() {
    let n = Node::new();
    let c = n.outside.join("config.fifo");
    mkfifo(&c);
    expect_failure(&n, Some(&c), CHECK, &[&[s(&c)], &["not a regular file"]]);
}

#[test]
fn config_with_duplicate_key() {
    let n = Node::new();
    let c = n.outside_file("config.yaml", "renewBefore: 30d\nrenewBefore: 40d\n");
    expect_failure(&n, Some(&c), CHECK, &[&[s(&c)], &["duplicate"]]);
}

#[test]
fn config_validity_beyond_the_calendar() {
    let n = Node::new();
    let c = n.outside_file("config.yaml", "certificateValidity: 100000y\n");
    expect_failure(
        &n,
        Some(&c),
        RENEW,
        &[&[s(&c), "certificateValidity"], &["certificateValidity"]],
    );
}

// ---------------------------------------------------------------- manifests and restarts

#[test]
fn manifest_not_yaml() {
    let n = Node::new();
    n.write(SCHED, "{{{{ this: is [not yaml\n");
    let c = n.outside_file("config.yaml", QUICK_RESTART);
    let w: Needles = &[&[SCHED], &["not a valid pod manifest"]];
    expect_failure(&n, Some(&c), &["restart", "kube-scheduler"], w);
}

#[test]
fn manifest_with_unresolvable_probe_port() {
    let n = Node::new();
    let t = n.read_str(SCHED).replace("port: 10259", "port: probe-port");
    assert!(t.contains("probe-port"));
    n.write(SCHED, t);
    let c = n.outside_file("config.yaml", QUICK_RESTART);
    expect_failure(
        &n,
        Some(&c),
        &["restart", "kube-scheduler"],
        &[&[SCHED], &["probe port"]],
    );
}

#[test]
fn manifest_larger_than_the_cap() {
    let n = Node::new();
    let mut t = n.read_str(SCHED);
    t.push_str(&"# padding padding padding padding padding padding padding\n".repeat(40_000));
    n.write(SCHED, t);
    let c = n.outside_file("config.yaml", QUICK_RESTART);
    expect_failure(
        &n,
        Some(&c),
        &["restart", "kube-scheduler"],
        &[&[SCHED], &["larger than"]],
    );
}

#[test]
fn manifest_is_a_fifo() {
    let n = Node::new();
    std::fs::remove_file(n.p(SCHED)).unwrap();
    mkfifo(&n.p(SCHED));
    let c = n.outside_file("config.yaml", QUICK_RESTART);
    let w: Needles = &[&[SCHED], &["not a regular file"]];
    expect_failure(&n, Some(&c), &["restart", "kube-scheduler"], w);
}

#[test]
fn kubelet_config_symlink_to_dev_zero() {
    let n = Node::new();
    n.symlink("/var/lib/kubelet/config.yaml", "/dev/zero");
    let c = n.outside_file("config.yaml", QUICK_RESTART);
    let w: Needles = &[
        &["/var/lib/kubelet/config.yaml"],
        &["outside the node root"],
    ];
    expect_failure(&n, Some(&c), &["restart", "etcd"], w);
}

#[test]
fn parking_dir_is_a_regular_file() {
    let n = Node::new();
    n.write("/etc/kubernetes/parked", "not a directory\n");
    let c = n.outside_file(
        "config.yaml",
        format!("{QUICK_RESTART}  parkingDir: /etc/kubernetes/parked\n"),
    );
    let w: Needles = &[
        &["/etc/kubernetes/parked"],
        &["File exists", "not a directory", "Not a directory"],
    ];
    expect_failure(&n, Some(&c), &["restart", "etcd"], w);
}

// ---------------------------------------------------------------- command line, CSRs, state

#[test]
fn renew_unknown_name() {
    let n = Node::new();
    let w: Needles = &[&["apiservr"], &["unknown certificate name"]];
    expect_failure(&n, None, &["renew", "apiservr", "--no-restart"], w);
}

#[test]
fn renew_all_and_due_combined() {
    let n = Node::new();
    expect_failure(
        &n,
        None,
        &["renew", "all", "due", "--no-restart"],
        &[&["`all` and `due`"]],
    );
}

#[test]
fn install_signed_cert_for_another_key() {
    let n = Node::new();
    let dir = n.outside.join("csr");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(n.p(CRT), dir.join("apiserver.crt")).unwrap();
    let other = openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ]);
    std::fs::write(dir.join("apiserver.key"), other).unwrap();
    let crt = dir.join("apiserver.crt");
    let args = [
        "install-signed",
        "--csr-dir",
        s(&dir),
        "--no-restart",
        "apiserver",
    ];
    expect_failure(&n, None, &args, &[&[s(&crt)], &["does not match"]]);
}

#[test]
fn install_signed_csr_dir_is_a_file() {
    let n = Node::new();
    let f = n.outside_file("csr", "a file\n");
    let args = ["install-signed", "--csr-dir", s(&f), "--no-restart"];
    expect_failure(
        &n,
        None,
        &args,
        &[&[s(&f)], &["not a directory", "no signed"]],
    );
}

#[test]
fn csr_only_into_a_file() {
    let n = Node::new();
    let f = n.outside_file("csr", "a file\n");
    let args = ["renew", "apiserver", "--csr-only", "--csr-dir", s(&f)];
    expect_failure(
        &n,
        None,
        &args,
        &[
            &[s(&f)],
            &["File exists", "not a directory", "Not a directory"],
        ],
    );
}

#[test]
fn state_dir_is_a_regular_file() {
    let n = Node::new();
    n.write("/var/lib/kubeadm-certd", "not a directory\n");
    let w: Needles = &[
        &["/var/lib/kubeadm-certd"],
        &["File exists", "Not a directory", "not a directory"],
    ];
    expect_failure(&n, None, RENEW, w);
}

#[test]
fn lock_held_by_another_process() {
    let n = Node::new();
    std::fs::create_dir_all(n.p("/var/lib/kubeadm-certd")).unwrap();
    let lock = std::fs::File::create(n.p("/var/lib/kubeadm-certd/lock")).unwrap();
    lock.try_lock().unwrap();
    // A command waits for the lock (5m by default): not at all with --wait 0, for a second
    // with --wait 1s; either way one line naming the lock, and nothing changed.
    let renew_no_wait: Vec<&str> = RENEW.iter().copied().chain(["--wait", "0"]).collect();
    let renew_wait_1s: Vec<&str> = RENEW.iter().copied().chain(["--wait", "1s"]).collect();
    expect_failures(
        &n,
        None,
        &[
            (
                &renew_no_wait,
                &[
                    &["/var/lib/kubeadm-certd/lock"],
                    &["holds the lock; not waiting"],
                ],
            ),
            (
                &renew_wait_1s,
                &[
                    &["/var/lib/kubeadm-certd/lock"],
                    &["still holds the lock after 1s"],
                ],
            ),
        ],
    );
}

#[test]
fn corrupt_journal() {
    let n = Node::new();
    std::fs::create_dir_all(n.p("/var/lib/kubeadm-certd")).unwrap();
    n.write("/var/lib/kubeadm-certd/journal.json", "{ not json");
    expect_failure(&n, None, RENEW, &[&["journal.json"], &["corrupt"]]);
}

/// A journal whose entry is not a staged file next to its target must not move anything.
#[test]
fn journal_naming_a_foreign_file() {
    let n = Node::new();
    std::fs::create_dir_all(n.p("/var/lib/kubeadm-certd")).unwrap();
    let j = r#"{"backup_dir":"/var/lib/kubeadm-certd/backups/x","entries":[{"target":"/etc/kubernetes/admin.conf","staged":"/etc/kubernetes/manifests/kube-apiserver.yaml"}]}"#;
    n.write("/var/lib/kubeadm-certd/journal.json", j);
    expect_failure(
        &n,
        None,
        RENEW,
        &[&["journal"], &["kube-apiserver.yaml", "staged"]],
    );
}
