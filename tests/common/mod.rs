//! Shared helpers for the end-to-end tests: build kubeadm-shaped nodes in temp dirs, run the
//! real binary against them, snapshot the tree, and inspect certificates independently of the
//! crate's own parser (x509-parser directly, and the openssl CLI).
#![allow(dead_code)] // each test binary uses a different part

pub mod checks;

use base64::Engine;
use kubeadm_certd::nodebuilder::{build, NodeSpec};
use kubeadm_certd::pki::inspect::KeyAlg;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kubeadm-certd");
/// The tool's own state directory, relative to the root.
pub const STATE: &str = "var/lib/kubeadm-certd";

/// PKI leaves: (kubeadm name, base path under certificatesDir, CA base).
pub const PKI_LEAVES: [(&str, &str, &str); 7] = [
    ("apiserver", "apiserver", "ca"),
    ("apiserver-etcd-client", "apiserver-etcd-client", "etcd/ca"),
    ("apiserver-kubelet-client", "apiserver-kubelet-client", "ca"),
    ("etcd-healthcheck-client", "etcd/healthcheck-client", "etcd/ca"),
    ("etcd-peer", "etcd/peer", "etcd/ca"),
    ("etcd-server", "etcd/server", "etcd/ca"),
    ("front-proxy-client", "front-proxy-client", "front-proxy-ca"),
];

/// Kubeconfigs kubeadm renews (all signed by `ca`).
pub const KUBECONFIGS: [&str; 4] =
    ["admin.conf", "controller-manager.conf", "scheduler.conf", "super-admin.conf"];

/// kubeadm's names, sorted, with their long names (reference §3.4).
pub const LONG_NAMES: [(&str, &str); 11] = [
    ("admin.conf", "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself"),
    ("apiserver", "certificate for serving the Kubernetes API"),
    ("apiserver-etcd-client", "certificate the apiserver uses to access etcd"),
    ("apiserver-kubelet-client", "certificate for the API server to connect to kubelet"),
    ("controller-manager.conf", "certificate embedded in the kubeconfig file for the controller manager to use"),
    ("etcd-healthcheck-client", "certificate for liveness probes to healthcheck etcd"),
    ("etcd-peer", "certificate for etcd nodes to communicate with each other"),
    ("etcd-server", "certificate for serving etcd"),
    ("front-proxy-client", "certificate for the front proxy client"),
    ("scheduler.conf", "certificate embedded in the kubeconfig file for the scheduler manager to use"),
    ("super-admin.conf", "certificate embedded in the kubeconfig file for the super-admin"),
];

/// The long name of a kubeadm certificate name.
pub fn long_name(name: &str) -> &'static str {
    LONG_NAMES.iter().find(|(n, _)| *n == name).map(|(_, l)| *l).unwrap()
}

/// The CA base of a certificate name (kubeconfigs: `ca`).
pub fn ca_of(name: &str) -> &'static str {
    PKI_LEAVES.iter().find(|(n, _, _)| *n == name).map(|(_, _, c)| *c).unwrap_or("ca")
}

/// A node built in a temp dir: `<tmp>/root` is the node; `<tmp>` also holds files that live
/// outside the root (configs, "outside" symlink targets, CSR dirs).
pub struct Node {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub spec: NodeSpec,
}

impl Node {
    /// kubeadm's default node (RSA-2048, leaves 3 days left, CAs 10 years), adjusted by `f`.
    pub fn build(f: impl FnOnce(&mut NodeSpec)) -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let mut spec = NodeSpec::new(OffsetDateTime::now_utc());
        f(&mut spec);
        build(&root, &spec).unwrap();
        Node { tmp, root, spec }
    }

    /// An empty root (for nodes built by other tools).
    pub fn empty(spec: NodeSpec) -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        Node { tmp, root, spec }
    }

    /// A copy of another node's tree (cheaper than building: no key generation).
    pub fn copy_of(src: &Node) -> Node {
        let n = Node::empty(src.spec.clone());
        std::fs::remove_dir(&n.root).unwrap();
        let st = Command::new("cp").arg("-a").arg(&src.root).arg(&n.root).status().unwrap();
        assert!(st.success(), "cp -a failed");
        n
    }

    /// Run like [`Node::run`], but kill the process if it has not exited after `limit`
    /// (a hang, e.g. blocked opening a FIFO); `None` then.
    pub fn run_watchdog(&self, args: &[&str], limit: std::time::Duration) -> Option<Out> {
        let mut full = vec!["--root".to_string(), self.root.display().to_string()];
        full.extend(args.iter().map(|s| s.to_string()));
        let dir = tempfile::tempdir().unwrap();
        let (o, e) = (dir.path().join("out"), dir.path().join("err"));
        let mut child = Command::new(BIN)
            .args(&full)
            .env("NO_COLOR", "1")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&o).unwrap())
            .stderr(std::fs::File::create(&e).unwrap())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        Some(Out {
            args: full,
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&o).unwrap(),
            stderr: strip_ansi(&std::fs::read_to_string(&e).unwrap()),
        })
    }

    pub fn default_node() -> Node {
        Node::build(|_| {})
    }

    /// A host path (`/etc/kubernetes/...`) resolved under the root.
    pub fn path(&self, host: &str) -> PathBuf {
        self.root.join(host.trim_start_matches('/'))
    }

    /// A file under certificatesDir.
    pub fn pki(&self, rel: &str) -> PathBuf {
        self.path("/etc/kubernetes/pki").join(rel)
    }

    /// A file under kubeconfigDir.
    pub fn kc(&self, name: &str) -> PathBuf {
        self.path("/etc/kubernetes").join(name)
    }

    /// A path outside the root, inside the temp dir.
    pub fn outside(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Run the binary with `--root` and `args`.
    pub fn run(&self, args: &[&str]) -> Out {
        let mut full = vec!["--root".to_string(), self.root.display().to_string()];
        full.extend(args.iter().map(|s| s.to_string()));
        run_bin(&full)
    }

    /// Write `yaml` to a config file outside the root and run with `--config` it.
    pub fn run_with_config(&self, yaml: &str, args: &[&str]) -> Out {
        let cfg = self.outside("config.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        let mut full = vec!["--config", cfg.to_str().unwrap()];
        full.extend_from_slice(args);
        self.run(&full)
    }

    /// Everything under the root except the tool's own state directory.
    pub fn tree(&self) -> Tree {
        Tree::of(&self.root, &[STATE])
    }

    /// Everything under the root.
    pub fn tree_all(&self) -> Tree {
        Tree::of(&self.root, &[])
    }

    /// Backup directories under the state dir.
    pub fn backups(&self) -> Vec<PathBuf> {
        let d = self.root.join(STATE).join("backups");
        let mut v: Vec<PathBuf> = match std::fs::read_dir(&d) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    /// Staged temp files left anywhere under the root.
    pub fn staged_leftovers(&self) -> Vec<String> {
        self.tree_all().0.keys().filter(|k| k.ends_with(".kubeadm-certd-new")).cloned().collect()
    }

    /// The leaf certificate DER of a certificate name (PKI file or kubeconfig).
    pub fn leaf_der(&self, name: &str) -> Vec<u8> {
        match PKI_LEAVES.iter().find(|(n, _, _)| *n == name) {
            Some((_, base, _)) => pem_ders(&std::fs::read(self.pki(&format!("{base}.crt"))).unwrap())[0].clone(),
            None => pem_ders(&kubeconfig_field(&self.kc(name), "client-certificate-data"))[0].clone(),
        }
    }

    /// The private key PEM bytes of a certificate name.
    pub fn key_pem(&self, name: &str) -> Vec<u8> {
        match PKI_LEAVES.iter().find(|(n, _, _)| *n == name) {
            Some((_, base, _)) => std::fs::read(self.pki(&format!("{base}.key"))).unwrap(),
            None => kubeconfig_field(&self.kc(name), "client-key-data"),
        }
    }

    /// The CA certificate file of a certificate name.
    pub fn ca_crt(&self, name: &str) -> PathBuf {
        self.pki(&format!("{}.crt", ca_of(name)))
    }

    /// The certificate names present on this node.
    pub fn names(&self) -> Vec<&'static str> {
        LONG_NAMES
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !(self.spec.external_etcd && ca_of(n) == "etcd/ca"))
            .filter(|n| self.spec.super_admin || *n != "super-admin.conf")
            .collect()
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Out {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    /// stderr with ANSI escapes removed.
    pub stderr: String,
}

impl Out {
    /// Lines of stderr that report an error.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.starts_with("error:")).collect()
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code of {:?}\n--- stdout\n{}\n--- stderr\n{}", self.args, self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.assert_code(0)
    }

    /// Exactly one `error:` line, which contains every one of `needles`.
    #[track_caller]
    pub fn assert_one_error(&self, needles: &[&str]) {
        let lines = self.error_lines();
        assert_eq!(lines.len(), 1, "want exactly one error line from {:?}, got:\n{}", self.args, self.stderr);
        for n in needles {
            assert!(lines[0].contains(n), "error line of {:?} lacks {n:?}:\n{}", self.args, lines[0]);
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            if it.peek() == Some(&'[') {
                it.next();
                for d in it.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Run the binary with exactly these arguments.
pub fn run_bin<S: AsRef<str>>(args: &[S]) -> Out {
    let args: Vec<String> = args.iter().map(|s| s.as_ref().to_string()).collect();
    let o = Command::new(BIN)
        .args(&args)
        .env("NO_COLOR", "1")
        .env_remove("JOURNAL_STREAM")
        .env_remove("KUBEADM_CERTD_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Out {
        args,
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: strip_ansi(&String::from_utf8_lossy(&o.stderr)),
    }
}

/// One filesystem entry of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { mode: u32 },
    File { mode: u32, uid: u32, gid: u32, bytes: Vec<u8> },
    Symlink { target: PathBuf },
    Other { mode: u32 },
}

/// A snapshot of a directory tree: every entry's kind, mode, owner, bytes, symlink target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree(pub BTreeMap<String, Entry>);

impl Tree {
    pub fn of(root: &Path, exclude: &[&str]) -> Tree {
        let mut m = BTreeMap::new();
        walk(root, root, exclude, &mut m);
        Tree(m)
    }

    /// Paths that differ between two snapshots.
    pub fn diff(&self, other: &Tree) -> Vec<String> {
        let mut keys: Vec<&String> = self.0.keys().chain(other.0.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter().filter(|k| self.0.get(*k) != other.0.get(*k)).cloned().collect()
    }

    #[track_caller]
    pub fn assert_same(&self, after: &Tree, what: &str) {
        let d = self.diff(after);
        assert!(d.is_empty(), "{what}: the node tree changed: {d:?}");
    }
}

fn walk(root: &Path, dir: &Path, exclude: &[&str], m: &mut BTreeMap<String, Entry>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        if exclude.iter().any(|x| rel == *x || rel.starts_with(&format!("{x}/"))) {
            continue;
        }
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        let e = if ft.is_symlink() {
            Entry::Symlink { target: std::fs::read_link(&p).unwrap() }
        } else if ft.is_dir() {
            walk(root, &p, exclude, m);
            Entry::Dir { mode }
        } else if ft.is_file() {
            Entry::File { mode, uid: meta.uid(), gid: meta.gid(), bytes: std::fs::read(&p).unwrap() }
        } else {
            Entry::Other { mode }
        };
        m.insert(rel, e);
    }
}

/// File mode bits.
pub fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// DER of every PEM block in `bytes`.
pub fn pem_ders(bytes: &[u8]) -> Vec<Vec<u8>> {
    pem::parse_many(bytes).unwrap().into_iter().map(|p| p.contents().to_vec()).collect()
}

/// The PEM label of the first block.
pub fn pem_label(bytes: &[u8]) -> String {
    pem::parse(bytes).unwrap().tag().to_string()
}

/// A base64 field of a kubeconfig, decoded, read from the text line by line (independently of
/// the crate's YAML handling).
pub fn kubeconfig_field(path: &Path, field: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let prefix = format!("{field}: ");
    let line = text
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{}: no {field}", path.display()));
    base64::engine::general_purpose::STANDARD.decode(line[prefix.len()..].trim()).unwrap()
}

/// Run openssl; returns (success, stdout+stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl").args(args).output().unwrap();
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), s)
}

/// openssl must succeed; returns its output.
#[track_caller]
pub fn openssl_ok(args: &[&str]) -> String {
    let (ok, out) = openssl(args);
    assert!(ok, "openssl {args:?} failed:\n{out}");
    out
}

/// `openssl verify -CAfile ca leaf` passes (leaf given as DER, written to a temp file).
#[track_caller]
pub fn assert_verifies(ca: &Path, leaf_der: &[u8], what: &str) {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("leaf.pem");
    std::fs::write(&f, pem::encode(&pem::Pem::new("CERTIFICATE", leaf_der.to_vec()))).unwrap();
    let (ok, out) = openssl(&["verify", "-CAfile", ca.to_str().unwrap(), f.to_str().unwrap()]);
    assert!(ok && out.contains(": OK"), "{what}: openssl verify failed:\n{out}");
}

/// The subject as openssl prints it in RFC 2253 form.
pub fn openssl_subject(der: &[u8]) -> String {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("c.pem");
    std::fs::write(&f, pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))).unwrap();
    openssl_ok(&["x509", "-in", f.to_str().unwrap(), "-noout", "-subject", "-nameopt", "RFC2253"])
        .trim()
        .to_string()
}

/// The public key (SPKI PEM) that openssl derives from a private key PEM.
pub fn openssl_pubkey_of_key(key_pem: &[u8]) -> String {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("k.pem");
    std::fs::write(&f, key_pem).unwrap();
    openssl_ok(&["pkey", "-in", f.to_str().unwrap(), "-pubout"])
}

/// The public key (SPKI PEM) that openssl reads from a certificate.
pub fn openssl_pubkey_of_cert(der: &[u8]) -> String {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("c.pem");
    std::fs::write(&f, pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))).unwrap();
    openssl_ok(&["x509", "-in", f.to_str().unwrap(), "-noout", "-pubkey"])
}

/// What the tests compare between certificates, parsed with x509-parser directly.
#[derive(Debug, Clone)]
pub struct Facts {
    pub subject_raw: Vec<u8>,
    pub issuer_raw: Vec<u8>,
    pub dns: Vec<String>,
    pub ips: Vec<Vec<u8>>,
    /// (serverAuth, clientAuth, other OIDs)
    pub eku: Option<(bool, bool, Vec<String>)>,
    /// (critical, digitalSignature, keyEncipherment, every other bit clear)
    pub key_usage: Option<(bool, bool, bool, bool)>,
    /// Some(ca) when basicConstraints is present.
    pub basic_ca: Option<bool>,
    pub aki: Option<Vec<u8>>,
    pub ski: Option<Vec<u8>>,
    pub spki: Vec<u8>,
    pub alg: Option<KeyAlg>,
    pub raw_serial: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Parse one certificate DER.
pub fn facts(der: &[u8]) -> Facts {
    let (_, c) = X509Certificate::from_der(der).unwrap();
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    if let Some(san) = c.subject_alternative_name().unwrap() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(b) => ips.push(b.to_vec()),
                _ => {}
            }
        }
    }
    let eku = c.extended_key_usage().unwrap().map(|e| {
        (e.value.server_auth, e.value.client_auth, e.value.other.iter().map(|o| o.to_id_string()).collect())
    });
    let key_usage = c.key_usage().unwrap().map(|k| {
        let ds = k.value.digital_signature();
        let ke = k.value.key_encipherment();
        let others = k.value.flags & !0b101 == 0; // bit 0 digitalSignature, bit 2 keyEncipherment
        (k.critical, ds, ke, others)
    });
    let basic_ca = c.basic_constraints().unwrap().map(|b| b.value.ca);
    let (mut aki, mut ski) = (None, None);
    for ext in c.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => aki = a.key_identifier.as_ref().map(|k| k.0.to_vec()),
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
            _ => {}
        }
    }
    let pk = c.public_key();
    let alg = match pk.parsed() {
        Ok(PublicKey::RSA(r)) => Some(KeyAlg::Rsa(r.key_size())),
        Ok(PublicKey::EC(_)) => {
            let curve = pk.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
            (curve.as_deref() == Some("1.2.840.10045.3.1.7")).then_some(KeyAlg::EcP256)
        }
        _ => None,
    };
    Facts {
        subject_raw: c.subject().as_raw().to_vec(),
        issuer_raw: c.issuer().as_raw().to_vec(),
        dns,
        ips,
        eku,
        key_usage,
        basic_ca,
        aki,
        ski,
        spki: pk.raw.to_vec(),
        alg,
        raw_serial: c.raw_serial().to_vec(),
        not_before: c.validity().not_before.to_datetime(),
        not_after: c.validity().not_after.to_datetime(),
    }
}

/// The serial's value, if it is a positive DER integer of at most 8 value bytes.
pub fn serial_value(raw: &[u8]) -> Option<u64> {
    if raw.first().is_some_and(|b| b & 0x80 != 0) {
        return None; // negative
    }
    let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.len() > 8 {
        return None;
    }
    Some(trimmed.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)))
}

/// Sorted copy.
pub fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Generate a CA outside the node with openssl: returns (crt, key) paths.
pub fn openssl_ca(dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let (crt, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    openssl_ok(&[
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key.to_str().unwrap(), "-out",
        crt.to_str().unwrap(), "-days", "3650", "-subj", &format!("/CN={cn}"), "-addext",
        "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
    ]);
    (crt, key)
}

/// Sign a CSR with openssl: a client-or-server leaf with kubeadm's extensions.
pub fn openssl_sign(csr: &Path, ca_crt: &Path, ca_key: &Path, eku: &str, out: &Path) {
    let ext = out.with_extension("ext");
    std::fs::write(
        &ext,
        format!(
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={eku}\nbasicConstraints=critical,CA:FALSE\nauthorityKeyIdentifier=keyid\n"
        ),
    )
    .unwrap();
    openssl_ok(&[
        "x509", "-req", "-in", csr.to_str().unwrap(), "-CA", ca_crt.to_str().unwrap(), "-CAkey",
        ca_key.to_str().unwrap(), "-set_serial", "0x1234abcd", "-days", "365", "-sha256", "-extfile",
        ext.to_str().unwrap(), "-out", out.to_str().unwrap(),
    ]);
}
