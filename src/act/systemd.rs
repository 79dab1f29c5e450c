//! systemd, through `systemctl` as found on PATH (so tests can put a fake first), and the
//! kubelet's health: `systemctl is-active kubelet` plus its plain-HTTP healthz endpoint.

use crate::act::cancel::Cancel;
use crate::act::staticpods::probe::{probe, probe_url, ProbeResult};
use crate::node::kubelet::{parse_kubelet_config, KubeletConfigInfo};
use crate::node::manifests::{Probe, Scheme};
use crate::node::NodePaths;
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bound on `systemctl restart`: a stop may take systemd's default 90 s, then the start.
const RESTART_TIMEOUT: Duration = Duration::from_secs(180);
/// Bound on a state query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between two health checks.
const POLL: Duration = Duration::from_millis(500);

/// The first executable `systemctl` on PATH.
pub fn find_systemctl() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("systemctl"))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .context("systemctl not found on PATH")
}

/// What a finished `systemctl` run printed.
#[derive(Debug)]
pub struct Output {
    /// Whether it exited 0.
    pub success: bool,
    /// Its exit status, as text.
    pub status: String,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

/// Run `systemctl <args>`, bounded by `timeout` (killed after it). NOTIFY_SOCKET is removed
/// from its environment so that it can never speak for this service.
pub fn systemctl(args: &[&str], timeout: Duration, cancel: &Cancel) -> Result<Output> {
    let bin = find_systemctl()?;
    let cmd = format!("systemctl {}", args.join(" "));
    let mut child = Command::new(&bin)
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{cmd}: cannot run {}", bin.display()))?;
    // Read the pipes on threads so a chatty child cannot block on a full pipe.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child
            .try_wait()
            .with_context(|| format!("{cmd}: waiting"))?
        {
            break s;
        }
        if cancel.is_cancelled() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{cmd}: interrupted by a signal");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{cmd}: did not finish within {}",
                humantime::format_duration(timeout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        success: status.success(),
        status: status.to_string(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// `systemctl restart <name>`.
pub fn restart_unit(name: &str, cancel: &Cancel) -> Result<()> {
    let o = systemctl(&["restart", name], RESTART_TIMEOUT, cancel)?;
    if !o.success {
        bail!(
            "systemctl restart {name} failed ({}): {}",
            o.status,
            o.stderr.trim()
        );
    }
    Ok(())
}

/// What `systemctl is-active <name>` prints: active, activating, failed, inactive, ...
pub fn active_state(name: &str, cancel: &Cancel) -> Result<String> {
    let o = systemctl(&["is-active", name], QUERY_TIMEOUT, cancel)?;
    Ok(o.stdout.trim().to_string())
}

/// The kubelet's healthz probe; `None` when healthz is off (`healthzPort: 0`). A wildcard
/// bind address is probed on loopback.
pub fn healthz_probe(info: &KubeletConfigInfo) -> Option<Probe> {
    if info.healthz_port == 0 {
        return None;
    }
    let host = match info.healthz_bind_address.as_str() {
        "0.0.0.0" => "127.0.0.1",
        "::" | "[::]" => "::1",
        h => h,
    };
    Some(Probe {
        scheme: Scheme::Http,
        host: Some(host.to_string()),
        port: info.healthz_port,
        path: "/healthz".into(),
    })
}

/// Wait until `systemctl is-active kubelet` says `active` and the kubelet's healthz answers
/// (HTTP 200..=399). Gives up after `timeout`, or on SIGTERM/SIGINT, naming what it last saw.
pub fn wait_kubelet_healthy(
    info: &KubeletConfigInfo,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let healthz = healthz_probe(info);
    let url = healthz.as_ref().map(|p| probe_url(p, "127.0.0.1"));
    let mut seen: Option<ProbeResult> = None;
    loop {
        let state = match active_state("kubelet", cancel) {
            Ok(s) => s,
            Err(e) => format!("error: {e:#}"),
        };
        if state == "active" {
            let Some(p) = &healthz else { return Ok(()) };
            let left = deadline.saturating_duration_since(Instant::now());
            let r = probe(
                p,
                "127.0.0.1",
                left.clamp(Duration::from_millis(200), Duration::from_secs(1)),
            );
            if r.is_healthy() {
                return Ok(());
            }
            seen = Some(r);
        }
        let health = match (&url, &seen) {
            (None, _) => "healthz is off (healthzPort: 0)".to_string(),
            (Some(u), Some(r)) => format!("{u}: {r}"),
            (Some(u), None) => format!("{u}: not probed yet"),
        };
        let what = format!("`systemctl is-active kubelet` said '{state}'; {health}");
        if cancel.is_cancelled() {
            bail!("interrupted while waiting for the kubelet: {what}");
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "the kubelet was not healthy within {}: {what}",
                humantime::format_duration(timeout)
            );
        }
        cancel.heartbeat();
        std::thread::sleep(POLL.min(left));
    }
}

/// Restart the kubelet and wait until it is healthy, reading its healthz endpoint from the
/// node's kubelet config first (so that a config it cannot read stops before the restart).
pub fn restart_kubelet(paths: &NodePaths, timeout: Duration, cancel: &Cancel) -> Result<()> {
    let host = paths.show(&paths.kubelet_config);
    let text = crate::node::kubelet_edit::read_text(&paths.root, &paths.kubelet_config)
        .with_context(|| {
            format!("{host}: cannot read the kubelet config for its healthz endpoint")
        })?;
    let info = parse_kubelet_config(text.as_bytes()).with_context(|| host.clone())?;
    let result =
        restart_unit("kubelet", cancel).and_then(|()| wait_kubelet_healthy(&info, timeout, cancel));
    match &result {
        Ok(()) => tracing::info!(
            MESSAGE_ID = crate::logging::MSG_RESTARTED,
            COMPONENT = "kubelet",
            ACTION = "restart",
            RESULT = "ok",
            "kubelet restarted and healthy"
        ),
        Err(e) => tracing::error!(
            MESSAGE_ID = crate::logging::MSG_RESTART_FAILED,
            COMPONENT = "kubelet",
            ACTION = "restart",
            RESULT = "failed",
            "{e:#}"
        ),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(addr: &str, port: u16) -> KubeletConfigInfo {
        KubeletConfigInfo {
            file_check_frequency: Duration::from_secs(20),
            healthz_bind_address: addr.into(),
            healthz_port: port,
            server_tls_bootstrap: None,
            static_pod_path: None,
        }
    }

    #[test]
    fn healthz_probe_targets() {
        let p = healthz_probe(&info("127.0.0.1", 10248)).unwrap();
        assert_eq!(probe_url(&p, "x"), "http://127.0.0.1:10248/healthz");
        let p = healthz_probe(&info("0.0.0.0", 1)).unwrap();
        assert_eq!(probe_url(&p, "x"), "http://127.0.0.1:1/healthz");
        let p = healthz_probe(&info("::", 2)).unwrap();
        assert_eq!(probe_url(&p, "x"), "http://[::1]:2/healthz");
        assert!(healthz_probe(&info("127.0.0.1", 0)).is_none());
    }
}
