//! Apply a plan: generate keys (in parallel), issue and verify every new certificate, back up,
//! stage, journal, and commit with atomic renames. Nothing is written until every new
//! certificate has passed verification.

use crate::act::store::{atomic, backup, journal};
use crate::config::Settings;
use crate::node::NodePaths;
use crate::pki::external::load_ca_key;
use crate::pki::inspect::KeyAlg;
use crate::pki::issue::{self, Ca};
use crate::pki::keys::{self, KeyFormat, PrivateKey};
use crate::pki::material::{FileChange, Loaded};
use crate::pki::table::{CaId, Handler};
use crate::plan::scan::Scan;
use crate::plan::{Decision, Plan};
use anyhow::{anyhow, Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use time::OffsetDateTime;

/// One renewed certificate.
#[derive(Debug, Clone)]
pub struct Renewed {
    /// The handler.
    pub handler: &'static Handler,
    /// NotAfter before.
    pub old_not_after: OffsetDateTime,
    /// NotAfter now.
    pub new_not_after: OffsetDateTime,
    /// Clamped to the CA's NotAfter.
    pub clamped: bool,
    /// Host paths of the files replaced.
    pub files: Vec<String>,
    /// The new key's algorithm (`None` for certificates installed from an external CA).
    pub key: Option<KeyAlg>,
    /// Where the validity and the key algorithm came from, for the log line (issue 18).
    pub why: Option<String>,
}

/// What a renewal did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Renewed certificates, in name order.
    pub renewed: Vec<Renewed>,
    /// The backup of the material from before, if anything was written.
    pub backup_dir: Option<PathBuf>,
}

/// Verified new material for one certificate, ready to commit.
#[derive(Debug)]
pub struct Prepared {
    /// Files to back up first.
    pub old_files: Vec<PathBuf>,
    /// What is being renewed.
    pub renewed: Renewed,
    /// The new file contents.
    pub changes: Vec<FileChange>,
}

/// Generate one key per algorithm request, spread over the machine's cores (rayon): RSA key
/// generation dominates a renewal's cost.
fn generate_keys(algs: &[KeyAlg]) -> Result<Vec<rcgen::KeyPair>> {
    use rayon::prelude::*;
    algs.par_iter()
        .map(|alg| keys::generate(*alg).map_err(|e| anyhow!(e)))
        .collect()
}

/// Carry out the plan's renewals.
pub fn apply(
    paths: &NodePaths,
    scan: &Scan,
    plan: &Plan,
    settings: &Settings,
    now: OffsetDateTime,
    owe_restarts: bool,
) -> Result<Outcome> {
    let items: Vec<(&Loaded, OffsetDateTime)> = plan
        .items
        .iter()
        .filter_map(|i| match i.decision {
            Decision::Renew { new_not_after, .. } => scan
                .cert(i.handler.name)
                .and_then(|e| e.state.as_ref().ok())
                .and_then(|l| l.as_ref())
                .map(|l| (l, new_not_after)),
            _ => None,
        })
        .collect();
    if items.is_empty() {
        return Ok(Outcome::default());
    }
    let mut ca_keys: BTreeMap<CaId, PrivateKey> = BTreeMap::new();
    for (l, _) in &items {
        let id = l.handler.ca;
        if let std::collections::btree_map::Entry::Vacant(e) = ca_keys.entry(id) {
            let ca = scan
                .ca(id)
                .ok_or_else(|| anyhow!("{} is not loaded", id.name()))?;
            e.insert(load_ca_key(paths, ca)?);
        }
    }
    // The new key's algorithm and form: the cluster's (or config's) encryptionAlgorithm, else
    // the old key's (pki::keys::new_key_spec).
    let specs: Vec<(KeyAlg, KeyFormat)> = items
        .iter()
        .map(|(l, _)| {
            keys::new_key_spec(
                settings.encryption_algorithm,
                l.leaf.key_alg,
                l.key_format(),
            )
            .ok_or_else(|| anyhow!("{}: unsupported key algorithm", l.handler.name))
        })
        .collect::<Result<_>>()?;
    let algs: Vec<KeyAlg> = specs.iter().map(|(a, _)| *a).collect();
    let new_keys = generate_keys(&algs)?;
    let mut prepared = Vec::new();
    for (((l, _), key), spec) in items.iter().zip(&new_keys).zip(&specs) {
        prepared.push(prepare(
            paths, scan, l, key, *spec, &ca_keys, settings, now,
        )?);
    }
    commit(paths, &prepared, now, owe_restarts)
}

#[allow(clippy::too_many_arguments)]
fn prepare(
    paths: &NodePaths,
    scan: &Scan,
    l: &Loaded,
    key: &rcgen::KeyPair,
    (alg, format): (KeyAlg, KeyFormat),
    ca_keys: &BTreeMap<CaId, PrivateKey>,
    settings: &Settings,
    now: OffsetDateTime,
) -> Result<Prepared> {
    let h = l.handler;
    let ca_state = scan
        .ca(h.ca)
        .ok_or_else(|| anyhow!("{} is not loaded", h.ca.name()))?;
    let ca_cert = ca_state
        .cert
        .as_ref()
        .ok_or_else(|| anyhow!("{} has no certificate", h.ca.name()))?;
    let ca_key = ca_keys
        .get(&h.ca)
        .ok_or_else(|| anyhow!("{} key is not loaded", h.ca.name()))?;
    let ca = Ca {
        cert: ca_cert,
        key: &ca_key.pair,
    };
    let issued =
        issue::issue(&l.leaf, key, &ca, now, settings.certificate_validity).with_context(|| {
            format!(
                "{} ({})",
                paths.show(&crate::pki::material::cert_file(paths, h)),
                h.name
            )
        })?;
    let key_pem = keys::encode(key, alg, format).with_context(|| h.name.to_string())?;
    let changes = l.replacement(paths, &issued.info, &key_pem, &ca_cert.to_pem())?;
    if issued.clamped {
        tracing::warn!(
            CERT_NAME = h.name,
            "{}: NotAfter clamped to the {} CA's NotAfter {}; rotate the CA",
            h.name,
            h.ca.name(),
            crate::logging::rfc3339(ca_cert.not_after)
        );
    }
    Ok(Prepared {
        old_files: l.files(),
        renewed: Renewed {
            handler: h,
            old_not_after: l.leaf.not_after,
            new_not_after: issued.info.not_after,
            clamped: issued.clamped,
            files: changes.iter().map(|c| paths.show(&c.target)).collect(),
            key: Some(alg),
            why: Some(format!(
                "validity {} from {}; {alg} key from {}",
                crate::plan::cluster_inputs::days(settings.certificate_validity),
                settings.sources.validity,
                settings.sources.key
            )),
        },
        changes,
    })
}

/// Back up, stage, journal, rename, clear the journal.
pub fn commit(
    paths: &NodePaths,
    prepared: &[Prepared],
    now: OffsetDateTime,
    owe_restarts: bool,
) -> Result<Outcome> {
    let dir = backup::new_dir(paths, now)?;
    let files: Vec<PathBuf> = prepared.iter().flat_map(|p| p.old_files.clone()).collect();
    backup::copy_into(paths, &dir, &files)?;
    fail::fail_point!("renew::after-backup");
    let j = journal::stage_all(paths, &dir, prepared.iter().flat_map(|p| &p.changes))?;
    if owe_restarts {
        // Before any rename: a crash from here on leaves restarts that recovery carries out.
        let changed: Vec<(&Handler, Vec<String>)> = prepared
            .iter()
            .map(|p| (p.renewed.handler, p.renewed.files.clone()))
            .collect();
        crate::act::store::owed::write(
            paths,
            &crate::plan::restarts::for_changes(paths, &changed),
        )?;
    }
    fail::fail_point!("renew::after-stage");
    for e in &j.entries {
        atomic::commit(
            &paths.root.resolve(&e.staged),
            &paths.root.resolve(&e.target),
        )?;
        if e.target.ends_with(".key") {
            fail::fail_point!("renew::between-key-and-cert");
        }
        if e.target.ends_with(".conf") {
            fail::fail_point!("renew::mid-kubeconfig");
        }
        fail::fail_point!("renew::mid-commit");
    }
    journal::remove(paths)?;
    for p in prepared {
        tracing::info!(
            MESSAGE_ID = crate::logging::MSG_RENEWED,
            CERT_NAME = p.renewed.handler.name,
            CERT_PATH = p.renewed.files.join(" "),
            NOT_AFTER = crate::logging::rfc3339(p.renewed.new_not_after),
            ACTION = "renew",
            RESULT = "ok",
            "{} renewed, valid until {}{}",
            p.renewed.handler.name,
            crate::logging::rfc3339(p.renewed.new_not_after),
            p.renewed
                .why
                .as_deref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        );
    }
    Ok(Outcome {
        renewed: prepared.iter().map(|p| p.renewed.clone()).collect(),
        backup_dir: Some(dir),
    })
}
