//! Benchmark helper for scripts/bench (g): the CSR approver against the stand-in
//! kube-apiserver (issue 17). Everything stays on 127.0.0.1.
//!
//! `approval_bench latency BIN [--csrs N]`: builds a control-plane node (cp1) in a temp dir,
//! starts the stand-in API server in this process with Nodes cp1, w1 and w2, points the
//! node's admin.conf at it and runs `BIN --root NODE run` (approver on). Once its watch is
//! open, creates N good worker CSRs one after another (the next 100 ms after the previous was
//! approved) and times each from its creation in the server to the Approved condition there
//! (polled every 200 µs). Prints `csr=I approve_ms=X` per CSR, then `latency n=N median_ms=X
//! max_ms=X`.
//!
//! `approval_bench idle BIN [--secs S]`: the same node and server, nothing pending; `run`
//! with `approver.mode: off`, then with `on` (connected: its watch open). For each, 5 s after
//! start, VmRSS (/proc/PID/status) and utime+stime (/proc/PID/stat), again S s later.
//! Prints `idle approver=off|on rss_start_kib=.. rss_end_kib=.. hwm_kib=.. cpu_s=.. secs=..
//! requests=..` (requests: what the server received from the daemon meanwhile).

use anyhow::{bail, Context, Result};
use kubeadm_certd::pki::inspect::KeyAlg;
use kubeadm_certd::testkit::apiserver::{kubelet_serving_csr, ApiServer, CsrSpec, Options};
use kubeadm_certd::testkit::nodebuilder::{build, NodeSpec};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Setup {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    api: ApiServer,
}

fn setup() -> Result<Setup> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().to_path_buf();
    let mut spec = NodeSpec::new(time::OffsetDateTime::now_utc());
    spec.key = KeyAlg::EcP256;
    spec.leaf_left = Duration::from_secs(300 * 86_400);
    build(&root, &spec)?;
    let api = ApiServer::start(Options::for_node(&root)?)?;
    api.point_kubeconfig(&root.join("etc/kubernetes/admin.conf"))?;
    api.add_node("cp1", &[("InternalIP", "127.0.0.1"), ("Hostname", "cp1")]);
    api.add_node("w1", &[("InternalIP", "127.0.0.2"), ("Hostname", "w1")]);
    api.add_node("w2", &[("InternalIP", "127.0.0.3"), ("Hostname", "w2")]);
    Ok(Setup {
        _dir: dir,
        root,
        api,
    })
}

/// `BIN --root ROOT --config CFG run` with the approver `mode`.
fn daemon(bin: &Path, root: &Path, mode: &str) -> Result<Child> {
    let cfg = root.join("certd.yaml");
    std::fs::write(
        &cfg,
        format!("restart:\n  enabled: false\nmetrics:\n  textfile: \"\"\ncheckInterval: 1h\njitter: 0s\napprover:\n  mode: {mode}\n"),
    )?;
    Command::new(bin)
        .arg("--root")
        .arg(root)
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

fn stop(mut c: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = c.wait();
}

fn approved(api: &ApiServer, name: &str) -> bool {
    api.csr(name)
        .and_then(|c| c.pointer("/status/conditions/0/type").cloned())
        .is_some_and(|t| t == "Approved")
}

fn latency(bin: &Path, n: usize) -> Result<()> {
    let s = setup()?;
    let child = daemon(bin, &s.root, "on")?;
    if !s.api.wait_watches(1, Duration::from_secs(30)) {
        stop(child);
        bail!("the daemon's approver never opened its watch");
    }
    // Requests made up front (key generation is not the approver's time).
    let pems: Vec<String> = (0..n)
        .map(|_| {
            kubelet_serving_csr(
                "system:node:w1",
                &["system:nodes"],
                &["w1"],
                &["127.0.0.2"],
                KeyAlg::EcP256,
            )
        })
        .collect::<Result<_>>()?;
    let mut ms = Vec::new();
    for (i, pem) in pems.into_iter().enumerate() {
        let name = format!("csr-bench-{i:03}");
        s.api.create_csr(&name, CsrSpec::kubelet_serving("w1", pem));
        let t = Instant::now();
        while !approved(&s.api, &name) {
            if t.elapsed() > Duration::from_secs(30) {
                stop(child);
                bail!("{name} not approved within 30 s");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let x = t.elapsed().as_secs_f64() * 1000.0;
        println!("csr={i} approve_ms={x:.2}");
        ms.push(x);
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(child);
    ms.sort_by(f64::total_cmp);
    let median = if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
    };
    println!(
        "latency n={} median_ms={median:.2} max_ms={:.2}",
        ms.len(),
        ms.last().copied().unwrap_or(0.0)
    );
    Ok(())
}

fn proc_field(pid: u32, key: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{key} in /proc/{pid}/status"))
}

/// utime + stime, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = text.rsplit_once(") ").context("/proc/PID/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?)
}

/// Context switches of every thread (voluntary + involuntary): how often the process woke.
fn wakeups(pid: u32) -> Result<u64> {
    let mut n = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let text = std::fs::read_to_string(t?.path().join("status")).unwrap_or_default();
        n += text
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(n)
}

fn idle(bin: &Path, secs: u64) -> Result<()> {
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    for mode in ["off", "on"] {
        let s = setup()?;
        let child = daemon(bin, &s.root, mode)?;
        let pid = child.id();
        std::thread::sleep(Duration::from_secs(5));
        if mode == "on" && s.api.open_watches() != 1 {
            stop(child);
            bail!("approver on but no watch open after 5 s");
        }
        let (r0, c0, n0, w0) = (
            proc_field(pid, "VmRSS:")?,
            cpu_ticks(pid)?,
            s.api.requests().len(),
            wakeups(pid)?,
        );
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        let (r1, c1, hwm, w1) = (
            proc_field(pid, "VmRSS:")?,
            cpu_ticks(pid)?,
            proc_field(pid, "VmHWM:")?,
            wakeups(pid)?,
        );
        let took = t.elapsed().as_secs_f64();
        let watching = s.api.open_watches();
        let n1 = s.api.requests().len();
        stop(child);
        println!(
            "idle approver={mode} rss_start_kib={r0} rss_end_kib={r1} hwm_kib={hwm} cpu_s={:.2} secs={took:.1} requests={} watches_open={watching} wakeups={}",
            (c1 - c0) as f64 / tick,
            n1 - n0,
            w1.saturating_sub(w0)
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str, default: u64| -> Result<u64> {
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(args.get(i + 1).context(name.to_string())?.parse()?),
            None => Ok(default),
        }
    };
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("latency"), Some(bin)) => latency(Path::new(bin), opt("--csrs", 20)? as usize),
        (Some("idle"), Some(bin)) => idle(Path::new(bin), opt("--secs", 60)?),
        _ => bail!("usage: approval_bench latency BIN [--csrs N] | idle BIN [--secs S]"),
    }
}
