//! A kubeadm-style HA test cluster: three node roots that share the CAs (each with its own
//! leaves and its own IP, 127.0.0.11-13, as SAN) and a real 3-member etcd 3.4 over TLS on
//! those IPs (client 2379, peer 2380, metrics 2381), each member started from its node's own
//! pki/etcd files and described by an `etcd.yaml` written as kubeadm writes it for a joined
//! control plane. The fixed ports allow one cluster at a time: a flock on a file in /tmp
//! serialises every test binary that uses this harness.

#![allow(dead_code)] // each test binary uses a different part

use kubeadm_certd::config::Settings;
use kubeadm_certd::node::paths::{NodePaths, Root};
use kubeadm_certd::testkit::nodebuilder::{self, NodeSpec};
use nix::fcntl::{Flock, FlockArg};
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The node IPs.
pub const IPS: [&str; 3] = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];
/// The file every cluster test locks.
pub const LOCK_FILE: &str = "/tmp/kubeadm-certd-etcd-cluster.lock";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether etcd is installed; panics under CI=true when it is not (a test needing etcd must
/// fail there, not pass silently).
pub fn require_etcd() -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("etcd").is_file()))
        .unwrap_or(false);
    if !found && std::env::var("CI").as_deref() == Ok("true") {
        panic!("etcd not found in PATH but CI=true: install etcd-server");
    }
    found
}

/// The `--initial-cluster` of the three members.
pub fn initial_cluster() -> String {
    (0..3)
        .map(|i| format!("cp{}=https://{}:2380", i + 1, IPS[i]))
        .collect::<Vec<_>>()
        .join(",")
}

/// kubeadm's etcd.yaml for member `name` at `ip` (host paths; `initial` as kubeadm writes it:
/// the whole cluster for a joined member).
pub fn etcd_manifest(name: &str, ip: &str, initial: &str, exe: &[String]) -> String {
    let mut cmd: Vec<String> = exe.to_vec();
    cmd.extend(etcd_flags(name, ip, initial));
    let cmd: String = cmd.iter().map(|c| format!("    - {c}\n")).collect();
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://{ip}:2379
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
{cmd}    image: registry.k8s.io/etcd:3.5.15-0
    imagePullPolicy: IfNotPresent
    livenessProbe:
      failureThreshold: 8
      httpGet:
        host: {ip}
        path: /health?exclude=NOSPACE&serializable=true
        port: 2381
        scheme: HTTP
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: /etc/kubernetes/pki/etcd
      name: etcd-certs
  hostNetwork: true
  priorityClassName: system-node-critical
  volumes:
  - hostPath:
      path: /etc/kubernetes/pki/etcd
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
status: {{}}
"
    )
}

/// etcd's flags as kubeadm writes them (host paths).
pub fn etcd_flags(name: &str, ip: &str, initial: &str) -> Vec<String> {
    let k = "/etc/kubernetes/pki/etcd";
    vec![
        format!("--advertise-client-urls=https://{ip}:2379"),
        format!("--cert-file={k}/server.crt"),
        "--client-cert-auth=true".into(),
        "--data-dir=/var/lib/etcd".into(),
        "--experimental-initial-corrupt-check=true".into(),
        format!("--initial-advertise-peer-urls=https://{ip}:2380"),
        format!("--initial-cluster={initial}"),
        "--initial-cluster-state=new".into(),
        format!("--key-file={k}/server.key"),
        format!("--listen-client-urls=https://{ip}:2379"),
        format!("--listen-metrics-urls=http://{ip}:2381"),
        format!("--listen-peer-urls=https://{ip}:2380"),
        format!("--name={name}"),
        format!("--peer-cert-file={k}/peer.crt"),
        "--peer-client-cert-auth=true".into(),
        format!("--peer-key-file={k}/peer.key"),
        format!("--peer-trusted-ca-file={k}/ca.crt"),
        "--snapshot-count=10000".into(),
        format!("--trusted-ca-file={k}/ca.crt"),
    ]
}

/// One control-plane node of the test cluster.
pub struct ClusterNode {
    /// cp1..cp3
    pub name: String,
    /// Its IP.
    pub ip: String,
    /// Its root directory.
    pub root: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl ClusterNode {
    /// The node's paths with default settings.
    pub fn paths(&self) -> NodePaths {
        Settings::default().paths(&Root::new(&self.root))
    }

    /// The client URL.
    pub fn client_url(&self) -> String {
        format!("https://{}:2379", self.ip)
    }

    fn log_path(&self) -> PathBuf {
        self.root.join(format!("etcd-{}.log", self.starts))
    }

    /// Start this member's etcd with the flags of its manifest, resolved under its root.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let root = self.root.display().to_string();
        let flags: Vec<String> = etcd_flags(&self.name, &self.ip, &initial_cluster())
            .into_iter()
            .map(|f| {
                f.replace("=/etc/", &format!("={root}/etc/"))
                    .replace("=/var/", &format!("={root}/var/"))
            })
            .collect();
        let data = self.root.join("var/lib/etcd");
        fs::create_dir_all(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
        self.starts += 1;
        let log = fs::File::create(self.log_path()).unwrap();
        let child = Command::new("etcd")
            .args(&flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
    }

    /// Kill this member (SIGKILL, as a crash or a parked manifest under a hurried kubelet).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the member is running.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// GET /health on the metrics listener: true once the member has a leader.
    pub fn healthy(&self) -> bool {
        let addr = format!("{}:2381", self.ip);
        let Ok(mut s) = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1))
        else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains(" 200 ") && body.contains("\"health\":\"true\"")
    }

    /// The end of the current etcd log.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three node roots sharing their CAs, and (once started) their etcd members.
pub struct Cluster {
    /// The three nodes.
    pub nodes: Vec<ClusterNode>,
    _tmp: tempfile::TempDir,
    _lock: Flock<fs::File>,
}

/// Members left running by an earlier test process that died (a panic in a child, a killed
/// test binary): with the lock held, any etcd on the harness's addresses is a leftover, and
/// it would hold the fixed ports. SIGKILL them and wait (bounded) until they are gone.
fn kill_strays() {
    let strays = || -> Vec<i32> {
        let Ok(rd) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let pid: i32 = e.file_name().to_str()?.parse().ok()?;
                let cmd = fs::read(e.path().join("cmdline")).ok()?;
                let cmd = String::from_utf8_lossy(&cmd);
                IPS.iter()
                    .any(|ip| cmd.contains(&format!("--listen-peer-urls=https://{ip}:2380")))
                    .then_some(pid)
            })
            .collect()
    };
    for pid in strays() {
        eprintln!("killing etcd pid {pid} left on the harness addresses by an earlier test");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !strays().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Take the cluster lock (blocks until no other test uses the fixed ports).
pub fn lock() -> Flock<fs::File> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_FILE)
        .expect("open the cluster lock file");
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("flock the cluster lock file")
}

impl Cluster {
    /// Build the three roots (nothing runs yet); `None` when etcd is not installed (and not
    /// under CI). `spec` adjusts each node's NodeSpec.
    pub fn build(spec: impl Fn(&mut NodeSpec)) -> Option<Cluster> {
        if !require_etcd() {
            eprintln!("etcd not installed; skipping");
            return None;
        }
        let lock = lock();
        kill_strays();
        let tmp = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let mut nodes = Vec::new();
        for (i, ip) in IPS.iter().enumerate() {
            let name = format!("cp{}", i + 1);
            let root = tmp.path().join(&name);
            let mut s = NodeSpec::new(now);
            s.node_name = name.clone();
            s.advertise = ip.parse::<IpAddr>().unwrap();
            s.super_admin = i == 0;
            s.shared_cas = (i > 0).then(|| tmp.path().join("cp1"));
            spec(&mut s);
            nodebuilder::build(&root, &s).unwrap();
            let text = etcd_manifest(&name, ip, &initial_cluster(), &["etcd".to_string()]);
            fs::write(root.join("etc/kubernetes/manifests/etcd.yaml"), text).unwrap();
            nodes.push(ClusterNode {
                name,
                ip: ip.to_string(),
                root,
                child: None,
                starts: 0,
            });
        }
        Some(Cluster {
            nodes,
            _tmp: tmp,
            _lock: lock,
        })
    }

    /// Build and start all three members; waits until every one is healthy.
    pub fn start() -> Option<Cluster> {
        let mut c = Self::build(|_| {})?;
        for n in &mut c.nodes {
            n.start();
        }
        c.wait_healthy(&[0, 1, 2]);
        Some(c)
    }

    /// Wait (bounded) until the given members report healthy.
    pub fn wait_healthy(&mut self, which: &[usize]) {
        let deadline = Instant::now() + START_TIMEOUT;
        for &i in which {
            while !self.nodes[i].healthy() {
                if let Some(c) = self.nodes[i].child.as_mut() {
                    if let Ok(Some(st)) = c.try_wait() {
                        panic!(
                            "etcd {} exited ({st}):\n{}",
                            i + 1,
                            self.nodes[i].log_tail()
                        );
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd {} not healthy within {START_TIMEOUT:?}:\n{}",
                    i + 1,
                    self.nodes[i].log_tail()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// Node i's root.
    pub fn root(&self, i: usize) -> &Path {
        &self.nodes[i].root
    }
}

/// The python stand-in of the restart tests (apiserver, controller-manager, scheduler).
const STANDIN: &str = include_str!("../restart_support/standin.py");
/// Where the stand-in and its hooks live, as seen inside the pods' mount namespace.
pub const STANDIN_DIR: &str = "/etc/kubernetes/standin";
/// etcd's data dir inside the pods' view (the stand-in kubelet bind-mounts only /etc).
const ETCD_DATA: &str = "/etc/kubernetes/etcd-data";

impl Cluster {
    /// Build three roots whose manifests run under a stand-in kubelet each (with the node's
    /// etc at /etc): etcd.yaml runs the real member, the other three run the python
    /// stand-in. Ports of the stand-ins differ per node, so their command lines do too.
    pub fn build_for_kubelets() -> Option<Cluster> {
        use kubeadm_certd::testkit::nodebuilder::Ports;
        let ports: Vec<u16> = {
            let ls: Vec<std::net::TcpListener> = (0..9)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
                .collect();
            ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
        };
        let next = std::sync::atomic::AtomicUsize::new(0);
        let c = Self::build(|s| {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            s.key = kubeadm_certd::pki::inspect::KeyAlg::EcP256;
            s.ports = Ports {
                etcd_client: 2379,
                etcd_peer: 2380,
                etcd_metrics: 2381,
                apiserver: ports[3 * i],
                controller_manager: ports[3 * i + 1],
                scheduler: ports[3 * i + 2],
            };
        })?;
        for n in &c.nodes {
            n.prepare_for_kubelet();
        }
        Some(c)
    }
}

impl ClusterNode {
    fn host(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    /// `manifests/<component>.yaml`.
    pub fn manifest_path(&self, component: &str) -> PathBuf {
        self.host(&format!("/etc/kubernetes/manifests/{component}.yaml"))
    }

    /// The parking directory.
    pub fn parking(&self) -> PathBuf {
        self.host("/etc/kubernetes/tmp/kubeadm-certd-parked")
    }

    /// Write a stand-in hook (`<component>.die` keeps a component from starting).
    pub fn hook(&self, file: &str, content: Option<&str>) {
        let p = self.host(&format!("{STANDIN_DIR}/{file}"));
        match content {
            Some(c) => fs::write(p, c).unwrap(),
            None => {
                let _ = fs::remove_file(p);
            }
        }
    }

    fn prepare_for_kubelet(&self) {
        let standin = self.host(STANDIN_DIR);
        fs::create_dir_all(&standin).unwrap();
        fs::write(standin.join("standin.py"), STANDIN).unwrap();
        // The controller-manager and scheduler stand-ins serve a self-signed pair.
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        fs::write(standin.join("self.crt"), ck.cert.pem()).unwrap();
        fs::write(standin.join("self.key"), ck.signing_key.serialize_pem()).unwrap();
        for name in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            let path = self.manifest_path(name);
            let text = fs::read_to_string(&path).unwrap();
            assert!(text.contains(&format!("    - {name}\n")));
            let text = text.replacen(
                &format!("    - {name}\n"),
                &format!("    - /usr/bin/python3\n    - {STANDIN_DIR}/standin.py\n    - {name}\n"),
                1,
            );
            // The stand-ins listen on 127.0.0.1 only.
            let text = text.replace(&format!("host: {}\n", self.ip), "host: 127.0.0.1\n");
            fs::write(&path, text).unwrap();
        }
        let text = etcd_manifest(&self.name, &self.ip, &initial_cluster(), &["etcd".into()])
            .replace(
                "--data-dir=/var/lib/etcd",
                &format!("--data-dir={ETCD_DATA}"),
            )
            .replace("path: /var/lib/etcd", &format!("path: {ETCD_DATA}"))
            .replace("/health?exclude=NOSPACE&serializable=true", "/health");
        fs::write(self.manifest_path("etcd"), text).unwrap();
        let data = self.host(ETCD_DATA);
        fs::create_dir_all(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
        let kc = self.host("/var/lib/kubelet/config.yaml");
        let text = fs::read_to_string(&kc).unwrap();
        fs::write(
            &kc,
            text.replace("fileCheckFrequency: 0s", "fileCheckFrequency: 1s"),
        )
        .unwrap();
    }

    /// The daemon's config file (outside the root), with `extra` appended.
    pub fn write_config(&self, extra: &str) -> PathBuf {
        let p = self
            .root
            .with_file_name(format!("{}-config.yaml", self.name));
        let text = format!(
            "checkInterval: 2s\njitter: 0s\nrestart:\n  timeout: 60s\n  minHold: 1s\nmetrics:\n  textfile: /var/lib/kubeadm-certd/metrics.prom\n{extra}"
        );
        fs::write(&p, text).unwrap();
        p
    }

    /// kubeadm-certd on this node.
    pub fn command(&self, config: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubeadm-certd"));
        c.arg("--root")
            .arg(&self.root)
            .arg("--config")
            .arg(config)
            .args(args);
        c.env_remove("JOURNAL_STREAM")
            .env("KUBEADM_CERTD_LOG", "info");
        c
    }

    /// Start `kubeadm-certd run` with its log in the node's directory.
    pub fn daemon(&self, config: &Path) -> Daemon {
        let log = self
            .root
            .with_file_name(format!("{}-daemon.log", self.name));
        let f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = self
            .command(config, &["run"])
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("spawn the daemon");
        Daemon {
            child: Some(child),
            log,
        }
    }

    /// Components still owed a restart.
    pub fn owed(&self) -> Vec<String> {
        fs::read(self.host("/var/lib/kubeadm-certd/restarts-owed.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

/// A running daemon; SIGTERMed (then reaped) on drop.
pub struct Daemon {
    child: Option<Child>,
    /// Its log file.
    pub log: PathBuf,
}

impl Daemon {
    /// The log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no release, no cleanup.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (bounded; SIGKILL after 60 s).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
