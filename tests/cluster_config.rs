//! Issue 18 items 1-3 against the stand-in kube-apiserver (loopback only, see TESTING.md):
//! the cluster's ClusterConfiguration (`kube-system/kubeadm-config`) sets the renewal validity
//! and the new keys' algorithm, a copy in the state dir stands in when the API is down, an
//! explicit config key wins, a malformed ConfigMap is one warning and today's behaviour,
//! every encryptionAlgorithm gives keys that `openssl pkey -check` accepts and that match
//! their certificates, `kubelet-client kubeconfig` names the controlPlaneEndpoint on a
//! local-mode node, and check-expiration prints kubeadm's header lines only after a live read.
//! The real binary runs against kubeadm-shaped nodes; openssl checks what it wrote.

use kubeadm_certd::node::cluster_config::EncryptionAlgorithm;
use kubeadm_certd::pki::inspect::{parse_cert_file, KeyAlg};
use kubeadm_certd::testkit::apiserver::{ApiServer, Options};
use kubeadm_certd::testkit::nodebuilder::{build, NodeSpec};
use std::path::{Path, PathBuf};
use std::process::Command;
use time::OffsetDateTime;

const BIN: &str = env!("CARGO_BIN_EXE_kubeadm-certd");
const DAY: i64 = 86_400;

/// A v1beta4 ClusterConfiguration as kubeadm uploads it, with the values.
fn v1beta4(validity: &str, alg: &str) -> String {
    format!(
        "apiServer: {{}}\napiVersion: kubeadm.k8s.io/v1beta4\ncaCertificateValidityPeriod: 87600h0m0s\n\
         certificateValidityPeriod: {validity}\ncertificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\n\
         controlPlaneEndpoint: cp.example.internal\nencryptionAlgorithm: {alg}\n\
         kind: ClusterConfiguration\nkubernetesVersion: v1.33.2\n"
    )
}

/// A control-plane node (RSA-2048 keys, leaves with 3 days left) and the stand-in API server
/// with the node's CA, admin.conf pointed at it.
struct Fx {
    dir: tempfile::TempDir,
    api: ApiServer,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), &NodeSpec::new(OffsetDateTime::now_utc())).unwrap();
        let api = ApiServer::start(Options::for_node(dir.path()).unwrap()).unwrap();
        api.point_kubeconfig(&dir.path().join("etc/kubernetes/admin.conf"))
            .unwrap();
        Fx { dir, api }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn put(&self, doc: &str) {
        self.api.put_configmap(
            "kube-system",
            "kubeadm-config",
            &[("ClusterConfiguration", doc)],
        );
    }

    /// Run the binary; `config` is written to a file outside the root.
    fn run(&self, config: Option<&str>, args: &[&str]) -> Out {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(self.root());
        if let Some(yaml) = config {
            let f = self.root().with_extension("config.yaml");
            std::fs::write(&f, yaml).unwrap();
            c.arg("--config").arg(f);
        }
        let o = c
            .args(args)
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .output()
            .unwrap();
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn renew(&self, config: Option<&str>, names: &[&str]) -> Out {
        let mut args = vec!["renew"];
        args.extend_from_slice(names);
        args.push("--no-restart");
        let o = self.run(config, &args);
        o.ok();
        o
    }

    fn pki(&self, f: &str) -> PathBuf {
        self.root().join("etc/kubernetes/pki").join(f)
    }

    /// Days from now to the apiserver certificate's NotAfter, and its key algorithm.
    fn apiserver(&self) -> (i64, Option<KeyAlg>) {
        self.leaf("apiserver")
    }

    /// Days from now to `<base>.crt`'s NotAfter, and its key algorithm.
    fn leaf(&self, base: &str) -> (i64, Option<KeyAlg>) {
        let f = self.pki(&format!("{base}.crt"));
        let c = &parse_cert_file(&std::fs::read(f).unwrap()).unwrap()[0];
        let left = (c.not_after - OffsetDateTime::now_utc()).whole_seconds();
        ((left + DAY / 2) / DAY, c.key_alg)
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) {
        assert_eq!(self.code, 0, "{}\n{}", self.stdout, self.stderr);
    }
    fn warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .collect()
    }
}

fn openssl(args: &[&str]) -> String {
    let o = Command::new("openssl").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The key passes `openssl pkey -check`, and its public key is the certificate's.
fn check_pair(crt: &Path, key: &Path) {
    let (crt, key) = (crt.to_str().unwrap(), key.to_str().unwrap());
    let check = openssl(&["pkey", "-in", key, "-check", "-noout"]);
    assert!(check.contains("valid"), "{check}");
    assert_eq!(
        openssl(&["pkey", "-in", key, "-pubout"]),
        openssl(&["x509", "-in", crt, "-noout", "-pubkey"]),
        "{key} does not match {crt}"
    );
}

fn pem_label(f: &Path) -> String {
    let t = std::fs::read_to_string(f).unwrap();
    t.lines().next().unwrap_or_default().to_string()
}

#[test]
fn validity_and_algorithm_come_from_the_cluster_then_from_its_copy() {
    let fx = Fx::new();
    fx.put(&v1beta4("17520h", "ECDSA-P256"));
    // The dry run says where each value comes from, and keeps no copy.
    let dry = fx.run(None, &["renew", "all", "--dry-run"]);
    dry.ok();
    assert!(dry.stdout.contains("certificate validity: 730d, from the cluster's ClusterConfiguration (certificateValidityPeriod, kubeadm.k8s.io/v1beta4) as read at "), "{}", dry.stdout);
    assert!(
        dry.stdout.contains(
            "new keys: ECDSA-P256, from the cluster's ClusterConfiguration (encryptionAlgorithm"
        ),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("(live)"), "{}", dry.stdout);
    let cache = fx.root().join("var/lib/kubeadm-certd/cluster-config.json");
    assert!(!cache.exists(), "a dry run keeps nothing");

    let out = fx.renew(None, &["all"]);
    assert_eq!(fx.apiserver(), (730, Some(KeyAlg::EcP256)));
    assert_eq!(
        pem_label(&fx.pki("apiserver.key")),
        "-----BEGIN EC PRIVATE KEY-----"
    );
    check_pair(&fx.pki("apiserver.crt"), &fx.pki("apiserver.key"));
    // The renewal's log line says where the values came from.
    assert!(
        out.stderr.contains("apiserver renewed, valid until ")
            && out.stderr.contains("validity 730d from the cluster's ClusterConfiguration (certificateValidityPeriod, kubeadm.k8s.io/v1beta4) as read at ")
            && out.stderr.contains("ECDSA-P256 key from the cluster's ClusterConfiguration (encryptionAlgorithm"),
        "{}",
        out.stderr
    );
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert_eq!(kept["kubernetesVersion"], "v1.33.2");
    assert_eq!(kept["apiVersion"], "kubeadm.k8s.io/v1beta4");

    // The API goes away: the copy in the state dir gives the same.
    fx.api.set_down(true);
    std::fs::remove_file(fx.pki("apiserver.crt")).unwrap();
    build_leaf_again(&fx);
    assert_eq!(fx.apiserver().1, Some(KeyAlg::Rsa(2048)));
    let out = fx.renew(None, &["apiserver"]);
    assert_eq!(fx.apiserver(), (730, Some(KeyAlg::EcP256)));
    check_pair(&fx.pki("apiserver.crt"), &fx.pki("apiserver.key"));
    assert!(
        out.stderr.contains("(cached in the state dir)"),
        "{}",
        out.stderr
    );
    let dry = fx.run(None, &["renew", "apiserver", "--dry-run"]);
    assert!(dry.stdout.contains("certificate validity: 730d, from the cluster's ClusterConfiguration (certificateValidityPeriod, kubeadm.k8s.io/v1beta4) as read at "), "{}", dry.stdout);
    assert!(
        dry.stdout.contains("(cached in the state dir); "),
        "{}",
        dry.stdout
    );
    assert!(out.warnings().is_empty(), "{}", out.stderr);
}

/// Put back an RSA apiserver pair from a fresh node with the same CA, so that the next
/// renewal shows the algorithm changing again.
fn build_leaf_again(fx: &Fx) {
    let other = tempfile::tempdir().unwrap();
    let mut spec = NodeSpec::new(OffsetDateTime::now_utc());
    spec.shared_cas = Some(fx.root().to_path_buf());
    build(other.path(), &spec).unwrap();
    for f in ["apiserver.crt", "apiserver.key"] {
        std::fs::copy(other.path().join("etc/kubernetes/pki").join(f), fx.pki(f)).unwrap();
    }
}

#[test]
fn an_explicit_certificate_validity_wins() {
    let fx = Fx::new();
    fx.put(&v1beta4("17520h", "ECDSA-P256"));
    let out = fx.renew(Some("certificateValidity: 400d\n"), &["apiserver"]);
    assert_eq!(fx.apiserver(), (400, Some(KeyAlg::EcP256)));
    assert!(
        out.stderr
            .contains("validity 400d from the config file (certificateValidity)"),
        "{}",
        out.stderr
    );
    // encryptionAlgorithm in the config wins too.
    fx.renew(
        Some("certificateValidity: 400d\nencryptionAlgorithm: RSA-3072\n"),
        &["apiserver"],
    );
    assert_eq!(fx.apiserver(), (400, Some(KeyAlg::Rsa(3072))));
}

#[test]
fn a_malformed_configmap_is_one_warning_and_todays_behaviour() {
    let fx = Fx::new();
    fx.put(&v1beta4("two years", "ECDSA-P256"));
    let out = fx.renew(None, &["apiserver"]);
    assert_eq!(out.warnings().len(), 1, "{}", out.stderr);
    assert!(
        out.warnings()[0].starts_with(
            "warning: ConfigMap kube-system/kubeadm-config, key ClusterConfiguration: certificateValidityPeriod \"two years\": "
        ),
        "{}",
        out.stderr
    );
    // As before issue 18: one year, and a new key of the old key's algorithm and form.
    assert_eq!(fx.apiserver(), (365, Some(KeyAlg::Rsa(2048))));
    assert_eq!(
        pem_label(&fx.pki("apiserver.key")),
        "-----BEGIN RSA PRIVATE KEY-----"
    );
    assert!(!fx
        .root()
        .join("var/lib/kubeadm-certd/cluster-config.json")
        .exists());
    // An unknown algorithm is refused as a whole too: nothing half-applied.
    fx.put(&v1beta4("17520h", "ED25519"));
    let out = fx.renew(None, &["apiserver"]);
    assert_eq!(out.warnings().len(), 1, "{}", out.stderr);
    assert!(out.warnings()[0].contains("encryptionAlgorithm \"ED25519\" is not one of"));
    assert_eq!(fx.apiserver(), (365, Some(KeyAlg::Rsa(2048))));
}

/// `renew --csr-only`: the new key of each CSR follows the effective encryptionAlgorithm as a
/// renewal's does: the cluster's (live, then the kept copy), and the config file's when set.
#[test]
fn csr_only_keys_follow_the_cluster_algorithm() {
    let fx = Fx::new();
    fx.put(&v1beta4("17520h", "ECDSA-P384"));
    let csr_only = |config: Option<&str>, dir: &str| -> (String, String) {
        let d = fx.root().with_extension(dir);
        let o = fx.run(
            config,
            &[
                "renew",
                "--csr-only",
                "--csr-dir",
                d.to_str().unwrap(),
                "apiserver",
            ],
        );
        o.ok();
        let (key, csr) = (d.join("apiserver.key"), d.join("apiserver.csr"));
        let (key, csr) = (key.to_str().unwrap(), csr.to_str().unwrap());
        let req = openssl(&["req", "-in", csr, "-noout", "-verify", "-pubkey"]);
        let pubkey = openssl(&["pkey", "-in", key, "-pubout"]);
        assert!(
            req.ends_with(&pubkey),
            "the CSR is not for its key:\n{req}\n{pubkey}"
        );
        let text = openssl(&["pkey", "-in", key, "-noout", "-text"]);
        (pem_label(Path::new(key)), text)
    };
    let (label, text) = csr_only(None, "live");
    assert_eq!(label, "-----BEGIN EC PRIVATE KEY-----");
    assert!(text.contains("secp384r1"), "{text}");
    // The API goes away: the kept copy says the same.
    fx.api.set_down(true);
    let (label, text) = csr_only(None, "kept");
    assert_eq!(label, "-----BEGIN EC PRIVATE KEY-----");
    assert!(text.contains("secp384r1"), "{text}");
    // The config file's encryptionAlgorithm wins.
    let (label, text) = csr_only(Some("encryptionAlgorithm: RSA-3072\n"), "config");
    assert_eq!(label, "-----BEGIN RSA PRIVATE KEY-----");
    assert!(text.contains("3072 bit"), "{text}");
    // The node itself is left as it was: still the RSA-2048 pair.
    assert_eq!(fx.apiserver().1, Some(KeyAlg::Rsa(2048)));
}

/// Renew every leaf and kubeconfig with `alg`; every new key passes `openssl pkey -check`,
/// matches its certificate, and is written as kubeadm writes that algorithm.
fn every_key_is(alg: EncryptionAlgorithm) {
    let fx = Fx::new();
    fx.put(&v1beta4("8760h0m0s", alg.as_str()));
    fx.renew(
        None,
        &[
            "apiserver",
            "etcd-server",
            "front-proxy-client",
            "admin.conf",
        ],
    );
    let want = KeyAlg::from(alg);
    let label = match want {
        KeyAlg::Rsa(_) => "-----BEGIN RSA PRIVATE KEY-----",
        _ => "-----BEGIN EC PRIVATE KEY-----",
    };
    for base in ["apiserver", "etcd/server", "front-proxy-client"] {
        let (crt, key) = (
            fx.pki(&format!("{base}.crt")),
            fx.pki(&format!("{base}.key")),
        );
        let c = &parse_cert_file(&std::fs::read(&crt).unwrap()).unwrap()[0];
        assert_eq!(c.key_alg, Some(want), "{base}");
        assert_eq!(pem_label(&key), label, "{base}");
        check_pair(&crt, &key);
        // The chain still verifies with the (RSA) CA.
        let ca = if base.starts_with("etcd/") {
            "etcd/ca.crt"
        } else if base.starts_with("front") {
            "front-proxy-ca.crt"
        } else {
            "ca.crt"
        };
        let v = openssl(&[
            "verify",
            "-CAfile",
            fx.pki(ca).to_str().unwrap(),
            crt.to_str().unwrap(),
        ]);
        assert!(v.contains(": OK"), "{v}");
    }
    // The kubeconfig's embedded key too.
    let kc = kubeadm_certd::pki::kubeconfig::parse(
        &std::fs::read_to_string(fx.root().join("etc/kubernetes/admin.conf")).unwrap(),
    )
    .unwrap();
    let d = tempfile::tempdir().unwrap();
    let (crt, key) = (d.path().join("c.crt"), d.path().join("c.key"));
    std::fs::write(&crt, &kc.client_cert).unwrap();
    std::fs::write(&key, &kc.client_key).unwrap();
    assert_eq!(pem_label(&key), label);
    check_pair(&crt, &key);
}

#[test]
fn encryption_algorithm_rsa_2048() {
    every_key_is(EncryptionAlgorithm::Rsa2048);
}

#[test]
fn encryption_algorithm_rsa_3072() {
    every_key_is(EncryptionAlgorithm::Rsa3072);
}

#[test]
fn encryption_algorithm_rsa_4096() {
    every_key_is(EncryptionAlgorithm::Rsa4096);
}

#[test]
fn encryption_algorithm_ecdsa_p256() {
    every_key_is(EncryptionAlgorithm::EcdsaP256);
}

#[test]
fn encryption_algorithm_ecdsa_p384() {
    every_key_is(EncryptionAlgorithm::EcdsaP384);
}

/// The `server:` of a kubeconfig text.
fn server_of(kubeconfig: &str) -> String {
    kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap_or_else(|| panic!("{kubeconfig}"))
        .to_string()
}

#[test]
fn a_worker_kubeconfig_names_the_control_plane_endpoint() {
    let fx = Fx::new();
    // Local mode (ControlPlaneKubeletLocalMode, v1.33+): kubelet.conf names this node's own
    // API server.
    let conf = fx.root().join("etc/kubernetes/kubelet.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let local = text.replace(&server_of(&text), "https://127.0.0.1:6443");
    std::fs::write(&conf, &local).unwrap();
    fx.put(&v1beta4("8760h0m0s", "RSA-2048"));
    let kc = |fx: &Fx| {
        let o = fx.run(
            None,
            &["kubelet-client", "kubeconfig", "--node", "worker-1"],
        );
        o.ok();
        o
    };
    let o = kc(&fx);
    assert_eq!(
        server_of(&o.stdout),
        "https://cp.example.internal:6443",
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains("from the ClusterConfiguration's controlPlaneEndpoint"),
        "{}",
        o.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        local,
        "this node's kubelet.conf is kept"
    );
    // A port in the endpoint is kept; IPv6 is bracketed.
    fx.put(&v1beta4("8760h0m0s", "RSA-2048").replace("cp.example.internal", "\"[fd00::10]:8443\""));
    assert_eq!(server_of(&kc(&fx).stdout), "https://[fd00::10]:8443");
    // --server still wins.
    let o = fx.run(
        None,
        &[
            "kubelet-client",
            "kubeconfig",
            "--node",
            "worker-1",
            "--server",
            "https://lb:443",
        ],
    );
    assert_eq!(server_of(&o.stdout), "https://lb:443");
    // No ClusterConfiguration anywhere (API down, nothing kept): admin.conf's server, not
    // kubelet.conf's local one.
    fx.api.set_down(true);
    let o = kc(&fx);
    assert_eq!(
        server_of(&o.stdout),
        fx.api.url().trim_end_matches('/'),
        "{}",
        o.stderr
    );
    // Once a renewal kept the copy, it names the endpoint with the API down too.
    fx.api.set_down(false);
    fx.put(&v1beta4("8760h0m0s", "RSA-2048"));
    fx.renew(None, &["front-proxy-client"]);
    fx.api.set_down(true);
    let o = kc(&fx);
    assert_eq!(server_of(&o.stdout), "https://cp.example.internal:6443");
    assert!(o.stderr.contains("cached as read at"), "{}", o.stderr);
}

const HEADER: &str = "[check-expiration] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...\n[check-expiration] Use 'kubeadm init phase upload-config --config your-config-file' to re-upload it.\n\nCERTIFICATE ";

#[test]
fn check_expiration_prints_the_header_only_when_read_live() {
    let fx = Fx::new();
    fx.put(&v1beta4("8760h0m0s", "RSA-2048"));
    let o = fx.run(None, &["check-expiration"]);
    o.ok();
    // v1.33.2 from the live ClusterConfiguration (the manifest says v1.31.0): v1.33's lines.
    assert!(o.stdout.starts_with(HEADER), "{}", o.stdout);
    // Nothing is kept by a read-only command; with the API down there is no header.
    fx.api.set_down(true);
    let o = fx.run(None, &["check-expiration"]);
    o.ok();
    assert!(o.stdout.starts_with("CERTIFICATE "), "{}", o.stdout);
    // A kept copy still picks the release (v1.33.2), but there is no header without a live read.
    fx.api.set_down(false);
    fx.renew(None, &["front-proxy-client"]);
    fx.put(&v1beta4("8760h0m0s", "RSA-2048").replace("v1.33.2", "v1.30.4"));
    let o = fx.run(None, &["check-expiration"]);
    assert!(
        o.stdout
            .starts_with("[check-expiration] Reading configuration from the cluster...\n"),
        "v1.30.4 read live: the old lines\n{}",
        o.stdout
    );
    fx.api.set_down(true);
    let o = fx.run(None, &["check-expiration", "-o", "json"]);
    o.ok();
    assert!(o.stdout.starts_with('{'), "{}", o.stdout);
    let o = fx.run(None, &["check-expiration"]);
    assert!(o.stdout.starts_with("CERTIFICATE "), "{}", o.stdout);
    // A malformed ConfigMap read live: one warning, no header.
    fx.api.set_down(false);
    fx.put("apiVersion: kubeadm.k8s.io/v1beta4\nencryptionAlgorithm: DSA\n");
    let o = fx.run(None, &["check-expiration"]);
    assert!(o.stdout.starts_with("CERTIFICATE "), "{}", o.stdout);
    assert_eq!(o.warnings().len(), 1, "{}", o.stderr);
}

/// `run --once` (the timer): restarts and the textfile off, the clock check off.
const QUIET: &str = "restart:\n  enabled: false\nmetrics:\n  textfile: \"\"\nrequireTimeSync: false\napprover:\n  mode: off\n";

#[test]
fn the_daemon_renews_with_the_cluster_values_and_then_with_its_copy() {
    let fx = Fx::new();
    fx.put(&v1beta4("17520h", "ECDSA-P256"));
    // front-proxy-client waits for the second cycle (the daemon renews nothing twice a day).
    let first = format!("{QUIET}exclude: [front-proxy-client]\n");
    let o = fx.run(Some(&first), &["run", "--once"]);
    o.ok();
    assert_eq!(fx.apiserver(), (730, Some(KeyAlg::EcP256)));
    assert_eq!(fx.leaf("front-proxy-client"), (3, Some(KeyAlg::Rsa(2048))));
    check_pair(&fx.pki("apiserver.crt"), &fx.pki("apiserver.key"));
    assert!(
        o.stderr.contains("ECDSA-P256 key from the cluster's ClusterConfiguration (encryptionAlgorithm, kubeadm.k8s.io/v1beta4) as read at "),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("ClusterConfiguration of ConfigMap kube-system/kubeadm-config read and kept in /var/lib/kubeadm-certd/cluster-config.json: kubeadm.k8s.io/v1beta4: kubernetesVersion v1.33.2, certificateValidityPeriod 730d, encryptionAlgorithm ECDSA-P256"),
        "{}",
        o.stderr
    );
    // API down: the next due renewal still takes 730 days and P-256, from the copy.
    fx.api.set_down(true);
    let o = fx.run(Some(QUIET), &["run", "--once"]);
    o.ok();
    assert_eq!(fx.leaf("front-proxy-client"), (730, Some(KeyAlg::EcP256)));
    check_pair(
        &fx.pki("front-proxy-client.crt"),
        &fx.pki("front-proxy-client.key"),
    );
    assert!(
        o.stderr.contains("(cached in the state dir)"),
        "{}",
        o.stderr
    );
    assert!(
        !o.stderr.contains("ERROR"),
        "no client noise while the API is down\n{}",
        o.stderr
    );
}
