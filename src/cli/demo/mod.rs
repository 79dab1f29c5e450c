//! `demo`: the main job on a throwaway node. It builds a kubeadm-shaped node whose
//! certificates expire in 3 days, starts a stand-in kubelet that runs stand-in control-plane
//! components, shows check-expiration, enables serverTLSBootstrap (showing the diff), runs one
//! daemon cycle (`run --once`: renew what is due, restart what uses it, verified), and shows
//! check-expiration again.

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
    let result = (|| -> Result<()> {
        step(&exe, &root, &["check-expiration"])?;
        step(
            &exe,
            &root,
            &["kubelet-serving-certs", "enable", "--no-restart"],
        )?;
        step(&exe, &root, &["run", "--once"])?;
        step(&exe, &root, &["check-expiration"])
    })();
    drop(kubelet);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    result
}
