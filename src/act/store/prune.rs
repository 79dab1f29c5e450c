//! Bounded backups: which sets under `<stateDir>/backups/` are kept and why, their size, and
//! deleting the rest. Never during recovery, and never a set recovery may still need: the one
//! a journal references, or the newest set holding a key (or certificate) that pairs with a
//! current certificate (or key).

use crate::act::store::{backup, journal};
use crate::config::BackupSettings;
use crate::node::NodePaths;
use crate::pki::material::{cert_file, key_file};
use crate::pki::table::{Location, HANDLERS};
use crate::plan::guard::{self, BackupSet, Keep};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// One backup set and what retention decided.
#[derive(Debug, Clone)]
pub struct SetReport {
    /// The directory.
    pub dir: PathBuf,
    /// When it was made (from its name).
    pub made: Option<OffsetDateTime>,
    /// Bytes of the files in it.
    pub bytes: u64,
    /// Why it is kept; `None`: it goes at the next prune.
    pub keep: Option<Keep>,
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

fn read(p: &Path) -> Option<Vec<u8>> {
    crate::node::fsread::read_regular(p, crate::node::fsread::MAX_NODE_FILE).ok()
}

fn cert_spki(b: &[u8]) -> Option<Vec<u8>> {
    crate::pki::inspect::parse_cert_file(b)
        .ok()?
        .into_iter()
        .next()
        .map(|c| c.spki)
}

fn key_spki(b: &[u8]) -> Option<Vec<u8>> {
    crate::pki::keys::parse_key_file(b).ok().map(|k| k.spki())
}

/// Sets recovery may need, with why: the journal's, and per PKI pair the newest set whose
/// key matches the current certificate or whose certificate matches the current key
/// (`recover` repairs a broken pair from exactly those).
pub fn needed(paths: &NodePaths, sets: &[PathBuf]) -> BTreeMap<String, String> {
    let name = |d: &Path| d.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut out = BTreeMap::new();
    if let Ok(Some(j)) = journal::read(paths) {
        if let Some(n) = name(&paths.root.resolve(&j.backup_dir)) {
            out.insert(
                n,
                "an unfinished renewal's journal references it".to_string(),
            );
        }
    }
    // A rotation step in flight rolls back to these (issue 20).
    for d in crate::act::rotate::inflight::dirs(paths) {
        if let Some(n) = name(&d) {
            out.insert(
                n,
                "a CA rotation step in flight rolls back to it".to_string(),
            );
        }
    }
    // The old CA of a rotation (issue 20): how an abort, or an operator, gets it back.
    for d in sets {
        if let (Some(m), Some(n)) = (crate::act::rotate::material::marker(d), name(d)) {
            out.insert(n, m.note);
        }
    }
    for h in &HANDLERS {
        let Location::Pki(base) = h.location else {
            continue;
        };
        let (crt, key) = (cert_file(paths, h), key_file(paths, base));
        let cur_cert = read(&crt).and_then(|b| cert_spki(&b));
        let cur_key = read(&key).and_then(|b| key_spki(&b));
        if cur_cert.is_none() && cur_key.is_none() {
            continue;
        }
        for d in sets {
            let key_hit = cur_cert.is_some()
                && read(&paths.backup_path(d, &key)).and_then(|b| key_spki(&b)) == cur_cert;
            let crt_hit = cur_key.is_some()
                && read(&paths.backup_path(d, &crt)).and_then(|b| cert_spki(&b)) == cur_key;
            if key_hit || crt_hit {
                if let Some(n) = name(d) {
                    out.entry(n).or_insert_with(|| {
                        format!("holds a key pairing with the current {}", h.name)
                    });
                }
                break;
            }
        }
    }
    out
}

/// Every backup set, newest first, with what retention decides for it.
pub fn report(paths: &NodePaths, s: &BackupSettings, now: OffsetDateTime) -> Vec<SetReport> {
    let dirs = backup::list(paths);
    let sets: Vec<BackupSet> = dirs
        .iter()
        .map(|d| {
            let name = d
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            BackupSet {
                made: guard::backup_time(&name),
                name,
            }
        })
        .collect();
    let keep = guard::retention(&sets, s.keep, s.max_age, now, &needed(paths, &dirs));
    dirs.into_iter()
        .zip(sets)
        .zip(keep)
        .map(|((dir, set), keep)| SetReport {
            bytes: dir_bytes(&dir),
            dir,
            made: set.made,
            keep,
        })
        .collect()
}

/// Delete the sets retention does not keep; returns those deleted. Call only after a
/// successful cycle, never while an interrupted run is being recovered.
pub fn prune(paths: &NodePaths, s: &BackupSettings, now: OffsetDateTime) -> Result<Vec<PathBuf>> {
    let mut gone = Vec::new();
    for r in report(paths, s, now) {
        if r.keep.is_none() {
            std::fs::remove_dir_all(&r.dir)
                .with_context(|| format!("removing backup {}", paths.show(&r.dir)))?;
            gone.push(r.dir);
        }
    }
    if !gone.is_empty() {
        crate::act::store::atomic::fsync_dir(&paths.backups())?;
    }
    Ok(gone)
}
