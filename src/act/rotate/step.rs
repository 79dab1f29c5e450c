//! One node's step of a phase: from the phase's [`Target`] and the files as they are, the new
//! contents of `etcd/ca.crt`, `etcd/ca.key` and the etcd leaves that are not yet as the phase
//! wants them; then the journalled commit, with the restarts it owes recorded before any file
//! changes. A step is idempotent: run again after a crash, it finds what is done and does the
//! rest; its backup is the step's, not the run's (`inflight`).

use super::inflight::InFlight;
use super::material::{current_bundle, Cas};
use crate::act::store::{atomic, backup, journal, owed};
use crate::config::Settings;
use crate::node::NodePaths;
use crate::pki::issue::{self, Ca};
use crate::pki::keys;
use crate::pki::material::{self, FileChange, Source};
use crate::pki::table::{CaId, Component, HANDLERS};
use crate::plan::restarts::ManifestConsumers;
use crate::plan::rotation::{Rotation, Target, Which};
use crate::plan::Consumers;
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use time::OffsetDateTime;

/// What a step writes.
#[derive(Debug, Default)]
pub struct Step {
    /// New file contents (key before certificate, as kubeadm writes them).
    pub changes: Vec<FileChange>,
    /// The etcd leaves re-issued (kubeadm names).
    pub reissued: Vec<&'static str>,
    /// Components that load a changed file, in restart order.
    pub components: Vec<Component>,
}

/// The step that brings this node's files to `t`. Every re-issued certificate is verified
/// (issuer, signature, key, subject, SANs, EKUs) before anything is written.
pub fn prepare(
    paths: &NodePaths,
    settings: &Settings,
    t: &Target,
    cas: &Cas,
    now: OffsetDateTime,
) -> Result<Step> {
    // The leaves are signed with the key in ca.key, which belongs to the bundle's first CA.
    if t.leaves != t.key || t.bundle.first() != Some(&t.key) {
        bail!("internal: a phase whose signer is not the first CA of its bundle");
    }
    let mut step = Step::default();
    let ca_crt = paths.pki.join("etcd/ca.crt");
    let ca_key = paths.pki.join("etcd/ca.key");
    // The CA file: the bundle in the phase's order.
    let want: Vec<&crate::pki::inspect::CertInfo> =
        t.bundle.iter().map(|w| &cas.get(*w).cert).collect();
    let have = current_bundle(paths)?;
    if have.iter().map(|c| &c.der).ne(want.iter().map(|c| &c.der)) {
        let pem: String = want.iter().map(|c| c.to_pem()).collect();
        step.changes.push(FileChange {
            target: ca_crt.clone(),
            contents: pem.into_bytes(),
            mode: 0o644,
        });
    }
    // The key file: the key of the bundle's first CA.
    let signer = cas.get(t.key);
    let (signer_key, signer_key_file) = signer.key.as_ref().ok_or_else(|| {
        anyhow!(
            "{}: this node holds no key of the {} etcd CA",
            paths.show(&ca_key),
            which(t.key)
        )
    })?;
    let key_now = crate::node::fsread::read_regular(&ca_key, crate::node::fsread::MAX_NODE_FILE)
        .ok()
        .and_then(|b| keys::parse_key_file(&b).ok());
    if key_now.is_none_or(|k| k.spki() != signer.cert.spki) {
        step.changes.push(FileChange {
            target: ca_key.clone(),
            contents: signer_key_file.clone(),
            mode: 0o600,
        });
    }
    // The leaves: re-issued by the phase's signer where another CA signed them.
    let leaf_ca = cas.get(t.leaves);
    let other = cas.get(other_of(t.leaves));
    for h in HANDLERS.iter().filter(|h| h.ca == CaId::EtcdCa) {
        let Some(l) = material::load(paths, h).map_err(|e| anyhow!("{e}"))? else {
            continue;
        };
        if l.leaf.signed_by(&leaf_ca.cert) {
            continue;
        }
        let path = paths.show(&material::cert_file(paths, h));
        if !l.leaf.signed_by(&other.cert) {
            bail!("{path}: signed by neither the old nor the new etcd CA; kubeadm-certd does not rotate a certificate it did not find signed by the etcd CA");
        }
        if !matches!(l.source, Source::Pki { .. }) {
            bail!("{path}: not a certificate/key pair");
        }
        let alg = l
            .leaf
            .key_alg
            .ok_or_else(|| anyhow!("{path}: unsupported key algorithm"))?;
        let key = keys::generate(alg).map_err(|e| anyhow!("{path}: {e}"))?;
        let ca = Ca {
            cert: &leaf_ca.cert,
            key: &signer_key.pair,
        };
        let issued = issue::issue(&l.leaf, &key, &ca, now, settings.certificate_validity)
            .with_context(|| format!("{path} ({})", h.name))?;
        let format = l
            .key_format()
            .ok_or_else(|| anyhow!("{path}: unknown key format"))?;
        let key_pem = keys::encode(&key, alg, format).with_context(|| h.name.to_string())?;
        step.changes.extend(
            l.replacement(paths, &issued.info, &key_pem, &leaf_ca.cert.to_pem())
                .map_err(|e| anyhow!("{e}"))?,
        );
        step.reissued.push(h.name);
    }
    step.components = components(paths, &step.changes);
    Ok(step)
}

fn which(w: Which) -> &'static str {
    match w {
        Which::Old => "old",
        Which::New => "new",
    }
}

fn other_of(w: Which) -> Which {
    match w {
        Which::Old => Which::New,
        Which::New => Which::Old,
    }
}

/// The components whose manifests name a changed file, in restart order; kubeadm's table
/// where a manifest cannot be read (etcd and kube-apiserver load `etcd/ca.crt`).
fn components(paths: &NodePaths, changes: &[FileChange]) -> Vec<Component> {
    let consumers = ManifestConsumers::read(paths);
    let ca_crt = paths.pki.join("etcd/ca.crt");
    let table = |c: Component, target: &std::path::Path| {
        if target == ca_crt {
            return matches!(c, Component::Etcd | Component::KubeApiserver);
        }
        HANDLERS.iter().any(|h| {
            let crate::pki::table::Location::Pki(base) = h.location else {
                return false;
            };
            h.ca == CaId::EtcdCa
                && (material::cert_file(paths, h) == target
                    || material::key_file(paths, base) == target)
                && h.consumers.contains(&c)
        })
    };
    Component::ORDER
        .into_iter()
        .filter(|c| consumers.present(*c))
        .filter(|c| {
            changes.iter().any(|f| {
                consumers
                    .uses(*c, &paths.show(&f.target))
                    .unwrap_or_else(|| table(*c, &f.target))
            })
        })
        .collect()
}

/// Commit a step: back up the files it replaces, record that backup as the step's
/// ([`InFlight`]: a later run of the same step rolls back to it), record the restarts it owes
/// (before any file changes: a crash after a rename must leave them owed), stage every file,
/// journal the renames, rename, clear the journal. `recover` rolls an interrupted commit
/// forward. Returns the backup set.
pub fn commit(
    paths: &NodePaths,
    rec: &Rotation,
    step: &Step,
    now: OffsetDateTime,
) -> Result<PathBuf> {
    let dir = backup::new_dir(paths, now)?;
    let targets: Vec<PathBuf> = step.changes.iter().map(|c| c.target.clone()).collect();
    backup::copy_into(paths, &dir, &targets)?;
    InFlight::merged(paths, rec, &dir, &targets).write(paths)?;
    fail::fail_point!("rotate::after-backup");
    let mut owe = owed::read(paths);
    for c in &step.components {
        if !owe.iter().any(|o| o == c.name()) {
            owe.push(c.name().to_string());
        }
    }
    owe.sort_by_key(|n| Component::ORDER.iter().position(|c| c.name() == n));
    owed::write(paths, &owe)?;
    let j = journal::stage_all(paths, &dir, &step.changes)?;
    fail::fail_point!("rotate::after-stage");
    let (ca_crt, ca_key) = (paths.pki.join("etcd/ca.crt"), paths.pki.join("etcd/ca.key"));
    for e in &j.entries {
        let target = paths.root.resolve(&e.target);
        atomic::commit(&paths.root.resolve(&e.staged), &target)?;
        // The crash suite stops here: after the bundle, after the CA key, between a leaf's
        // key and its certificate, after any rename.
        if target == ca_crt {
            fail::fail_point!("rotate::after-bundle");
        }
        if target == ca_key {
            fail::fail_point!("rotate::after-ca-key");
        }
        if target != ca_key && e.target.ends_with(".key") {
            fail::fail_point!("rotate::between-leaf-key-and-cert");
        }
        fail::fail_point!("rotate::mid-commit");
    }
    journal::remove(paths)?;
    fail::fail_point!("rotate::after-commit");
    Ok(dir)
}

#[cfg(test)]
#[path = "step_tests.rs"]
mod tests;
