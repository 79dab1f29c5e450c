//! External-CA flow. `renew --csr-only` writes, for each selected certificate, a new key and a
//! CSR carrying the old certificate's subject and SANs (kubeadm's removed `--csr-only`,
//! S-alpha: flat `<csr-dir>/<name>.key` and `.csr`). `install-signed` verifies what the
//! external CA returned and installs it with the same backup and atomic rules as a renewal.

use crate::act::renew::{Prepared, Renewed};
use crate::act::store::atomic;
use crate::node::cluster_config::EncryptionAlgorithm;
use crate::node::NodePaths;
use crate::pki::inspect::{self, CertInfo};
use crate::pki::issue::{self, subject_of};
use crate::pki::keys;
use crate::pki::material::{FileProblem, Loaded};
use crate::plan::scan::Scan;
use anyhow::{anyhow, bail, Context, Result};
use rcgen::{CertificateParams, SanType};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

fn loaded<'a>(scan: &'a Scan, name: &str) -> Result<Option<&'a Loaded>> {
    let e = scan
        .cert(name)
        .ok_or_else(|| anyhow!("{name}: not a certificate kubeadm-certd knows on this node"))?;
    match &e.state {
        Ok(l) => Ok(l.as_ref()),
        Err(p) => Err(anyhow!("{p}")),
    }
}

/// What `write_csrs` did.
#[derive(Debug, Default)]
pub struct CsrsWritten {
    /// Long names of the selected certificates that are not on this node (kubeadm prints
    /// `MISSING!` for each).
    pub missing: Vec<String>,
    /// The CSR files written.
    pub written: Vec<PathBuf>,
}

/// Write `<dir>/<name>.key` and `<dir>/<name>.csr` for each named certificate that exists.
/// Existing files are never overwritten. The new key follows `algorithm` (the config's
/// `encryptionAlgorithm`, else the cluster's ClusterConfiguration's) exactly as a renewal's
/// does (`keys::new_key_spec`), as kubeadm's renewal manager makes a CSR's key with
/// `EncryptionAlgorithm: rm.cfg.EncryptionAlgorithmType()` (kubernetes/kubernetes
/// `cmd/kubeadm/app/phases/certs/renewal/manager.go`, `CreateRenewCSR`); with no algorithm
/// known, the old key's algorithm and form, as before.
pub fn write_csrs(
    paths: &NodePaths,
    scan: &Scan,
    names: &[String],
    dir: &Path,
    algorithm: Option<EncryptionAlgorithm>,
) -> Result<CsrsWritten> {
    let mut todo = Vec::new();
    let mut out = CsrsWritten::default();
    for name in names {
        let Some(l) = loaded(scan, name)? else {
            out.missing.push(
                scan.cert(name)
                    .map(|e| e.handler.long_name)
                    .unwrap_or(name)
                    .to_string(),
            );
            continue;
        };
        let (key_path, csr_path) = (
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.csr")),
        );
        for p in [&key_path, &csr_path] {
            if crate::node::fsread::exists(p) {
                bail!(
                    "{}: already exists; refusing to overwrite it (choose another --csr-dir)",
                    paths.show(p)
                );
            }
        }
        todo.push((l, key_path, csr_path));
    }
    atomic::create_dir_all_mode(dir, 0o700)?;
    for (l, key_path, csr_path) in todo {
        let (alg, format) = keys::new_key_spec(algorithm, l.leaf.key_alg, l.key_format())
            .ok_or_else(|| anyhow!("{}: unsupported key algorithm", l.handler.name))?;
        let key = keys::generate(alg)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = subject_of(&l.leaf)?;
        let mut dns = l.leaf.dns.clone();
        dns.sort();
        dns.dedup();
        for d in dns {
            p.subject_alt_names.push(SanType::DnsName(
                d.try_into().map_err(|_| anyhow!("bad DNS SAN"))?,
            ));
        }
        p.subject_alt_names
            .extend(l.leaf.ips.iter().copied().map(SanType::IpAddress));
        let csr = p
            .serialize_request(&key)
            .with_context(|| format!("{}: building the CSR", l.handler.name))?;
        atomic::write_atomic(
            &key_path,
            keys::encode(&key, alg, format)?.as_bytes(),
            0o600,
        )?;
        atomic::write_atomic(&csr_path, csr.pem()?.as_bytes(), 0o600)?;
        out.written.push(csr_path);
    }
    Ok(out)
}

/// Names that have a signed `<name>.crt` in `dir`.
pub fn signed_names(scan: &Scan, dir: &Path) -> Vec<String> {
    scan.certs
        .iter()
        .map(|e| e.handler.name.to_string())
        .filter(|n| dir.join(format!("{n}.crt")).is_file())
        .collect()
}

/// Verify and prepare the installation of `<dir>/<name>.crt` + `.key`.
pub fn prepare_install(paths: &NodePaths, scan: &Scan, name: &str, dir: &Path) -> Result<Prepared> {
    let l = loaded(scan, name)?
        .ok_or_else(|| anyhow!("{name}: the certificate to replace is missing"))?;
    let h = l.handler;
    let ca = scan
        .ca(h.ca)
        .and_then(|c| c.cert.as_ref())
        .ok_or_else(|| anyhow!("{name}: no {} certificate on disk", h.ca.name()))?;
    let (crt_path, key_path) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    // The CSR directory is the operator's, given on the command line, not a node path.
    let read = |p: &Path| {
        crate::node::fsread::read_regular(p, crate::node::fsread::MAX_NODE_FILE)
            .map_err(|e| FileProblem::new(paths, p, e))
    };
    let crt_bytes = read(&crt_path)?;
    let mut chain =
        inspect::parse_cert_file(&crt_bytes).map_err(|e| FileProblem::new(paths, &crt_path, e))?;
    let new: CertInfo = chain.remove(0);
    let key = keys::parse_key_file(&read(&key_path)?)
        .map_err(|e| FileProblem::new(paths, &key_path, e))?;
    issue::verify_identity(&l.leaf, &new, ca, &key.spki())
        .map_err(|e| FileProblem::new(paths, &crt_path, e))?;
    let key_pem = String::from_utf8(read(&key_path)?)
        .map_err(|_| anyhow!("{}: not UTF-8", paths.show(&key_path)))?;
    let changes = l.replacement(paths, &new, &key_pem, &ca.to_pem())?;
    Ok(Prepared {
        old_files: l.files(),
        renewed: Renewed {
            handler: h,
            old_not_after: l.leaf.not_after,
            new_not_after: new.not_after,
            clamped: false,
            files: changes.iter().map(|c| paths.show(&c.target)).collect(),
            key: None,
            why: None,
        },
        changes,
    })
}

/// Install every verified signed certificate in one commit. Nothing is written unless all verify.
pub fn install(
    paths: &NodePaths,
    scan: &Scan,
    names: &[String],
    dir: &Path,
    now: OffsetDateTime,
    owe_restarts: bool,
) -> Result<crate::act::renew::Outcome> {
    let prepared = names
        .iter()
        .map(|n| prepare_install(paths, scan, n, dir))
        .collect::<Result<Vec<_>>>()?;
    fail::fail_point!("install-signed::before-commit");
    crate::act::renew::commit(paths, &prepared, now, owe_restarts)
}
