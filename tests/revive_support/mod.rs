//! Support for the kubelet client revival tests (issue 13): a node whose kubelet client
//! certificate has the NotAfter a test asks for, a stand-in `systemctl` (tests/fakes) first on
//! PATH, a kubelet healthz endpoint on a free port, and a real `openssl s_server -Verify`
//! client-auth handshake.
#![allow(dead_code)]

#[path = "../support/fakes.rs"]
mod fakes;

use kubeadm_certd::pki::inspect::KeyAlg;
use kubeadm_certd::testkit::nodebuilder::{build, NodeSpec};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The kubelet's client link and its host path.
pub const LINK: &str = "var/lib/kubelet/pki/kubelet-client-current.pem";
pub const LINK_HOST: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
pub const KPKI: &str = "var/lib/kubelet/pki";
pub const CA: &str = "etc/kubernetes/pki/ca.crt";
pub const CONF: &str = "etc/kubernetes/kubelet.conf";

/// A built node under `<tmp>/root`, with a bin dir holding the stand-in systemctl and a
/// healthz endpoint named in its kubelet config.
pub struct RNode {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub now: OffsetDateTime,
}

/// What a run printed.
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl RNode {
    /// Leaves and CAs far from due (nothing but the kubelet client is at stake), ECDSA keys;
    /// the kubelet client certificate expires at `client_not_after` (`None`: mid-life).
    pub fn new(client_not_after: Option<OffsetDateTime>, f: impl FnOnce(&mut NodeSpec)) -> RNode {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("root");
        let now = OffsetDateTime::now_utc();
        let mut spec = NodeSpec::new(now);
        spec.key = KeyAlg::EcP256;
        spec.leaf_left = Duration::from_secs(300 * 86_400);
        spec.kubelet_client_not_after = client_not_after;
        f(&mut spec);
        build(&root, &spec).expect("build");
        let n = RNode { tmp, root, now };
        let cfg = n.p("var/lib/kubelet/config.yaml");
        let text = std::fs::read_to_string(&cfg).expect("kubelet config");
        std::fs::write(&cfg, fakes::with_live_healthz(&text)).expect("write");
        fakes::install_systemctl(&n.tmp.path().join("bin"));
        n
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The environment every run gets: the stand-in systemctl first on PATH.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "PATH".into(),
                format!(
                    "{}:{}",
                    self.tmp.path().join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
            (
                "FAKE_SYSTEMCTL_LOG".into(),
                self.tmp.path().join("systemctl.log").display().to_string(),
            ),
        ]
    }

    /// The stand-in systemctl's calls.
    pub fn systemctl_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.tmp.path().join("systemctl.log"))
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Run the binary with `--root`.
    pub fn run(&self, args: &[&str]) -> Ran {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubeadm-certd"));
        cmd.arg("--root").arg(&self.root).args(args);
        cmd.env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("FAKE_SYSTEMCTL_STATE")
            .env_remove("KUBEADM_CERTD_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        let o = cmd.output().expect("run");
        Ran {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// The link's target as written.
    pub fn link_target(&self) -> PathBuf {
        std::fs::read_link(self.p(LINK)).expect("kubelet-client-current.pem is a symlink")
    }

    /// The file the (absolute) link names, under the root.
    pub fn current_file(&self) -> PathBuf {
        let t = self.link_target();
        assert!(t.is_absolute(), "the link is not absolute: {}", t.display());
        self.root.join(t.strip_prefix("/").expect("absolute"))
    }

    /// The dated pems in the kubelet's pki directory.
    pub fn dated(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.p(KPKI))
            .expect("kubelet pki")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("kubelet-client-2") && n.ends_with(".pem"))
            .collect();
        v.sort();
        v
    }
}

impl Ran {
    #[track_caller]
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.ok,
            "{what} failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
    }
}

/// Run openssl; (success, stdout + stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), s)
}

fn ps(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// One TLS connection from a client presenting `client` (certificate then key in one file) to
/// `openssl s_server -Verify 1 -verify_return_error` trusting only `ca`, serving `server_crt`.
/// Returns whether the server accepted the client (it answered the request) and both logs.
pub fn client_auth_handshake(
    ca: &Path,
    server_crt: &Path,
    server_key: &Path,
    client: &Path,
) -> (bool, String) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let logs = tempfile::tempdir().expect("tmp");
    let srv_log = logs.path().join("server");
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(&srv_log).expect("log");
    let mut server = Command::new("openssl")
        .args(["s_server", "-accept", &addr, "-naccept", "1", "-www"])
        .args(["-Verify", "1", "-verify_return_error", "-CAfile", ps(ca)])
        .args(["-cert", ps(server_crt), "-key", ps(server_key)])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("s_server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&srv_log)
        .unwrap_or_default()
        .contains("ACCEPT")
    {
        assert!(Instant::now() < deadline, "s_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-ign_eof", "-CAfile", ps(ca)])
        .args(["-cert", ps(client), "-key", ps(client)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("s_client");
    if let Some(mut i) = c.stdin.take() {
        let _ = i.write_all(b"GET / HTTP/1.0\r\n\r\n");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = c.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = c.wait_with_output().expect("s_client output");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = server.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let client_log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let server_log = std::fs::read_to_string(&srv_log).unwrap_or_default();
    let accepted = client_log.contains("HTTP/1.0 200 ok");
    (
        accepted,
        format!("--- s_client\n{client_log}\n--- s_server\n{server_log}"),
    )
}

pub fn x509(file: &Path, what: &[&str]) -> String {
    let mut args = vec!["x509", "-in", file.to_str().unwrap(), "-noout"];
    args.extend_from_slice(what);
    let (ok, out) = openssl(&args);
    assert!(ok, "openssl x509 {what:?}: {out}");
    out
}

/// Every check of the evidence on the node's current pem.
pub fn assert_sound_client(n: &RNode, file: &Path, node: &str) {
    let ca = n.p(CA);
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(
        ok && out.trim_end().ends_with(": OK"),
        "openssl verify: {out}"
    );
    assert_eq!(
        x509(file, &["-subject"]).trim(),
        format!("subject=O = system:nodes, CN = system:node:{node}")
    );
    let ext = x509(
        file,
        &["-ext", "keyUsage,extendedKeyUsage,basicConstraints"],
    );
    assert!(
        ext.contains("X509v3 Key Usage: critical\n    Digital Signature\n"),
        "{ext}"
    );
    assert!(
        ext.contains("X509v3 Extended Key Usage: \n    TLS Web Client Authentication\n"),
        "{ext}"
    );
    assert!(ext.contains("CA:FALSE"), "{ext}");
    // Certificate then key in one file; the key is a new P-256 key matching the certificate.
    let text = std::fs::read_to_string(file).unwrap();
    let (c, k) = (
        text.find("-----BEGIN CERTIFICATE-----").unwrap(),
        text.find("-----BEGIN EC PRIVATE KEY-----").unwrap(),
    );
    assert!(c < k, "certificate then key");
    let (ok, key) = openssl(&["pkey", "-in", file.to_str().unwrap(), "-pubout"]);
    assert!(ok, "{key}");
    assert_eq!(x509(file, &["-pubkey"]), key, "the key does not match");
    let (ok, t) = openssl(&["pkey", "-in", file.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok && t.contains("prime256v1"), "{t}");
    assert_eq!(revive_mode(file), 0o600);
}

pub fn revive_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every file of the kubelet's pki dir and kubelet.conf: bytes and link targets.
pub fn kubelet_files(n: &RNode) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(n.p(KPKI)).unwrap().flatten() {
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let body = if m.file_type().is_symlink() {
            std::fs::read_link(&p)
                .unwrap()
                .display()
                .to_string()
                .into_bytes()
        } else {
            std::fs::read(&p).unwrap()
        };
        v.push((p.display().to_string(), body));
    }
    v.push((CONF.into(), std::fs::read(n.p(CONF)).unwrap()));
    v.sort();
    v
}

pub fn assert_sound_client_file(n: &RNode, file: &Path, node: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_sound_client(n, file, node);
}
