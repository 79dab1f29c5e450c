//! Benchmark helper for scripts/bench.
//!
//! `crypto_floor build-node DIR [--leaf-days N]`: build a fresh kubeadm-shaped node (RSA-2048,
//! manifests, kubelet config) with the library's node builder; leaves expire in N days
//! (default 3, so everything is due).
//!
//! `crypto_floor floor DIR [--iters N]`: the crypto floor of `renew all`: generate the same 11
//! RSA-2048 keys, in parallel across cores as src/renew.rs `generate_keys` does, and sign the
//! 11 certificates with the node's CA keys. Nothing else (no scan, no files written). With
//! `--iters 1` (default) it is one process to time from outside; with more it prints an
//! in-process breakdown (key generation vs signing, and serial key generation for contrast).
//!
//! `crypto_floor check-phases DIR [--iters N]`: where check-expiration's time goes, in process:
//! the start-up recovery pass, the scan, and one RSA private key parse (aws-lc validates the
//! whole key, which dominates both).

use anyhow::{anyhow, bail, Context, Result};
use kubeadm_certd::pki::keys;
use kubeadm_certd::testkit::nodebuilder::{build, NodeSpec};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose as Eku, IsCa, Issuer, KeyPair,
    KeyUsagePurpose as Ku, RsaKeySize, SanType,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The 11 certificates `renew all` renews: (signing CA, CN, O, is server).
const LEAVES: [(&str, &str, &str, bool); 11] = [
    ("ca", "kube-apiserver", "", true),
    (
        "ca",
        "kube-apiserver-kubelet-client",
        "kubeadm:cluster-admins",
        false,
    ),
    ("front-proxy-ca", "front-proxy-client", "", false),
    ("etcd/ca", "kube-apiserver-etcd-client", "", false),
    ("etcd/ca", "cp1", "", true),
    ("etcd/ca", "cp1", "", true),
    ("etcd/ca", "kube-etcd-healthcheck-client", "", false),
    ("ca", "kubernetes-admin", "kubeadm:cluster-admins", false),
    ("ca", "kubernetes-super-admin", "system:masters", false),
    ("ca", "system:kube-controller-manager", "", false),
    ("ca", "system:kube-scheduler", "", false),
];

fn gen_rsa() -> Result<KeyPair> {
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
        .map_err(|e| anyhow!("key generation: {e}"))
}

/// n keys over all cores: the same work split as src/act/renew.rs `generate_keys` (rayon).
fn generate_parallel(n: usize) -> Result<Vec<KeyPair>> {
    use rayon::prelude::*;
    (0..n).into_par_iter().map(|_| gen_rsa()).collect()
}

struct CaMat {
    name: &'static str,
    pem: String,
    key: KeyPair,
}

fn load_cas(dir: &Path) -> Result<Vec<CaMat>> {
    let pki = dir.join("etc/kubernetes/pki");
    ["ca", "front-proxy-ca", "etcd/ca"]
        .into_iter()
        .map(|name| {
            let crt = pki.join(format!("{name}.crt"));
            let key = pki.join(format!("{name}.key"));
            let pem = std::fs::read_to_string(&crt)
                .with_context(|| format!("reading {}", crt.display()))?;
            let bytes =
                std::fs::read(&key).with_context(|| format!("reading {}", key.display()))?;
            let key = keys::parse_key_file(&bytes)
                .with_context(|| format!("parsing {}", key.display()))?
                .pair;
            Ok(CaMat { name, pem, key })
        })
        .collect()
}

/// Sign the 11 leaves with their CAs; returns the total DER size (so nothing is optimised away).
fn sign_all(cas: &[CaMat], leaf_keys: &[KeyPair]) -> Result<usize> {
    let now = OffsetDateTime::now_utc();
    let mut total = 0;
    for ((ca_name, cn, org, server), key) in LEAVES.iter().zip(leaf_keys) {
        let ca = cas
            .iter()
            .find(|c| c.name == *ca_name)
            .ok_or_else(|| anyhow!("no CA {ca_name}"))?;
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if !org.is_empty() {
            p.distinguished_name.push(DnType::OrganizationName, *org);
        }
        p.distinguished_name.push(DnType::CommonName, *cn);
        if *server {
            for d in ["cp1", "kubernetes", "kubernetes.default", "localhost"] {
                p.subject_alt_names
                    .push(SanType::DnsName(d.to_string().try_into()?));
            }
            p.subject_alt_names
                .push(SanType::IpAddress(IpAddr::from([10, 0, 0, 10])));
            p.extended_key_usages = vec![Eku::ServerAuth, Eku::ClientAuth];
        } else {
            p.extended_key_usages = vec![Eku::ClientAuth];
        }
        p.key_usages = vec![Ku::DigitalSignature, Ku::KeyEncipherment];
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = true;
        p.serial_number = Some(kubeadm_certd::pki::issue::random_serial().into());
        p.not_before = now - Duration::from_secs(300);
        p.not_after = now + Duration::from_secs(365 * 86_400);
        let issuer = Issuer::from_ca_cert_pem(&ca.pem, &ca.key)?;
        total += p.signed_by(key, &issuer)?.der().len();
    }
    Ok(total)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn floor(dir: &Path, iters: usize) -> Result<()> {
    let cas = load_cas(dir)?;
    if iters <= 1 {
        let k = generate_parallel(LEAVES.len())?;
        sign_all(&cas, &k)?;
        return Ok(());
    }
    let (mut gen, mut sign, mut serial) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iters {
        let t = Instant::now();
        let k = generate_parallel(LEAVES.len())?;
        gen.push(ms(t.elapsed()));
        let t = Instant::now();
        sign_all(&cas, &k)?;
        sign.push(ms(t.elapsed()));
        let t = Instant::now();
        gen_rsa()?;
        serial.push(ms(t.elapsed()));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "iterations={iters} cores={} keygen_11_parallel_ms={:.1} sign_11_ms={:.2} one_rsa2048_keygen_ms={:.1}",
        std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1),
        mean(&gen),
        mean(&sign),
        mean(&serial)
    );
    Ok(())
}

fn check_phases(dir: &Path, iters: usize) -> Result<()> {
    let ctx = kubeadm_certd::context::Ctx::load_from(dir, None)?;
    let key = std::fs::read(dir.join("etc/kubernetes/pki/apiserver.key"))?;
    let n = iters.max(1);
    let (mut rec, mut scan, mut parse) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for _ in 0..n {
        let t = Instant::now();
        kubeadm_certd::act::recover::recover_pki(&ctx.paths)?;
        rec += t.elapsed();
        let t = Instant::now();
        let s = kubeadm_certd::plan::scan::scan(&ctx.paths);
        scan += t.elapsed();
        if !s.problems().is_empty() {
            bail!("the node has problems: {:?}", s.problems());
        }
        let t = Instant::now();
        keys::parse_key_file(&key)?;
        parse += t.elapsed();
    }
    let per = |d: Duration| ms(d) / n as f64;
    println!(
        "iterations={n} recover_pki_ms={:.2} scan_ms={:.2} one_rsa2048_key_parse_ms={:.2}",
        per(rec),
        per(scan),
        per(parse)
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| -> Result<Option<usize>> {
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(Some(
                args.get(i + 1)
                    .ok_or_else(|| anyhow!("{name} needs a value"))?
                    .parse()
                    .with_context(|| name.to_string())?,
            )),
            None => Ok(None),
        }
    };
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("build-node"), Some(dir)) => {
            let mut spec = NodeSpec::new(OffsetDateTime::now_utc());
            spec.leaf_left = Duration::from_secs(opt("--leaf-days")?.unwrap_or(3) as u64 * 86_400);
            build(&PathBuf::from(dir), &spec)
        }
        (Some("floor"), Some(dir)) => floor(Path::new(dir), opt("--iters")?.unwrap_or(1)),
        (Some("check-phases"), Some(dir)) => {
            check_phases(Path::new(dir), opt("--iters")?.unwrap_or(20))
        }
        _ => bail!(
            "usage: crypto_floor build-node DIR [--leaf-days N] | floor DIR [--iters N] \
             | check-phases DIR [--iters N]"
        ),
    }
}
