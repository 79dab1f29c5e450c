//! The two CAs of a rotation as this node holds them: the certificates from the record, the
//! old key from `etcd/ca.key` (or, once that holds the new key, from the kept backup set),
//! the new key from `etcd/ca.key` once it is there, else opened from the record's sealed copy.
//!
//! The kept set: before a node's first step, the old CA certificate and key are copied into a
//! backup set of their own, marked with [`MARKER`]. Pruning never deletes it
//! (`store::prune::needed`): it is how an abort after reissue gets the old key back on a node
//! whose `ca.key` already holds the new one, and how an operator gets the old CA back by hand.

use crate::act::store::{atomic, backup};
use crate::node::fsread::{read_node_file, read_regular, MAX_NODE_FILE};
use crate::node::NodePaths;
use crate::pki::inspect::{parse_cert_file, CertInfo};
use crate::pki::keys::{parse_key_file, PrivateKey};
use crate::pki::seal;
use crate::plan::rotation::{Rotation, Which};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The file that marks a kept set, at its top.
pub const MARKER: &str = "kubeadm-certd-ca-rotation.json";

/// What the marker says.
#[derive(Debug, Serialize, Deserialize)]
pub struct Marker {
    /// The rotation.
    pub id: String,
    /// The CA.
    pub ca: String,
    /// For whoever finds the set.
    pub note: String,
}

/// A CA of the rotation: its certificate, and its key when this node has it.
pub struct Held {
    /// The certificate.
    pub cert: CertInfo,
    /// The key, and the key file's bytes as they are to be written.
    pub key: Option<(PrivateKey, Vec<u8>)>,
}

/// Both CAs.
pub struct Cas {
    /// The CA being replaced.
    pub old: Held,
    /// The CA coming in.
    pub new: Held,
}

impl Cas {
    /// One of the two.
    pub fn get(&self, w: Which) -> &Held {
        match w {
            Which::Old => &self.old,
            Which::New => &self.new,
        }
    }
}

fn one_cert(pem: &str, what: &str) -> Result<CertInfo> {
    let mut v = parse_cert_file(pem.as_bytes()).map_err(|e| anyhow!("{what}: {e}"))?;
    if v.len() != 1 {
        bail!("{what}: expected one certificate, found {}", v.len());
    }
    Ok(v.remove(0))
}

/// The record's two certificates.
pub fn certs(r: &Rotation) -> Result<(CertInfo, CertInfo)> {
    Ok((
        one_cert(&r.old_ca, "the rotation record's old CA")?,
        one_cert(&r.new_ca, "the rotation record's new CA")?,
    ))
}

/// The key file at `p`, when it holds the key of `cert`.
fn key_matching(p: &Path, cert: &CertInfo) -> Option<(PrivateKey, Vec<u8>)> {
    let bytes = read_regular(p, MAX_NODE_FILE).ok()?;
    let k = parse_key_file(&bytes).ok()?;
    (k.spki() == cert.spki).then_some((k, bytes))
}

/// The additional data the new key is sealed with: the rotation id and the new certificate.
pub fn seal_aad(r: &Rotation, new: &CertInfo) -> Vec<u8> {
    let mut v = r.id.as_bytes().to_vec();
    v.push(0);
    v.extend_from_slice(&new.der);
    v
}

/// Both CAs of `r` as this node holds them. The new key is opened only when `need_new`.
pub fn load(paths: &NodePaths, r: &Rotation, need_new: bool) -> Result<Cas> {
    let (old_cert, new_cert) = certs(r)?;
    let ca_key = paths.pki.join("etcd/ca.key");
    let old_key = key_matching(&ca_key, &old_cert).or_else(|| {
        kept_set(paths, &r.id)
            .and_then(|d| key_matching(&paths.backup_path(&d, &ca_key), &old_cert))
    });
    let mut new_key = key_matching(&ca_key, &new_cert);
    if need_new && new_key.is_none() {
        let (old, _) = old_key.as_ref().ok_or_else(|| {
            anyhow!(
                "{}: holds neither the old etcd CA's key nor the new one's, and no kept backup of the old one exists: this node cannot take part in rotation {}",
                paths.show(&ca_key),
                r.id
            )
        })?;
        let sealed = r
            .new_key
            .as_ref()
            .ok_or_else(|| anyhow!("the rotation record holds no sealed key"))?;
        let pem = seal::open(old, &r.seal_label(), &seal_aad(r, &new_cert), sealed)?;
        let k = parse_key_file(&pem).map_err(|e| anyhow!("the sealed new CA key: {e}"))?;
        if k.spki() != new_cert.spki {
            bail!("the sealed new CA key does not match the record's new CA certificate");
        }
        new_key = Some((k, pem));
    }
    Ok(Cas {
        old: Held {
            cert: old_cert,
            key: old_key,
        },
        new: Held {
            cert: new_cert,
            key: new_key,
        },
    })
}

/// The kept set of rotation `id`, if this node made one.
pub fn kept_set(paths: &NodePaths, id: &str) -> Option<PathBuf> {
    backup::list(paths)
        .into_iter()
        .find(|d| marker(d).is_some_and(|m| m.id == id))
}

/// The marker of a backup set, if it is a kept one.
pub fn marker(dir: &Path) -> Option<Marker> {
    let b = read_regular(&dir.join(MARKER), 64 * 1024).ok()?;
    serde_json::from_slice(&b).ok()
}

/// Make the kept set of `r` unless it exists: the old CA certificate (alone) and key, then the
/// marker, last, so that a set without it is an ordinary one. Needs the old key on this node.
pub fn keep_old(paths: &NodePaths, r: &Rotation, cas: &Cas, now: OffsetDateTime) -> Result<()> {
    if kept_set(paths, &r.id).is_some() {
        return Ok(());
    }
    // Every node holds the old key until its reissue step, which comes after this is made; a
    // node without it (its state dir lost after that) has nothing left to keep.
    let Some((_, key_bytes)) = cas.old.key.as_ref() else {
        tracing::debug!(
            "no old etcd CA key on this node to keep for rotation {}",
            r.id
        );
        return Ok(());
    };
    let dir = backup::new_dir(paths, now)?;
    let crt = paths.backup_path(&dir, &paths.pki.join("etcd/ca.crt"));
    let key = paths.backup_path(&dir, &paths.pki.join("etcd/ca.key"));
    if let Some(parent) = crt.parent() {
        atomic::create_dir_all_mode(parent, 0o700)?;
    }
    atomic::write_atomic(&crt, cas.old.cert.to_pem().as_bytes(), 0o644)?;
    atomic::write_atomic(&key, key_bytes, 0o600)?;
    let m = Marker {
        id: r.id.clone(),
        ca: r.ca.clone(),
        note: format!(
            "the {} CA from before CA rotation {}; kubeadm-certd never prunes this set",
            r.ca, r.id
        ),
    };
    atomic::write_atomic(
        &dir.join(MARKER),
        &serde_json::to_vec_pretty(&m).context("encoding the marker")?,
        0o600,
    )
}

/// `etcd/ca.crt`'s certificates as they are on disk now.
pub fn current_bundle(paths: &NodePaths) -> Result<Vec<CertInfo>> {
    let p = paths.pki.join("etcd/ca.crt");
    let b = read_node_file(&paths.root, &p).map_err(|e| anyhow!("{}: {e}", paths.show(&p)))?;
    parse_cert_file(&b).map_err(|e| anyhow!("{}: {e}", paths.show(&p)))
}
