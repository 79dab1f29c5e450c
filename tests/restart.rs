//! Static-pod restarts against real processes under the stand-in kubelet (issue 3 evidence):
//! which components restart, proof that they did, rollback, crash safety and the parking
//! directory's rules. The etcd cases are in restart_etcd.rs.

#[path = "support/kubelet.rs"]
mod kubelet;
mod restart_support;
#[path = "restart_support/verified.rs"]
mod verified;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kubelet::{EventKind, KubeletHarness};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use restart_support::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Renew `targets` on a node without etcd and check that exactly `expected` restarted, in
/// order, each once, each replaced by a new healthy process that loaded the current files.
fn renew_restarts(targets: &[&str], expected: &[&str]) {
    let node = Node::build(NodeOpts::default());
    let h = node.kubelet();
    node.wait_healthy(&h);
    let before: Vec<_> = node
        .components()
        .into_iter()
        .map(|c| (c, node.process(&h, c).expect("running")))
        .collect();
    let mark = h.events().len();
    let mon = Monitor::start(node.probes());
    let mut args = vec!["renew"];
    args.extend_from_slice(targets);
    let out = node.run(&args);
    let outages = mon.finish();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        started_after(&h, mark),
        expected,
        "events: {:?}",
        events_after(&h, mark)
    );
    for (c, old) in before {
        let now = node.process(&h, c).expect("running");
        if expected.contains(&c) {
            assert_replaced(c, &old, &now);
            assert!(node.healthy(c), "{c} not healthy after the restart");
            // The new process read the files as they are after the renewal.
            for (path, content) in node.loaded(c, now.pid) {
                assert_eq!(content, node.read(&path), "{c} loaded a stale {path}");
            }
        } else {
            assert_eq!(now, old, "{c} was restarted but uses none of {targets:?}");
        }
    }
    print_downtime(&outages, expected);
}

#[test]
fn renew_scheduler_conf_restarts_only_the_scheduler() {
    renew_restarts(&["scheduler.conf"], &["kube-scheduler"]);
}

#[test]
fn renew_apiserver_etcd_client_restarts_only_the_apiserver() {
    renew_restarts(&["apiserver-etcd-client"], &["kube-apiserver"]);
}

#[test]
fn renew_admin_conf_restarts_nothing() {
    renew_restarts(&["admin.conf"], &[]);
}

#[test]
fn renew_no_restart_restarts_nothing_and_names_what_should_restart() {
    let node = Node::build(NodeOpts::default());
    let h = node.kubelet();
    node.wait_healthy(&h);
    let before: Vec<_> = node
        .components()
        .into_iter()
        .map(|c| node.process(&h, c))
        .collect();
    let mark = h.events().len();
    let out = node.run(&["renew", "scheduler.conf", "--no-restart"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Not restarting") && stdout.contains("kube-scheduler"),
        "{stdout}"
    );
    assert!(
        events_after(&h, mark).is_empty(),
        "{:?}",
        events_after(&h, mark)
    );
    let after: Vec<_> = node
        .components()
        .into_iter()
        .map(|c| node.process(&h, c))
        .collect();
    assert_eq!(after, before);
}

/// Not a restart property, but found here: the stand-ins compare file contents byte for byte.
#[test]
fn renewed_pem_files_have_lf_line_endings_like_kubeadm() {
    let node = Node::build(NodeOpts::default());
    let out = node.run(&["renew", "apiserver-etcd-client", "--no-restart"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for p in [
        "/etc/kubernetes/pki/apiserver-etcd-client.crt",
        "/etc/kubernetes/pki/apiserver-etcd-client.key",
    ] {
        assert!(
            !node.read(p).contains('\r'),
            "{p} has CRLF line endings; kubeadm (Go encoding/pem) writes LF"
        );
    }
}

#[test]
fn restart_command_replaces_each_component_in_order_with_proof() {
    let node = Node::build(NodeOpts::default());
    let h = node.kubelet();
    node.wait_healthy(&h);
    let comps = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ];
    let old: Vec<_> = comps
        .iter()
        .map(|c| node.process(&h, c).expect("running"))
        .collect();
    let served_before = node.served_cert(node.ports.apiserver);
    let mark = h.events().len();
    let mon = Monitor::start(node.probes());
    // Named out of order on purpose: the restart order is fixed.
    let out = node.run(&[
        "restart",
        "kube-scheduler",
        "kube-apiserver",
        "kube-controller-manager",
    ]);
    let outages = mon.finish();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        started_after(&h, mark),
        comps,
        "{:?}",
        events_after(&h, mark)
    );
    // One at a time: each old process is stopped only after the previous component's new
    // process started.
    let ev = events_after(&h, mark);
    let idx = |kind: EventKind, file: &str| {
        ev.iter()
            .position(|e| e.kind == kind && e.file == file)
            .expect("event")
    };
    for w in comps.windows(2) {
        let (a, b) = (format!("{}.yaml", w[0]), format!("{}.yaml", w[1]));
        assert!(
            idx(EventKind::Started, &a) < idx(EventKind::Stopped, &b),
            "{} stopped before {} was back: {ev:?}",
            w[1],
            w[0]
        );
    }
    for (c, old) in comps.iter().zip(&old) {
        let new = node.process(&h, c).expect("running");
        assert_replaced(c, old, &new);
        assert!(node.healthy(c));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("{c} restarted: pid {} -> {}", old.pid, new.pid)),
            "{stdout}"
        );
    }
    assert_eq!(
        node.served_cert(node.ports.apiserver),
        served_before,
        "same files, same serving cert"
    );
    print_downtime(&outages, &comps);
}

#[test]
fn rejected_renewal_is_rolled_back_and_later_components_are_not_restarted() {
    let node = Node::build(NodeOpts {
        restart: vec!["timeout: 8s".into()],
        ..NodeOpts::default()
    });
    let h = node.kubelet();
    node.wait_healthy(&h);
    let crt = "/etc/kubernetes/pki/apiserver-etcd-client.crt";
    let key = "/etc/kubernetes/pki/apiserver-etcd-client.key";
    let (old_crt, old_key) = (node.read(crt), node.read(key));
    // The apiserver stand-in refuses to start with anything but the current client cert.
    node.hook(
        "kube-apiserver.accept",
        &serde_json::json!({ crt: old_crt }).to_string(),
    );
    let sched = node.process(&h, "kube-scheduler").expect("running");
    let cm = node
        .process(&h, "kube-controller-manager")
        .expect("running");
    let mark = h.events().len();

    let out = node.run(&["renew", "apiserver-etcd-client", "scheduler.conf"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: kube-apiserver"),
        "the error must name the component:\n{err}"
    );
    assert!(
        err.contains("not restarting the remaining components"),
        "{err}"
    );
    // Its previous certificate is back, and with it the apiserver.
    assert_eq!(node.read(crt), old_crt);
    assert_eq!(node.read(key), old_key);
    assert!(err.contains("it came back"), "{err}");
    let api = node
        .process(&h, "kube-apiserver")
        .expect("apiserver runs after the rollback");
    assert!(node.healthy("kube-apiserver"));
    assert_eq!(
        node.loaded("kube-apiserver", api.pid).get(crt),
        Some(&old_crt)
    );
    // Nothing after it was restarted.
    let started = started_after(&h, mark);
    assert!(started.iter().all(|c| c == "kube-apiserver"), "{started:?}");
    assert_eq!(node.process(&h, "kube-scheduler"), Some(sched));
    assert_eq!(node.process(&h, "kube-controller-manager"), Some(cm));
    assert!(node.manifest_path("kube-apiserver").exists());
    assert!(
        std::fs::read_dir(node.parking())
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

#[test]
fn component_that_never_comes_back_fails_naming_it() {
    let node = Node::build(NodeOpts {
        restart: vec!["timeout: 5s".into()],
        ..NodeOpts::default()
    });
    let h = node.kubelet();
    node.wait_healthy(&h);
    let conf = "/etc/kubernetes/scheduler.conf";
    let old_conf = node.read(conf);
    // From now on the scheduler exits as soon as it starts: its probe port never opens.
    node.hook("kube-scheduler.die", "");
    let out = node.run(&["renew", "scheduler.conf"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: kube-scheduler: did not come back healthy"),
        "{err}"
    );
    assert!(
        err.contains("connection refused") || err.contains("no new process"),
        "says what was seen:\n{err}"
    );
    // Rolled back: the previous kubeconfig (still valid) is restored.
    assert_eq!(node.read(conf), old_conf);
    assert!(
        err.contains("restored /etc/kubernetes/scheduler.conf"),
        "{err}"
    );
    assert!(
        node.manifest_path("kube-scheduler").exists(),
        "the manifest is back in place"
    );
    let stops = h
        .events_for("kube-scheduler.yaml")
        .iter()
        .filter(|e| e.kind == EventKind::Stopped)
        .count();
    assert!(stops >= 2, "the stand-in kept dying: {:?}", h.events());
}

/// Start `restart kube-scheduler` with a long hold and wait until its manifest is parked.
fn start_held_restart(node: &Node) -> (std::process::Child, Vec<u8>) {
    let manifest = std::fs::read(node.manifest_path("kube-scheduler")).expect("manifest");
    let child = node
        .command(&["restart", "kube-scheduler"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let parked = node.parking().join("kube-scheduler.yaml");
    assert!(
        KubeletHarness::wait_until(LIMIT, || parked.exists()),
        "never parked"
    );
    assert!(!node.manifest_path("kube-scheduler").exists());
    (child, manifest)
}

fn held_node() -> Node {
    Node::build(NodeOpts {
        restart: vec!["timeout: 60s".into(), "minHold: 30s".into()],
        ..NodeOpts::default()
    })
}

#[test]
fn sigkill_during_the_hold_then_recover_restores_the_manifest_byte_identical() {
    let node = held_node();
    let h = node.kubelet();
    node.wait_healthy(&h);
    let (mut child, manifest) = start_held_restart(&node);
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    // Killed in the hold: the manifest is still parked, the scheduler is down.
    assert!(!node.manifest_path("kube-scheduler").exists());
    assert!(node.parking().join("kube-scheduler.yaml").exists());

    let out = node.run(&["recover"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("kube-scheduler.yaml"));
    assert_eq!(
        std::fs::read(node.manifest_path("kube-scheduler")).expect("manifest back"),
        manifest
    );
    assert_eq!(
        std::fs::read_dir(node.parking()).expect("parking").count(),
        0
    );
    node.wait_healthy(&h);
}

#[test]
fn sigterm_during_the_hold_puts_the_manifest_back_before_exit() {
    let node = held_node();
    let h = node.kubelet();
    node.wait_healthy(&h);
    let (mut child, manifest) = start_held_restart(&node);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let status = child.wait().expect("wait");
    // Checked right after the process is gone: nothing else could have put it back.
    assert_eq!(
        std::fs::read(node.manifest_path("kube-scheduler")).ok(),
        Some(manifest)
    );
    assert_eq!(
        std::fs::read_dir(node.parking()).expect("parking").count(),
        0
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("read stderr");
    eprintln!("{err}");
    assert_eq!(
        status.code(),
        Some(1),
        "an interrupted restart is a failure"
    );
    assert!(err.contains("kube-scheduler: interrupted"), "{err}");
    node.wait_healthy(&h);
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find_file(&p, name) {
                return Some(f);
            }
        } else if e.file_name() == name {
            return Some(p);
        }
    }
    None
}

#[test]
fn manifest_replaced_during_the_hold_is_kept() {
    let node = Node::build(NodeOpts {
        restart: vec!["timeout: 10s".into(), "minHold: 3s".into()],
        ..NodeOpts::default()
    });
    let h = node.kubelet();
    node.wait_healthy(&h);
    let (child, old) = start_held_restart(&node);
    // An upgrade writes a new manifest while the old one is parked.
    let new = String::from_utf8(old.clone()).expect("utf8").replace(
        "    - --leader-elect=true\n",
        "    - --leader-elect=true\n    - --v=2\n",
    );
    assert_ne!(new.as_bytes(), old.as_slice());
    std::fs::write(node.manifest_path("kube-scheduler"), &new).expect("write new manifest");
    let out = child.wait_with_output().expect("wait");
    let err = stderr(&out);
    eprintln!("{err}");
    assert_eq!(
        std::fs::read_to_string(node.manifest_path("kube-scheduler")).expect("manifest"),
        new,
        "the new manifest is kept"
    );
    assert_eq!(
        std::fs::read_dir(node.parking()).expect("parking").count(),
        0
    );
    let backup = find_file(&node.root, "parked-kube-scheduler.yaml")
        .expect("the parked manifest went to the backups");
    assert!(!backup.starts_with(node.manifests()));
    assert_eq!(std::fs::read(&backup).expect("backup"), old);
    assert!(
        err.contains("WARN") && err.contains("replaced while it was parked"),
        "{err}"
    );
    // The component runs the new manifest's command and is healthy; the restart succeeded.
    let p = node.process(&h, "kube-scheduler").expect("running");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", p.pid)).expect("cmdline");
    assert!(String::from_utf8_lossy(&cmdline).contains("--v=2"));
    assert!(node.healthy("kube-scheduler"));
    assert!(
        out.status.success(),
        "the new manifest's pod came up healthy, so the restart succeeded:\n{err}"
    );
}

/// Unmounts on drop (declared after the node, so it runs before the temp dir is removed).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| (e.path(), std::fs::read(e.path()).expect("read")))
        .collect();
    v.sort();
    v
}

#[test]
fn parking_dir_on_another_filesystem_is_refused_and_nothing_moves() {
    let node = Node::build(NodeOpts {
        restart: vec![
            "timeout: 60s".into(),
            "parkingDir: /etc/kubernetes/other-fs/parked".into(),
        ],
        ..NodeOpts::default()
    });
    let mnt = node.host("/etc/kubernetes/other-fs");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("mount");
    assert!(st.success(), "mount tmpfs (needs root)");
    let _umount = Unmount(mnt.clone());
    let h = node.kubelet();
    node.wait_healthy(&h);
    let before = tree(&node.manifests());
    let sched = node.process(&h, "kube-scheduler").expect("running");
    let mark = h.events().len();

    let out = node.run(&["restart", "kube-scheduler"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("/etc/kubernetes/other-fs/parked") && err.contains("different filesystem"),
        "{err}"
    );
    assert!(err.contains("nothing was moved"), "{err}");
    assert_eq!(tree(&node.manifests()), before);
    assert_eq!(
        std::fs::read_dir(&mnt).expect("tmpfs").count(),
        0,
        "nothing created on the other filesystem"
    );
    std::thread::sleep(Duration::from_millis(500)); // a harness period or two, to see a stop if there was one
    assert!(
        events_after(&h, mark).is_empty(),
        "{:?}",
        events_after(&h, mark)
    );
    assert_eq!(node.process(&h, "kube-scheduler"), Some(sched));
}
