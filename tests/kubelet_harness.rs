//! The stand-in kubelet behaves like the kubelet's file source, and the probe
//! and process helpers observe what it runs.

#[path = "support/kubelet.rs"]
mod kubelet;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kubeadm_certd::act::staticpods::probe::{probe, ProbeResult};
use kubeadm_certd::act::staticpods::process::{is_alive, proc_info};
use kubeadm_certd::node::manifests::parse_manifest;
use kubelet::{EventKind, HarnessOptions, KubeletHarness};

/// Generous upper bound for a condition to come true; only prevents hangs.
const LIMIT: Duration = Duration::from_secs(60);

fn proc_root() -> &'static Path {
    Path::new("/proc")
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn fast() -> HarnessOptions {
    HarnessOptions {
        poll_period: Duration::from_millis(100),
        ..HarnessOptions::default()
    }
}

/// A node directory with an empty manifests dir and a parking dir next to it.
fn node() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let manifests = root.path().join("etc/kubernetes/manifests");
    let parked = root.path().join("etc/kubernetes/tmp");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::create_dir_all(&parked).unwrap();
    (root, manifests, parked)
}

fn pod_yaml(name: &str, command: &[&str], probe_port: Option<u16>) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{component: {name}}}\nspec:\n  containers:\n  - name: {name}\n    command:\n"
    );
    for c in command {
        y.push_str(&format!("    - {}\n", serde_json::to_string(c).unwrap()));
    }
    if let Some(port) = probe_port {
        y.push_str(&format!(
            "    livenessProbe:\n      httpGet: {{host: 127.0.0.1, path: /, port: {port}, scheme: HTTP}}\n"
        ));
    }
    y
}

fn started_pids(h: &KubeletHarness, file: &str) -> Vec<i32> {
    h.events_for(file)
        .iter()
        .filter(|e| e.kind == EventKind::Started)
        .map(|e| e.pid)
        .collect()
}

fn stopped(h: &KubeletHarness, file: &str, pid: i32) -> bool {
    h.events_for(file)
        .iter()
        .any(|e| e.kind == EventKind::Stopped && e.pid == pid)
}

#[test]
fn moving_a_manifest_out_and_back_restarts_the_server() {
    let (_root, manifests, parked) = node();
    let port = free_port();
    let yaml = pod_yaml(
        "web",
        &[
            "python3",
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ],
        Some(port),
    );
    std::fs::write(manifests.join("web.yaml"), &yaml).unwrap();
    let target = parse_manifest(yaml.as_bytes()).unwrap().probe.unwrap();
    let healthy = || probe(&target, "127.0.0.1", Duration::from_secs(2)).is_healthy();

    let h = KubeletHarness::start(&manifests, fast());
    assert!(
        KubeletHarness::wait_until(LIMIT, healthy),
        "never healthy; logs:\n{}",
        h.all_logs()
    );
    let first = started_pids(&h, "web.yaml");
    assert_eq!(first.len(), 1, "{:?}", h.events());
    let old = proc_info(proc_root(), first[0]).unwrap();
    assert!(is_alive(proc_root(), &old));

    // Parking the manifest outside the directory takes the pod down.
    std::fs::rename(manifests.join("web.yaml"), parked.join("web.yaml")).unwrap();
    assert!(
        KubeletHarness::wait_until(LIMIT, || stopped(&h, "web.yaml", old.pid)),
        "{:?}",
        h.events()
    );
    assert!(!is_alive(proc_root(), &old));
    assert_eq!(
        probe(&target, "127.0.0.1", Duration::from_secs(2)),
        ProbeResult::ConnectionRefused
    );
    assert_eq!(h.running_pid("web.yaml"), None);

    // Moving it back starts a new process.
    std::fs::rename(parked.join("web.yaml"), manifests.join("web.yaml")).unwrap();
    assert!(
        KubeletHarness::wait_until(LIMIT, || started_pids(&h, "web.yaml").len() == 2),
        "{:?}",
        h.events()
    );
    let second = started_pids(&h, "web.yaml")[1];
    assert_ne!(second, old.pid);
    let new = proc_info(proc_root(), second).unwrap();
    assert!(new.start_ticks > old.start_ticks, "{old:?} {new:?}");
    assert!(new.start_time >= old.start_time);
    assert!(
        KubeletHarness::wait_until(LIMIT, healthy),
        "not healthy again; logs:\n{}",
        h.all_logs()
    );
    assert_eq!(h.running_pid("web.yaml"), Some(second));

    drop(h);
    assert!(!is_alive(proc_root(), &new));
}

#[test]
fn dot_files_subdirectories_and_content_changes() {
    let (_root, manifests, _parked) = node();
    let file = manifests.join("a.yaml");
    std::fs::write(&file, pod_yaml("a", &["sleep", "1000"], None)).unwrap();
    // Ignored: not a regular file at the top level, or not a pod.
    std::fs::create_dir(manifests.join("sub")).unwrap();
    std::fs::write(
        manifests.join("sub/b.yaml"),
        pod_yaml("b", &["sleep", "1000"], None),
    )
    .unwrap();
    std::fs::write(manifests.join("notes.txt"), "not: [a pod").unwrap();

    let h = KubeletHarness::start(&manifests, fast());
    assert!(KubeletHarness::wait_until(LIMIT, || h
        .running_pid("a.yaml")
        .is_some()));
    let p1 = h.running_pid("a.yaml").unwrap();

    // A dot-prefixed name inside the directory is invisible to the kubelet.
    std::fs::rename(&file, manifests.join(".a.yaml")).unwrap();
    assert!(
        KubeletHarness::wait_until(LIMIT, || stopped(&h, "a.yaml", p1)),
        "{:?}",
        h.events()
    );

    // The classic backup pitfall: X.yaml.bak is still a manifest and runs.
    std::fs::rename(manifests.join(".a.yaml"), manifests.join("a.yaml.bak")).unwrap();
    assert!(
        KubeletHarness::wait_until(LIMIT, || h.running_pid("a.yaml.bak").is_some()),
        "{:?}",
        h.events()
    );
    std::fs::rename(manifests.join("a.yaml.bak"), &file).unwrap();
    assert!(KubeletHarness::wait_until(LIMIT, || h
        .running_pid("a.yaml")
        .is_some()));
    let p2 = h.running_pid("a.yaml").unwrap();

    // New content means a new pod: the old process is replaced.
    std::fs::write(&file, pod_yaml("a", &["sleep", "1001"], None)).unwrap();
    assert!(KubeletHarness::wait_until(LIMIT, || stopped(
        &h, "a.yaml", p2
    ) && h
        .running_pid("a.yaml")
        .is_some()));
    assert_ne!(h.running_pid("a.yaml"), Some(p2));

    let files: Vec<String> = h.events().into_iter().map(|e| e.file).collect();
    assert!(
        files.iter().all(|f| f == "a.yaml" || f == "a.yaml.bak"),
        "{files:?}"
    );
}

#[test]
fn unshare_mode_sees_the_temp_node_etc() {
    let (root, manifests, _parked) = node();
    let token = format!("marker-{}-{}", std::process::id(), rand::random::<u64>());
    std::fs::write(root.path().join("etc/kubernetes/marker"), &token).unwrap();
    // The output file lives outside /etc, so it is the same inside and outside the namespace.
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("seen");
    let script = format!(
        "cat /etc/kubernetes/marker > {} && exec sleep 1000",
        out.display()
    );
    std::fs::write(
        manifests.join("cat.yaml"),
        pod_yaml("cat", &["sh", "-c", &script], None),
    )
    .unwrap();

    let opts = HarnessOptions {
        node_root: Some(root.path().to_path_buf()),
        ..fast()
    };
    let h = KubeletHarness::start(&manifests, opts);
    let seen = || std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        KubeletHarness::wait_until(LIMIT, || !seen().is_empty()),
        "{:?}\n{}",
        h.events(),
        h.all_logs()
    );
    assert_eq!(seen(), token);
    // The host's /etc was not touched.
    assert_ne!(
        std::fs::read_to_string("/etc/kubernetes/marker").unwrap_or_default(),
        token
    );

    let pid = h.running_pid("cat.yaml").unwrap();
    let info = proc_info(proc_root(), pid).unwrap();
    drop(h);
    assert!(!is_alive(proc_root(), &info));
}
