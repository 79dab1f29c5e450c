//! An independent builder of a kubeadm-shaped node that uses only the `openssl` CLI, so the engine
//! is tested against material it did not produce itself. Profiles follow kubeadm v1.29+
//! (/work/shared/reference/kubeadm.md §1–2).

use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Key algorithm, as kubeadm's `encryptionAlgorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA with this many bits (2048, 3072 or 4096), PKCS#1 `RSA PRIVATE KEY`.
    Rsa(u32),
    /// ECDSA P-256, SEC1 `EC PRIVATE KEY` with the named curve.
    EcP256,
}

#[derive(Debug, Clone)]
pub struct OsslNodeOpts {
    pub key: KeyKind,
    pub node_name: String,
    pub advertise: String,
    pub leaf_days: u32,
    pub ca_days: u32,
    pub external_etcd: bool,
    pub super_admin: bool,
}

impl Default for OsslNodeOpts {
    fn default() -> Self {
        OsslNodeOpts {
            key: KeyKind::Rsa(2048),
            node_name: "cp1".into(),
            advertise: "10.0.0.10".into(),
            leaf_days: 3,
            ca_days: 3650,
            external_etcd: false,
            super_admin: true,
        }
    }
}

/// Runs openssl with `args`; on failure the error carries its stderr.
pub fn openssl(args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .context("spawning openssl")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

fn s(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("non-UTF-8 path {}", p.display()))
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", p.display()))
}

fn mkdir(p: &Path) -> Result<()> {
    fs::create_dir_all(p).with_context(|| format!("mkdir {}", p.display()))?;
    set_mode(p, 0o755)
}

/// Generates a private key in kubeadm's on-disk format (mode 0600).
pub fn gen_key(path: &Path, kind: KeyKind) -> Result<()> {
    match kind {
        // OpenSSL 3 writes PKCS#8 unless told -traditional; kubeadm writes PKCS#1.
        KeyKind::Rsa(bits) => openssl(&[
            "genrsa",
            "-traditional",
            "-out",
            s(path)?,
            &bits.to_string(),
        ])?,
        KeyKind::EcP256 => openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            s(path)?,
        ])?,
    };
    set_mode(path, 0o600)
}

/// Uniform random serial in [1, 2^63-1), like kubeadm's `rand.Int(MaxInt64-1)+1`.
fn serial() -> Result<String> {
    let hex = openssl(&["rand", "-hex", "8"])?;
    let hex = String::from_utf8_lossy(&hex);
    let v = u64::from_str_radix(hex.trim(), 16).context("parsing openssl rand")?;
    Ok(((v % (i64::MAX as u64 - 1)) + 1).to_string())
}

/// What to put in one certificate.
struct Profile<'a> {
    cn: &'a str,
    orgs: &'a [&'a str],
    dns: Vec<String>,
    ips: Vec<String>,
    /// `serverAuth`/`clientAuth`; empty for CAs.
    eku: &'a [&'a str],
    is_ca: bool,
    days: u32,
    serial: Option<u64>,
}

impl<'a> Profile<'a> {
    fn leaf(cn: &'a str, orgs: &'a [&'a str], eku: &'a [&'a str], days: u32) -> Self {
        Profile {
            cn,
            orgs,
            dns: vec![],
            ips: vec![],
            eku,
            is_ca: false,
            days,
            serial: None,
        }
    }
    fn ca(cn: &'a str, days: u32) -> Self {
        Profile {
            cn,
            orgs: &[],
            dns: vec![cn.to_string()],
            ips: vec![],
            eku: &[],
            is_ca: true,
            days,
            serial: None,
        }
    }
}

/// Signs a certificate for `key` with `profile`: self-signed when `issuer` is None,
/// else by (ca.crt, ca.key). Writes `crt` with mode 0644.
fn sign(key: &Path, crt: &Path, profile: &Profile, issuer: Option<(&Path, &Path)>) -> Result<()> {
    let tmp = tempfile::tempdir().context("tempdir")?;
    // string_mask=pkix makes ASCII attributes PrintableString, as Go's crypto/x509 does.
    let req_cnf = tmp.path().join("req.cnf");
    fs::write(
        &req_cnf,
        "[req]\ndistinguished_name=dn\nstring_mask=pkix\nprompt=no\n[dn]\n",
    )?;
    // Go orders the subject O before CN.
    let mut subj = String::new();
    for o in profile.orgs {
        subj.push_str(&format!("/O={o}"));
    }
    subj.push_str(&format!("/CN={}", profile.cn));
    let csr = tmp.path().join("req.csr");
    openssl(&[
        "req",
        "-new",
        "-config",
        s(&req_cnf)?,
        "-key",
        s(key)?,
        "-subj",
        &subj,
        "-out",
        s(&csr)?,
    ])?;

    let mut ext = String::new();
    if profile.is_ca {
        ext.push_str("keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign\n");
        ext.push_str("basicConstraints=critical,CA:TRUE\n");
        ext.push_str("subjectKeyIdentifier=hash\n");
    } else {
        ext.push_str("keyUsage=critical,digitalSignature,keyEncipherment\n");
        ext.push_str("basicConstraints=critical,CA:FALSE\n");
        // OpenSSL 3 adds an SKI by default; Go generates one only for CAs.
        ext.push_str("subjectKeyIdentifier=none\n");
    }
    if !profile.eku.is_empty() {
        ext.push_str(&format!("extendedKeyUsage={}\n", profile.eku.join(",")));
    }
    // Go copies the issuer's SKI into AKI only when issuer != subject.
    ext.push_str(if issuer.is_some() {
        "authorityKeyIdentifier=keyid\n"
    } else {
        "authorityKeyIdentifier=none\n"
    });
    let sans: Vec<String> = profile
        .dns
        .iter()
        .map(|d| format!("DNS:{d}"))
        .chain(profile.ips.iter().map(|i| format!("IP:{i}")))
        .collect();
    if !sans.is_empty() {
        ext.push_str(&format!("subjectAltName={}\n", sans.join(",")));
    }
    let extfile = tmp.path().join("ext.cnf");
    fs::write(&extfile, ext)?;

    let serial = match profile.serial {
        Some(n) => n.to_string(),
        None => serial()?,
    };
    let days = profile.days.to_string();
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        s(&csr)?,
        "-sha256",
        "-days",
        &days,
        "-set_serial",
        &serial,
        "-extfile",
        s(&extfile)?,
        "-out",
        s(crt)?,
    ];
    match issuer {
        Some((ca_crt, ca_key)) => args.extend(["-CA", s(ca_crt)?, "-CAkey", s(ca_key)?]),
        None => args.extend(["-signkey", s(key)?]),
    }
    openssl(&args)?;
    set_mode(crt, 0o644)
}

/// Generates `<dir>/<base>.key` and signs `<dir>/<base>.crt`.
fn pair(
    dir: &Path,
    base: &str,
    kind: KeyKind,
    p: &Profile,
    issuer: Option<(&Path, &Path)>,
) -> Result<()> {
    let key = dir.join(format!("{base}.key"));
    gen_key(&key, kind)?;
    sign(&key, &dir.join(format!("{base}.crt")), p, issuer)
        .with_context(|| format!("signing {base}"))
}

fn b64_file(p: &Path) -> Result<String> {
    let out = openssl(&["base64", "-A", "-in", s(p)?])?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// The user part of a kubeconfig: embedded data, or file references (kubelet.conf).
enum Creds {
    Embedded { cert_b64: String, key_b64: String },
    Files { cert: String, key: String },
}

/// Kubeconfig text exactly as client-go's clientcmd writes it.
fn kubeconfig_text(ca_b64: &str, server: &str, user: &str, creds: &Creds) -> String {
    let user_block = match creds {
        Creds::Embedded { cert_b64, key_b64 } => {
            format!("    client-certificate-data: {cert_b64}\n    client-key-data: {key_b64}\n")
        }
        Creds::Files { cert, key } => {
            format!("    client-certificate: {cert}\n    client-key: {key}\n")
        }
    };
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca_b64}\n    server: {server}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: {user}\n  name: {user}@kubernetes\ncurrent-context: {user}@kubernetes\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n{user_block}"
    )
}

/// Builds the whole node under `root` (see the module doc and kubeadm.md §1–2).
pub fn build_openssl_node(root: &Path, opts: &OsslNodeOpts) -> Result<()> {
    let k8s = root.join("etc/kubernetes");
    let pki = k8s.join("pki");
    mkdir(&pki)?;
    let kind = opts.key;
    let leaf = opts.leaf_days;
    let node = opts.node_name.as_str();

    // CAs.
    pair(
        &pki,
        "ca",
        kind,
        &Profile::ca("kubernetes", opts.ca_days),
        None,
    )?;
    pair(
        &pki,
        "front-proxy-ca",
        kind,
        &Profile::ca("front-proxy-ca", opts.ca_days),
        None,
    )?;
    let ca = (pki.join("ca.crt"), pki.join("ca.key"));
    let ca = Some((ca.0.as_path(), ca.1.as_path()));
    let fp = (
        pki.join("front-proxy-ca.crt"),
        pki.join("front-proxy-ca.key"),
    );
    let fp = Some((fp.0.as_path(), fp.1.as_path()));

    // apiserver: DNS names de-duplicated and sorted (RemoveDuplicateAltNames), IPs in order.
    let mut dns: Vec<String> = [
        node,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .iter()
    .map(|d| d.to_string())
    .collect();
    dns.sort();
    dns.dedup();
    let mut ips = vec!["10.96.0.1".to_string()];
    if !ips.contains(&opts.advertise) {
        ips.push(opts.advertise.clone());
    }
    let mut p = Profile::leaf("kube-apiserver", &[], &["serverAuth"], leaf);
    p.dns = dns;
    p.ips = ips;
    pair(&pki, "apiserver", kind, &p, ca)?;
    let p = Profile::leaf(
        "kube-apiserver-kubelet-client",
        &["kubeadm:cluster-admins"],
        &["clientAuth"],
        leaf,
    );
    pair(&pki, "apiserver-kubelet-client", kind, &p, ca)?;
    let p = Profile::leaf("front-proxy-client", &[], &["clientAuth"], leaf);
    pair(&pki, "front-proxy-client", kind, &p, fp)?;

    if !opts.external_etcd {
        let etcd = pki.join("etcd");
        mkdir(&etcd)?;
        pair(
            &etcd,
            "ca",
            kind,
            &Profile::ca("etcd-ca", opts.ca_days),
            None,
        )?;
        let eca = (etcd.join("ca.crt"), etcd.join("ca.key"));
        let eca = Some((eca.0.as_path(), eca.1.as_path()));
        let mut dns = vec![node.to_string(), "localhost".to_string()];
        dns.sort();
        dns.dedup();
        let mut ips = vec![opts.advertise.clone()];
        for ip in ["127.0.0.1", "::1"] {
            if !ips.iter().any(|i| i == ip) {
                ips.push(ip.to_string());
            }
        }
        for base in ["server", "peer"] {
            let mut p = Profile::leaf(node, &[], &["serverAuth", "clientAuth"], leaf);
            p.dns = dns.clone();
            p.ips = ips.clone();
            pair(&etcd, base, kind, &p, eca)?;
        }
        let p = Profile::leaf("kube-etcd-healthcheck-client", &[], &["clientAuth"], leaf);
        pair(&etcd, "healthcheck-client", kind, &p, eca)?;
        let p = Profile::leaf("kube-apiserver-etcd-client", &[], &["clientAuth"], leaf);
        pair(&pki, "apiserver-etcd-client", kind, &p, eca)?;
    }

    // Service-account key pair: never a certificate; sa.pub is PKIX and written 0600 like a key.
    gen_key(&pki.join("sa.key"), kind)?;
    openssl(&[
        "pkey",
        "-in",
        s(&pki.join("sa.key"))?,
        "-pubout",
        "-out",
        s(&pki.join("sa.pub"))?,
    ])?;
    set_mode(&pki.join("sa.pub"), 0o600)?;

    // Kubeconfigs with embedded credentials, signed by ca.
    let server = format!("https://{}:6443", opts.advertise);
    let ca_b64 = b64_file(&pki.join("ca.crt"))?;
    let mut confs: Vec<(&str, &str, &[&str])> =
        vec![("admin", "kubernetes-admin", &["kubeadm:cluster-admins"])];
    if opts.super_admin {
        confs.push(("super-admin", "kubernetes-super-admin", &["system:masters"]));
    }
    confs.push(("controller-manager", "system:kube-controller-manager", &[]));
    confs.push(("scheduler", "system:kube-scheduler", &[]));
    let tmp = tempfile::tempdir().context("tempdir")?;
    for (file, cn, orgs) in confs {
        let p = Profile::leaf(cn, orgs, &["clientAuth"], leaf);
        pair(tmp.path(), file, kind, &p, ca)?;
        let creds = Creds::Embedded {
            cert_b64: b64_file(&tmp.path().join(format!("{file}.crt")))?,
            key_b64: b64_file(&tmp.path().join(format!("{file}.key")))?,
        };
        let path = k8s.join(format!("{file}.conf"));
        fs::write(&path, kubeconfig_text(&ca_b64, &server, cn, &creds))?;
        set_mode(&path, 0o600)?;
    }

    build_kubelet(root, opts, &ca_b64, &server, ca)
}

/// kubelet.conf after `kubelet-finalize`, plus the kubelet's own client and serving material.
fn build_kubelet(
    root: &Path,
    opts: &OsslNodeOpts,
    ca_b64: &str,
    server: &str,
    ca: Option<(&Path, &Path)>,
) -> Result<()> {
    let node = opts.node_name.as_str();
    let kpki = root.join("var/lib/kubelet/pki");
    mkdir(&kpki)?;
    let user = format!("system:node:{node}");
    let current = "/var/lib/kubelet/pki/kubelet-client-current.pem";
    let creds = Creds::Files {
        cert: current.into(),
        key: current.into(),
    };
    let conf = root.join("etc/kubernetes/kubelet.conf");
    fs::write(&conf, kubeconfig_text(ca_b64, server, &user, &creds))?;
    set_mode(&conf, 0o600)?;

    // The kubelet's certificate manager always uses P-256 and stores cert then key in one file.
    let tmp = tempfile::tempdir().context("tempdir")?;
    let p = Profile::leaf(&user, &["system:nodes"], &["clientAuth"], opts.leaf_days);
    pair(tmp.path(), "client", KeyKind::EcP256, &p, ca)?;
    let mut pem = fs::read(tmp.path().join("client.crt"))?;
    pem.extend(fs::read(tmp.path().join("client.key"))?);
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]-[hour]-[minute]-[second]"
        ))
        .context("formatting date")?;
    let dated = format!("kubelet-client-{stamp}.pem");
    fs::write(kpki.join(&dated), pem)?;
    set_mode(&kpki.join(&dated), 0o600)?;
    // Absolute, as the kubelet links it (it resolves below --root).
    symlink(
        format!("/var/lib/kubelet/pki/{dated}"),
        kpki.join("kubelet-client-current.pem"),
    )
    .context("symlink")?;

    // Self-signed serving cert as client-go's GenerateSelfSignedCertKey: RSA-2048, a throwaway
    // CA (serial 1) signing the leaf (serial 2), kubelet.crt = leaf + CA.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock")?
        .as_secs();
    let ca_cn = format!("{node}-ca@{now}");
    let leaf_cn = format!("{node}@{now}");
    let mut cap = Profile::ca(&ca_cn, 365);
    cap.dns = vec![];
    cap.serial = Some(1);
    pair(tmp.path(), "sca", KeyKind::Rsa(2048), &cap, None)?;
    let mut lp = Profile::leaf(&leaf_cn, &[], &["serverAuth"], 365);
    lp.dns = vec![node.to_string()];
    lp.serial = Some(2);
    let (sca_crt, sca_key) = (tmp.path().join("sca.crt"), tmp.path().join("sca.key"));
    pair(
        &kpki,
        "kubelet",
        KeyKind::Rsa(2048),
        &lp,
        Some((&sca_crt, &sca_key)),
    )?;
    let mut chain = fs::read(kpki.join("kubelet.crt"))?;
    chain.extend(fs::read(&sca_crt)?);
    fs::write(kpki.join("kubelet.crt"), chain)?;
    Ok(())
}

/// Every CA-signed leaf of a node built by [`build_openssl_node`]: (cert, key, issuing CA cert),
/// relative to root. Kubeconfig certs are embedded and not listed.
pub fn leaves(opts: &OsslNodeOpts) -> Vec<(PathBuf, PathBuf, PathBuf)> {
    let p = |s: &str| PathBuf::from("etc/kubernetes/pki").join(s);
    let mut v = vec![
        ("apiserver", "ca"),
        ("apiserver-kubelet-client", "ca"),
        ("front-proxy-client", "front-proxy-ca"),
    ];
    if !opts.external_etcd {
        v.extend([
            ("apiserver-etcd-client", "etcd/ca"),
            ("etcd/server", "etcd/ca"),
            ("etcd/peer", "etcd/ca"),
            ("etcd/healthcheck-client", "etcd/ca"),
        ]);
    }
    v.into_iter()
        .map(|(b, ca)| {
            (
                p(&format!("{b}.crt")),
                p(&format!("{b}.key")),
                p(&format!("{ca}.crt")),
            )
        })
        .collect()
}
