//! `recover`: finish or undo whatever an interrupted run left behind. Every command and the
//! daemon run it first, under the lock.
//!
//! 1. A renewal journal: roll it forward (every staged file it lists was verified before the
//!    journal was written).
//! 2. Staged files no journal lists: the crash came before the commit began; delete them.
//! 3. A cert/key pair that still does not match (a crash by another tool, a hand edit): restore
//!    from the newest backup whose key matches the certificate, or whose certificate matches
//!    the key.
//! 4. Parked static pod manifests: move them back (see `staticpods::park`).
//!
//! The daemon holds the lock only while it acts, so it also asks [`left_behind`] before each
//! cycle and runs [`recover_files`] when a command died between two of its cycles.

use crate::act::cancel::Cancel;
use crate::act::store::{atomic, backup, journal};
use crate::node::fsread::read_node_file;
use crate::node::NodePaths;
use crate::pki::inspect;
use crate::pki::material::{cert_file, key_file};
use crate::pki::table::{Location, HANDLERS};
use anyhow::{Context, Result};
use time::OffsetDateTime;

/// What recovery did, one line per action, for the log and the terminal.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Human-readable actions.
    pub actions: Vec<String>,
    /// What could not be recovered.
    pub problems: Vec<String>,
}

/// Recover the renewal side (journal, strays, pairs).
pub fn recover_pki(paths: &NodePaths) -> Result<Recovered> {
    let mut r = Recovered::default();
    if let Some(j) = journal::read(paths)? {
        for t in journal::roll_forward(paths, &j)? {
            r.actions
                .push(format!("finished interrupted renewal of {t}"));
        }
        journal::remove(paths)?;
    }
    for p in journal::remove_strays(&journal::staging_dirs(paths))? {
        r.actions
            .push(format!("removed unfinished temp file {}", paths.show(&p)));
    }
    for h in &HANDLERS {
        let Location::Pki(base) = h.location else {
            continue;
        };
        let (crt, key) = (cert_file(paths, h), key_file(paths, base));
        // A pair that cannot be repaired is reported, not fatal: the plan refuses it and
        // every other certificate is still served.
        match repair_pair(paths, &crt, &key) {
            Ok(Some(action)) => r.actions.push(action),
            Ok(None) => {}
            Err(e) => r.problems.push(format!("{e:#}")),
        }
    }
    Ok(r)
}

fn spki_of_cert(bytes: &[u8]) -> Option<Vec<u8>> {
    inspect::parse_cert_file(bytes)
        .ok()
        .and_then(|c| c.into_iter().next())
        .map(|c| c.spki)
}

fn spki_of_key(bytes: &[u8]) -> Option<Vec<u8>> {
    crate::pki::pubkey::public_of_key_file(bytes)
        .ok()
        .map(|k| k.spki)
}

/// If `crt` and `key` both exist, parse, and do not match, restore one of them from a backup.
fn repair_pair(
    paths: &NodePaths,
    crt: &std::path::Path,
    key: &std::path::Path,
) -> Result<Option<String>> {
    let (Ok(cb), Ok(kb)) = (
        read_node_file(&paths.root, crt),
        read_node_file(&paths.root, key),
    ) else {
        return Ok(None);
    };
    let (Some(cs), Some(ks)) = (spki_of_cert(&cb), spki_of_key(&kb)) else {
        return Ok(None);
    };
    if cs == ks {
        return Ok(None);
    }
    for dir in backup::list(paths) {
        let old_key = paths.backup_path(&dir, key);
        if let Ok(b) =
            crate::node::fsread::read_regular(&old_key, crate::node::fsread::MAX_NODE_FILE)
        {
            if spki_of_key(&b).as_ref() == Some(&cs) {
                atomic::write_atomic(key, &b, 0o600)?;
                return Ok(Some(format!(
                    "restored {} from {} to match its certificate",
                    paths.show(key),
                    paths.show(&dir)
                )));
            }
        }
        let old_crt = paths.backup_path(&dir, crt);
        if let Ok(b) =
            crate::node::fsread::read_regular(&old_crt, crate::node::fsread::MAX_NODE_FILE)
        {
            if spki_of_cert(&b).as_ref() == Some(&ks) {
                atomic::write_atomic(crt, &b, 0o644)?;
                return Ok(Some(format!(
                    "restored {} from {} to match its key",
                    paths.show(crt),
                    paths.show(&dir)
                )));
            }
        }
    }
    anyhow::bail!(
        "{}: certificate does not match {} and no backup can repair the pair; restore both by hand",
        paths.show(crt),
        paths.show(key)
    )
}

/// What an interrupted run left for `recover` to finish, without touching anything: a commit
/// journal, staged files, parked manifests. check-expiration reports it. Owed restarts are
/// apart (`owed::read`): the daemon also keeps them on purpose (restart budget, HA lock).
pub fn pending(paths: &NodePaths) -> Vec<String> {
    let mut v = Vec::new();
    if paths.journal().exists() {
        v.push("a half-committed renewal".to_string());
    }
    if crate::act::kubelet::revive::pending(paths) {
        v.push("a half-done kubelet client certificate revival".to_string());
    }
    if journal::staging_dirs(paths)
        .iter()
        .any(|d| journal::has_staged(d))
    {
        v.push("staged files".to_string());
    }
    let parked = crate::act::staticpods::park::parked(paths);
    if !parked.is_empty() {
        v.push(format!("parked manifests ({})", parked.join(", ")));
    }
    v
}

/// Whether an interrupted run left anything for [`recover_files`]: a commit journal, a
/// revival journal, staged files, parked manifests, a half-written state file. A few stat and
/// readdir calls, so that the daemon can ask before every cycle (between two cycles it holds
/// no lock, and a manual command may have died mid-write). Owed restarts are not counted: the
/// daemon's cycle carries them out within its restart budget.
pub fn left_behind(paths: &NodePaths) -> bool {
    if paths.journal().exists()
        || crate::act::kubelet::revive::pending(paths)
        || !crate::act::staticpods::park::parked(paths).is_empty()
    {
        return true;
    }
    let mut top = Vec::new();
    walk_state_top(paths, &mut top);
    !top.is_empty()
        || journal::staging_dirs(paths)
            .iter()
            .any(|d| journal::has_staged(d))
}

/// Everything recovery does, in order: parked manifests back, the renewal side, then restarts
/// a crashed commit still owed (when `restarts` is set and restarts are enabled).
pub fn recover_all(
    paths: &NodePaths,
    settings: &crate::config::Settings,
    restarts: bool,
    cancel: &Cancel,
    now: OffsetDateTime,
) -> Result<Recovered> {
    let mut r = recover_files(paths, settings, restarts, cancel, now)?;
    owed_restarts(paths, settings, restarts, cancel, now, &mut r)?;
    Ok(r)
}

/// Recovery without the owed static-pod restarts: parked manifests back, an interrupted
/// kubelet revival finished (restarting the kubelet with `kubelet_restart`), the renewal side,
/// stray backup copies.
pub fn recover_files(
    paths: &NodePaths,
    settings: &crate::config::Settings,
    kubelet_restart: bool,
    cancel: &Cancel,
    now: OffsetDateTime,
) -> Result<Recovered> {
    let mut r = Recovered::default();
    r.actions
        .extend(crate::act::staticpods::park::recover_parked(paths, now)?);
    // Before the stray removal below, which would delete the revival's staged pair.
    match crate::act::kubelet::revive::recover(paths, settings, kubelet_restart, cancel, now) {
        Ok(done) => r.actions.extend(done),
        Err(e) => r.problems.push(format!("{e:#}")),
    }
    let pki = recover_pki(paths)?;
    r.actions.extend(pki.actions);
    r.problems.extend(pki.problems);
    for p in remove_backup_strays(paths)? {
        r.actions
            .push(format!("removed unfinished backup copy {}", paths.show(&p)));
    }
    Ok(r)
}

/// The restarts a crashed commit still owes (when `restarts` is set and restarts are enabled).
fn owed_restarts(
    paths: &NodePaths,
    settings: &crate::config::Settings,
    restarts: bool,
    cancel: &Cancel,
    now: OffsetDateTime,
    r: &mut Recovered,
) -> Result<()> {
    let owed = crate::act::store::owed::read(paths);
    if owed.is_empty() || !restarts {
        return Ok(());
    }
    if !settings.restart.enabled {
        crate::act::store::owed::clear(paths)?;
        r.problems.push(format!(
            "an interrupted run owed restarts of {}; restart.enabled is false, so restart them yourself",
            owed.join(", ")
        ));
        return Ok(());
    }
    if let Some(step) = crate::act::rotate::inflight::stands(paths) {
        // Without the step's rollback and halt, a restart that failed here would leave the
        // step's files in place and the step would be recorded anyway (issue 20).
        r.actions.push(format!(
            "left the restarts of {} to {step}, interrupted after writing its files: the daemon carries them out with the step, which rolls back and halts if one fails",
            owed.join(", ")
        ));
        return Ok(());
    }
    r.actions.push(format!(
        "restarting {} (owed by an interrupted run)",
        owed.join(", ")
    ));
    let comps: Vec<_> = owed
        .iter()
        .filter_map(|c| crate::pki::table::Component::from_name(c))
        .collect();
    // On an HA control plane owed restarts wait for the cluster-wide lock like any other.
    let clock = move || now;
    let result = crate::act::restart::restart_coordinated(
        paths,
        settings,
        &comps,
        cancel,
        &|_| Vec::new(),
        &clock,
        &|_| {},
    );
    match result {
        Ok(crate::act::restart::Sequence::Done(done)) => {
            // Counted against the daemon's restart budget like any other restart.
            let names: Vec<String> = done.iter().map(|d| d.component.name().into()).collect();
            crate::act::guard::record_restarts(paths, &names, now);
            r.actions
                .extend(names.iter().map(|n| format!("{n} restarted")));
        }
        Ok(crate::act::restart::Sequence::Owed(why)) => r
            .problems
            .push(format!("owed restarts not carried out now: {why}")),
        Err(e) => r.problems.push(format!("{e:#}")),
    }
    Ok(())
}

/// Staged copies left in the backups by a crash mid backup: half files, possibly holding half a
/// key. The backup's other files are complete (each was written atomically).
fn remove_backup_strays(paths: &NodePaths) -> Result<Vec<std::path::PathBuf>> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&p, out),
                Ok(t)
                    if t.is_file() && atomic::is_staged_name(&e.file_name().to_string_lossy()) =>
                {
                    out.push(p)
                }
                _ => {}
            }
        }
    }
    let mut found = Vec::new();
    walk(&paths.backups(), &mut found);
    walk_state_top(paths, &mut found);
    for p in &found {
        std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(found)
}

/// Half-written state files (journal, owed restarts) at the top of the state dir.
fn walk_state_top(paths: &NodePaths, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(&paths.state) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_file())
            && atomic::is_staged_name(&e.file_name().to_string_lossy())
        {
            out.push(e.path());
        }
    }
}
