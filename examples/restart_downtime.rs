//! Benchmark helper for scripts/bench: the "component start" term of the restart target.
//!
//! `restart_downtime component-start DIR [--runs N]`: DIR is a node left by
//! `kubeadm-certd demo --keep DIR` (its stand-ins stopped). For each static pod manifest, run
//! its command as the kubelet would and time spawn → first healthy probe (polled every 5 ms),
//! then stop it. Prints one `component=NAME start_ms=MEAN runs=N` line per component.

use anyhow::{anyhow, bail, Context, Result};
use kubeadm_certd::act::staticpods::probe::probe;
use kubeadm_certd::node::manifests::parse_manifest;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn start_once(command: &[String], m: &kubeadm_certd::node::manifests::Manifest) -> Result<f64> {
    let p = m
        .probe_target()
        .ok_or_else(|| anyhow!("{}: no probe", m.name))?;
    let (exe, args) = command
        .split_first()
        .ok_or_else(|| anyhow!("{}: empty command", m.name))?;
    let t = Instant::now();
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {exe}"))?;
    let result = loop {
        if probe(p, "127.0.0.1", Duration::from_secs(1)).is_healthy() {
            break Ok(t.elapsed().as_secs_f64() * 1000.0);
        }
        if let Ok(Some(st)) = child.try_wait() {
            break Err(anyhow!("{} exited before it was healthy: {st}", m.name));
        }
        if t.elapsed() > Duration::from_secs(30) {
            break Err(anyhow!("{} not healthy after 30 s", m.name));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    for _ in 0..100 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return result;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn component_start(dir: &Path, runs: usize) -> Result<()> {
    let manifests = dir.join("etc/kubernetes/manifests");
    let mut files: Vec<_> = std::fs::read_dir(&manifests)
        .with_context(|| format!("reading {}", manifests.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in files {
        let m = parse_manifest(&std::fs::read(&f)?)
            .with_context(|| format!("parsing {}", f.display()))?;
        let mut total = 0.0;
        for _ in 0..runs {
            total += start_once(&m.command, &m)?;
        }
        println!(
            "component={} start_ms={:.1} runs={runs}",
            m.name,
            total / runs as f64
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = match args.iter().position(|a| a == "--runs") {
        Some(i) => args
            .get(i + 1)
            .ok_or_else(|| anyhow!("--runs needs a value"))?
            .parse()
            .context("--runs")?,
        None => 5,
    };
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("component-start"), Some(dir)) => component_start(Path::new(dir), runs.max(1)),
        _ => bail!("usage: restart_downtime component-start DIR [--runs N]"),
    }
}
