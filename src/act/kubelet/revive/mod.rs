//! Reviving the kubelet's client certificate (issue 13). After a full outage the kubelet's
//! client certificate has expired too, and the kubelet cannot authenticate to ask for a new
//! one. On a node holding the cluster CA's key, issue it one and write it the way the kubelet's
//! certificate store does, then restart the kubelet:
//!
//! 1. back up the file in use, kubelet.conf and the link;
//! 2. stage the new `kubelet-client-<stamp>.pem` (certificate then key, 0600), then write the
//!    revival journal; 3. rename it into place; 4. repoint `kubelet-client-current.pem`
//!    atomically (a new absolute link renamed over the old); 5. repair kubelet.conf if it
//!    embeds its certificate; 6. restart the kubelet and wait for its healthz; 7. drop the
//!    journal.
//!
//! A crash before the journal leaves only a staged file, which `recover` removes (nothing on
//! the node changed). From the journal on, `recover` finishes the steps (see [`recover`]).

use crate::act::cancel::Cancel;
use crate::act::store::{atomic, backup};
use crate::config::Settings;
use crate::logging;
use crate::node::fsread::{exists, resolve_in_root};
use crate::node::kubelet_pki::{dated_client_pem, CLIENT_CURRENT};
use crate::node::NodePaths;
use crate::pki::external::{load_ca, load_ca_key};
use crate::pki::kubelet_client::{self, NodeClient};
use crate::pki::table::CaId;
use crate::plan::kubelet_client::{decide, node_name, Verdict};
use crate::plan::report::format::rfc3339_utc;
use anyhow::{anyhow, bail, Context, Result};
use recover::{remove_journal, write_journal};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The revival journal and `recover`.
mod recover;
pub use recover::{journal_path, pending, recover, Journal};

/// What [`run_if_needed`] did.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing was due, or nothing can be judged (no certificate, or an unreadable one, which
    /// the scan reports).
    NotNeeded(Verdict),
    /// Due, but not revived here (no CA key, or the setting is off): the warning, with the
    /// manual steps, for the caller to log as a standing condition.
    NotRevived {
        /// The verdict.
        verdict: Verdict,
        /// The warning.
        warning: String,
    },
    /// Revived.
    Revived(Revived),
}

/// A completed revival.
#[derive(Debug)]
pub struct Revived {
    /// The node name in the new certificate.
    pub node: String,
    /// The new dated file.
    pub file: PathBuf,
    /// The file in use before (kept, unless it was no link but the file itself).
    pub old_file: Option<PathBuf>,
    /// NotAfter of the new certificate.
    pub not_after: OffsetDateTime,
    /// Whether NotAfter was clamped to the CA's.
    pub clamped: bool,
    /// The backup directory.
    pub backup: PathBuf,
    /// Whether kubelet.conf was repaired (it embedded its certificate).
    pub repaired_conf: bool,
    /// Host paths written (for the daemon's watch).
    pub written: Vec<String>,
}

/// The daemon's step: revive when the verdict says so and `kubelet.reviveClientCert` is on.
/// When it is due and cannot or may not be revived, returns the warning (the caller logs it
/// at most once a day). The caller holds the lock.
pub fn run_if_needed(
    paths: &NodePaths,
    settings: &Settings,
    now: OffsetDateTime,
    cancel: &Cancel,
) -> Result<Outcome> {
    run_with_scan(
        paths,
        settings,
        &crate::plan::scan::scan(paths),
        now,
        cancel,
    )
}

/// [`run_if_needed`] with a scan the caller already has (the daemon's cycle): only its
/// kubelet and CA entries are read.
pub fn run_with_scan(
    paths: &NodePaths,
    settings: &Settings,
    scan: &crate::plan::scan::Scan,
    now: OffsetDateTime,
    cancel: &Cancel,
) -> Result<Outcome> {
    let verdict = decide(scan, now, settings.kubelet_revive_client_cert);
    let warning = match &verdict {
        Verdict::Absent | Verdict::Rotating { .. } | Verdict::Unreadable(_) => {
            return Ok(Outcome::NotNeeded(verdict))
        }
        Verdict::Disabled(due) => format!(
            "the kubelet's client certificate needs reviving ({due}) and kubelet.reviveClientCert is false: run `kubeadm-certd kubelet-client revive`"
        ),
        Verdict::NotHere { due, reason } => {
            let node = node_name(paths, scan).unwrap_or_else(|| "NAME".into());
            format!(
                "the kubelet's client certificate needs reviving ({due}), and this node cannot issue one: {reason}. {}",
                manual_steps(&node)
            )
        }
        Verdict::Revive { due, .. } => {
            let node = node_name(paths, scan).context(
                "cannot tell the node's name (certificate CN, kubelet.conf user, hostname)",
            )?;
            tracing::info!(
                ACTION = "kubelet-client-revive",
                "reviving the kubelet's client certificate for node {node}: {due}"
            );
            // restart.enabled: false means the operator restarts things: so the kubelet too.
            let restart = settings.restart.enabled;
            let r = revive(paths, settings, &node, now, cancel, restart)?;
            if !restart {
                tracing::warn!(
                    ACTION = "kubelet-client-revive",
                    "restart.enabled is false: restart the kubelet (systemctl restart kubelet) for it to use the new certificate"
                );
            }
            return Ok(Outcome::Revived(r));
        }
    };
    Ok(Outcome::NotRevived { verdict, warning })
}

/// The steps for a node that cannot revive its own certificate.
pub fn manual_steps(node: &str) -> String {
    format!(
        "On a control-plane node run `kubeadm-certd kubelet-client kubeconfig --node {node} > {node}.conf`; copy it to this node as /etc/kubernetes/kubelet.conf (mode 0600); run `systemctl restart kubelet`; once the kubelet has written a new /var/lib/kubelet/pki/kubelet-client-current.pem, run `kubeadm-certd repair-kubelet-conf` here (kubelet.conf then uses the rotated file again)"
    )
}

/// Issue a client pair for `node` with this node's CA (certificateValidity, clamped).
pub fn issue_for(
    paths: &NodePaths,
    settings: &Settings,
    node: &str,
    now: OffsetDateTime,
) -> Result<(NodeClient, String)> {
    let ca = load_ca(paths, CaId::Ca).map_err(|e| anyhow!("{e}"))?;
    let crt = paths.show(&ca.cert_path);
    let cert = ca
        .cert
        .as_ref()
        .with_context(|| format!("{crt} does not exist"))?;
    if !ca.key_present {
        bail!(
            "{} does not exist: this node cannot sign (a worker, or an external CA)",
            paths.show(&ca.key_path)
        );
    }
    if !cert.valid_at(now) {
        bail!(
            "{crt} is not valid now (valid {} to {}): rotate the CA first",
            rfc3339_utc(cert.not_before),
            rfc3339_utc(cert.not_after)
        );
    }
    let key = load_ca_key(paths, &ca).map_err(|e| anyhow!("{e}"))?;
    let client = kubelet_client::issue(node, cert, &key.pair, now, settings.certificate_validity)
        .with_context(|| format!("issuing a client certificate for node {node}"))?;
    Ok((client, cert.to_pem()))
}

/// A free dated name at or after `now` (the kubelet's store names files to the second).
fn new_file_name(paths: &NodePaths, now: OffsetDateTime) -> Result<PathBuf> {
    for s in 0..3600 {
        let p = paths
            .kubelet_pki
            .join(dated_client_pem(now + time::Duration::seconds(s)));
        if !exists(&p) && !exists(&atomic::staged_path(&p)) {
            return Ok(p);
        }
    }
    bail!(
        "{}: no free kubelet-client-<time>.pem name in the hour after {}",
        paths.show(&paths.kubelet_pki),
        rfc3339_utc(now)
    )
}

/// Revive for `node`, then (with `restart`) restart the kubelet and wait for its healthz. The
/// caller holds the lock and has decided that it is due.
pub fn revive(
    paths: &NodePaths,
    settings: &Settings,
    node: &str,
    now: OffsetDateTime,
    cancel: &Cancel,
    restart: bool,
) -> Result<Revived> {
    let (client, _) = issue_for(paths, settings, node, now)?;
    let link = paths.kubelet_pki.join(CLIENT_CURRENT);
    // The file in use: the link's target, or the file itself if it is no link.
    let old_file = if exists(&link) {
        resolve_in_root(&paths.root, &link)
            .ok()
            .filter(|p| p.is_file())
    } else {
        None
    };
    let file = new_file_name(paths, now)?;
    let conf = super::conf::kubelet_conf(paths);

    // 1. Backup: the file in use, kubelet.conf, and the link itself.
    let dir = backup::new_dir(paths, now)?;
    let mut files = vec![conf.clone()];
    files.extend(old_file.clone());
    backup::copy_into(paths, &dir, &files)?;
    if let Ok(target) = std::fs::read_link(&link) {
        let copy = paths.backup_path(&dir, &link);
        if let Some(parent) = copy.parent() {
            atomic::create_dir_all_mode(parent, 0o700)?;
        }
        std::os::unix::fs::symlink(&target, &copy)
            .with_context(|| format!("backing up the link {}", paths.show(&link)))?;
    }
    fail::fail_point!("revive::after-backup");

    // 2. Stage the new pair, then the journal.
    let staged = atomic::stage(&file, client.combined_pem().as_bytes(), 0o600)?;
    let j = Journal {
        backup_dir: paths.show(&dir),
        file: paths.show(&file),
        staged: paths.show(&staged),
        link: paths.show(&link),
    };
    write_journal(paths, &j)?;
    fail::fail_point!("revive::after-stage");

    // 3-5: the same steps `recover` finishes.
    let repaired_conf = finish_files(paths, &j, now)?;

    // 6. Restart; the journal stays until the kubelet was restarted, so a crash in the
    // restart is finished by `recover`.
    let restarted = if restart {
        crate::act::systemd::restart_kubelet(paths, settings.restart.timeout, cancel)
    } else {
        Ok(())
    };
    remove_journal(paths)?;
    tracing::info!(
        MESSAGE_ID = logging::MSG_KUBELET_CLIENT_REVIVED,
        ACTION = "kubelet-client-revive",
        CERT_PATH = %paths.show(&file),
        NOT_AFTER = %rfc3339_utc(client.info.not_after),
        "revived the kubelet's client certificate for node {node}: {} now points at {} (valid until {}{}); backup {}",
        paths.show(&link),
        paths.show(&file),
        rfc3339_utc(client.info.not_after),
        if client.clamped { ", clamped to the CA's NotAfter" } else { "" },
        paths.show(&dir)
    );
    restarted.context("the new certificate is in place, but the kubelet restart failed")?;
    let mut written = vec![paths.show(&file), paths.show(&link)];
    if repaired_conf {
        written.push(paths.show(&conf));
    }
    Ok(Revived {
        node: node.to_string(),
        file,
        old_file,
        not_after: client.info.not_after,
        clamped: client.clamped,
        backup: dir,
        repaired_conf,
        written,
    })
}

/// Steps 3 to 5 (idempotent): rename the staged pair into place, point the link at it, repair
/// kubelet.conf if it embeds its certificate. Returns whether kubelet.conf was repaired.
fn finish_files(paths: &NodePaths, j: &Journal, now: OffsetDateTime) -> Result<bool> {
    let file = paths.root.resolve(&j.file);
    let staged = paths.root.resolve(&j.staged);
    let link = paths.root.resolve(&j.link);
    if exists(&staged) {
        atomic::commit(&staged, &file)?;
    }
    if !file.is_file() {
        bail!(
            "{} is missing: the revival cannot be finished; {} is unchanged",
            j.file,
            j.link
        );
    }
    fail::fail_point!("revive::after-new-file");
    repoint(&link, Path::new(&j.file))?;
    fail::fail_point!("revive::after-link");
    let repaired = match super::conf::detect(paths) {
        Some(_) => {
            super::conf::repair(paths, now)?;
            true
        }
        None => false,
    };
    fail::fail_point!("revive::after-conf");
    Ok(repaired)
}

/// Point `link` at the host path `target`: a new link beside it, renamed over it.
fn repoint(link: &Path, target: &Path) -> Result<()> {
    if std::fs::read_link(link).ok().as_deref() == Some(target) {
        return Ok(());
    }
    let tmp = atomic::staged_path(link);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("creating the link {}", tmp.display()))?;
    atomic::commit(&tmp, link)
}
