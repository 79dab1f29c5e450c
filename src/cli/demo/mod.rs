//! `demo`: the main job on a throwaway node. It builds a kubeadm-shaped node whose
//! certificates expire in 3 days, starts a stand-in kubelet that runs stand-in control-plane
//! components and a stand-in API server for the cluster side, shows check-expiration, enables
//! serverTLSBootstrap (the node file and the cluster's kubelet-config ConfigMap, showing the
//! diffs), has the kubelets ask for serving certificates, runs the daemon until its first
//! cycle is done (renew what is due, restart what uses it, verified; approve the good CSR,
//! leave the bad one pending), then shows `csr list` and check-expiration again.

mod cluster;
mod kubelet;

use crate::act::staticpods::probe::probe;
use crate::testkit::nodebuilder::{build, NodeSpec, Ports};
use anyhow::{bail, Context, Result};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn step(exe: &Path, root: &Path, args: &[&str]) -> Result<()> {
    println!(
        "\n$ kubeadm-certd --root {} {}",
        root.display(),
        args.join(" ")
    );
    let st = Command::new(exe)
        .arg("--root")
        .arg(root)
        .args(args)
        .status()?;
    if !st.success() {
        bail!("demo step `{}` failed", args.join(" "));
    }
    Ok(())
}

/// `run`, the daemon, until its first cycle is done (READY=1 on its notify socket) and the
/// good CSR is decided; then SIGTERM, as `systemctl stop` would.
fn daemon_step(exe: &Path, root: &Path, api: &cluster::DemoCluster, good: &str) -> Result<()> {
    use std::os::unix::net::UnixDatagram;
    println!("\n$ kubeadm-certd --root {} run", root.display());
    let sock_path = root.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).context("binding the demo's notify socket")?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut child = Command::new(exe)
        .arg("--root")
        .arg(root)
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut buf = [0u8; 4096];
    let mut ready = false;
    while !ready && Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            ready = String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1");
        }
        if let Ok(Some(st)) = child.try_wait() {
            bail!("the daemon exited early ({st})");
        }
    }
    let decided = ready && api.wait_decided(good, Duration::from_secs(10));
    // Its log lines are written before the CSR shows the decision; let them reach the terminal.
    std::thread::sleep(Duration::from_millis(200));
    println!("(stopping the daemon: SIGTERM)");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)),
        nix::sys::signal::Signal::SIGTERM,
    );
    let st = child.wait()?;
    let _ = std::fs::remove_file(&sock_path);
    if !ready {
        bail!("the daemon's first cycle did not finish within 2 minutes");
    }
    if !decided {
        bail!("the daemon did not decide CSR {good} within 10 s");
    }
    if !st.success() {
        bail!("the daemon exited with {st}");
    }
    Ok(())
}

/// Wait until every component's probe answers.
fn wait_healthy(manifests: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut pending = Vec::new();
        for e in std::fs::read_dir(manifests)?.flatten() {
            let m = crate::node::manifests::parse_manifest(&std::fs::read(e.path())?)?;
            if let Some(p) = m.probe_target() {
                if !probe(p, "127.0.0.1", Duration::from_secs(1)).is_healthy() {
                    pending.push(m.name);
                }
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("stand-ins did not come up: {}", pending.join(", "));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Run the demo.
pub fn run(keep: Option<&Path>) -> Result<()> {
    let root: PathBuf = match keep {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("kubeadm-certd-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let exe = std::env::current_exe()?;
    let mut spec = NodeSpec::new(time::OffsetDateTime::now_utc());
    spec.advertise = std::net::IpAddr::from([127, 0, 0, 1]);
    spec.standin = Some(exe.clone());
    // The real kubelet re-lists every 20 s; the stand-in reacts within 200 ms, so 1 s holds.
    spec.file_check_frequency = "1s".into();
    spec.ports = Ports {
        etcd_client: free_port()?,
        etcd_peer: free_port()?,
        etcd_metrics: free_port()?,
        apiserver: free_port()?,
        controller_manager: free_port()?,
        scheduler: free_port()?,
    };
    build(&root, &spec)?;
    let cfg = root.join("etc/kubeadm-certd/config.yaml");
    std::fs::create_dir_all(cfg.parent().unwrap_or(&root))?;
    std::fs::write(&cfg, "restart:\n  timeout: 30s\n")?;
    println!(
        "A kubeadm-shaped node was built in {}: CAs with 10 years left,",
        root.display()
    );
    println!("every leaf and kubeconfig expiring in 3 days, and a stand-in kubelet running");
    println!("stand-in etcd, kube-apiserver, kube-controller-manager and kube-scheduler.");
    let kubelet = kubelet::DemoKubelet::start(root.join("etc/kubernetes/manifests"));
    wait_healthy(&root.join("etc/kubernetes/manifests"))?;
    let api = cluster::DemoCluster::start(&root)?;
    println!(
        "The cluster side is a stand-in API server at {}: Nodes cp1 (this node,",
        api.url()
    );
    println!("127.0.0.1) and w1 (127.0.0.2), and kubeadm's kubelet-config ConfigMap.");
    let result = (|| -> Result<()> {
        step(&exe, &root, &["check-expiration"])?;
        step(
            &exe,
            &root,
            &["kubelet-serving-certs", "enable", "--no-restart"],
        )?;
        let (good, bad) = api.kubelets_ask()?;
        println!("\nWith serverTLSBootstrap on, cp1's kubelet asks for its serving certificate");
        println!("(CSR {good}: cp1, 127.0.0.1); w1's kubelet asks for one naming cp1's address");
        println!("(CSR {bad}: w1, 127.0.0.1). The daemon renews, restarts, and decides both:");
        daemon_step(&exe, &root, &api, &good)?;
        step(&exe, &root, &["csr", "list"])?;
        step(&exe, &root, &["check-expiration"])
    })();
    drop(api);
    drop(kubelet);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    result
}
