//! Runs a real single-member etcd with a node's etcd certificates, so tests can prove that
//! (renewed) certificates are accepted by the program that actually uses them.

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for etcd to report healthy.
const START_TIMEOUT: Duration = Duration::from_secs(20);

fn in_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// Whether etcd and etcdctl are available. Missing binaries skip locally (the caller prints a
/// note) but panic under CI=true: a test that needs etcd must fail there, not silently pass.
pub fn require_etcd() -> bool {
    if in_path("etcd") && in_path("etcdctl") {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("etcd/etcdctl not found in PATH but CI=true: install etcd-server and etcd-client");
    }
    false
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(l.local_addr()?.port())
}

/// A running etcd; killed and reaped on drop.
pub struct Etcd {
    pub client_url: String,
    pub peer_url: String,
    pub metrics_url: String,
    pub log_path: PathBuf,
    child: Child,
}

impl Etcd {
    /// Starts etcd on loopback with `<root>/etc/kubernetes/pki/etcd/{server,peer,ca}` and waits
    /// until its /health endpoint says healthy.
    pub fn start(root: &Path, data_dir: &Path) -> Result<Etcd> {
        let pki = root.join("etc/kubernetes/pki/etcd");
        // The ports are free when probed; another process may grab one before etcd binds it,
        // so retry a few times on an early exit.
        let mut last_err = None;
        for attempt in 0..3 {
            match Self::try_start(&pki, data_dir, attempt) {
                Ok(e) => return Ok(e),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    fn try_start(pki: &Path, data_dir: &Path, attempt: u32) -> Result<Etcd> {
        fs::create_dir_all(data_dir).with_context(|| format!("mkdir {}", data_dir.display()))?;
        // etcd warns or refuses on a data dir that is not 0700; it creates data-N itself.
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))?;
        let log_path = data_dir.join(format!("etcd-{attempt}.log"));
        let log = fs::File::create(&log_path).context("creating etcd log")?;
        let (cp, pp, mp) = (free_port()?, free_port()?, free_port()?);
        let client_url = format!("https://127.0.0.1:{cp}");
        let peer_url = format!("https://127.0.0.1:{pp}");
        let metrics_url = format!("http://127.0.0.1:{mp}");
        let f = |n: &str| pki.join(n).to_string_lossy().into_owned();
        let child = Command::new("etcd")
            .args(["--name", "node"])
            .arg(format!(
                "--data-dir={}",
                data_dir.join(format!("data-{attempt}")).display()
            ))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=node={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg(format!("--listen-metrics-urls={metrics_url}"))
            .arg(format!("--cert-file={}", f("server.crt")))
            .arg(format!("--key-file={}", f("server.key")))
            .arg("--client-cert-auth=true")
            .arg(format!("--trusted-ca-file={}", f("ca.crt")))
            .arg(format!("--peer-cert-file={}", f("peer.crt")))
            .arg(format!("--peer-key-file={}", f("peer.key")))
            .arg("--peer-client-cert-auth=true")
            .arg(format!("--peer-trusted-ca-file={}", f("ca.crt")))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning etcd")?;
        let mut etcd = Etcd {
            client_url,
            peer_url,
            metrics_url,
            log_path,
            child,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = etcd.child.try_wait()? {
                bail!("etcd exited early ({status}); log:\n{}", etcd.log_tail());
            }
            if etcd.metrics_healthy() {
                return Ok(etcd);
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd not healthy within {START_TIMEOUT:?}; log:\n{}",
                    etcd.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// GET /health on the plain-HTTP metrics listener (needs no client certificate).
    fn metrics_healthy(&self) -> bool {
        let addr = self.metrics_url.trim_start_matches("http://");
        let Ok(mut s) = TcpStream::connect(addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.starts_with("HTTP/1.")
            && body.contains(" 200 ")
            && body.contains("\"health\":\"true\"")
    }

    /// The last lines of etcd's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `etcdctl endpoint health` with the given client credentials; Ok(whether it succeeded).
/// On failure etcdctl's stderr is printed so the test log shows why.
pub fn etcdctl_health(client_url: &str, ca: &Path, cert: &Path, key: &Path) -> Result<bool> {
    let (ok, err) = etcdctl_health_detail(client_url, ca, cert, key)?;
    if !ok {
        eprintln!("etcdctl endpoint health failed: {err}");
    }
    Ok(ok)
}

/// Like [`etcdctl_health`], also returning etcdctl's stderr.
pub fn etcdctl_health_detail(
    client_url: &str,
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<(bool, String)> {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={client_url}"))
        .arg(format!("--cacert={}", ca.display()))
        .arg(format!("--cert={}", cert.display()))
        .arg(format!("--key={}", key.display()))
        .args([
            "--dial-timeout=3s",
            "--command-timeout=5s",
            "endpoint",
            "health",
        ])
        .output()
        .context("spawning etcdctl")?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}
