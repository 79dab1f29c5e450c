//! The operator's side of a rotation: where the record lives (etcd on an HA control plane, a
//! file on a single node), the checks before one starts, the new record with its sealed key,
//! and the abort.

use super::material::seal_aad;
use super::store::{EtcdStore, LocalStore, Store, Versioned};
use crate::cluster::settings::Mode;
use crate::cluster::Coordinator;
use crate::config::Settings;
use crate::logging::rfc3339;
use crate::node::fsread::{read_node_file, read_regular, MAX_NODE_FILE};
use crate::node::NodePaths;
use crate::pki::ca::{check_operator_ca, new_like};
use crate::pki::external::{load_ca, load_ca_key};
use crate::pki::inspect::{parse_cert_file, CertInfo};
use crate::pki::keys::{parse_key_file, PrivateKey};
use crate::pki::material;
use crate::pki::table::{CaId, HANDLERS};
use crate::plan::rotation::{Phase, Rotation};
use anyhow::{anyhow, bail, Context, Result};
use rand::Rng;
use std::collections::BTreeMap;
use std::path::Path;
use time::OffsetDateTime;

/// Where this node's rotation record lives.
pub enum Place {
    /// An HA control plane: etcd, through this connection.
    Etcd(Box<Coordinator>),
    /// A single control-plane node: stateDir.
    Local,
}

impl Place {
    /// The store over this place.
    pub fn store<'a>(&'a self, paths: &'a NodePaths) -> Box<dyn Store + 'a> {
        match self {
            Place::Etcd(c) => Box::new(EtcdStore {
                coord: c,
                ca: super::ETCD_CA,
            }),
            Place::Local => Box::new(LocalStore { paths }),
        }
    }
}

/// Find where the record lives: a local record wins; else etcd is asked (whatever
/// coordination.mode says, as `cluster` does): more than one voting member is an HA control
/// plane. A cluster that cannot be reached but looks HA from the manifests is refused: a
/// rotation done on one node only would cut it off from the others.
pub fn locate(paths: &NodePaths, settings: &Settings) -> Result<Place> {
    if LocalStore::active(paths) {
        return Ok(Place::Local);
    }
    let mut s = settings.coordination.clone();
    s.mode = Mode::Etcd;
    let offline = |e: anyhow::Error| -> Result<Place> {
        let view = crate::cluster::endpoints::local_view(paths);
        let last = crate::cluster::endpoints::last_seen(paths);
        if crate::cluster::endpoints::auto_offline(&view, last) {
            bail!(
                "etcd cannot be reached ({e:#}), and this node is part of a control plane with {} members: a rotation needs every member healthy",
                view.initial_cluster.len().max(last.unwrap_or(0))
            );
        }
        if view.local_client_urls.is_empty() {
            bail!("no local etcd member on this node (no etcd.yaml in the manifests): phase 1 rotates the etcd CA of stacked etcd only");
        }
        // A single node whose member is down: its rotation restarts the member anyway.
        Ok(Place::Local)
    };
    let c = match Coordinator::connect(paths, &s) {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(Place::Local),
        Err(e) => return offline(e),
    };
    let st = match c.status() {
        Ok(st) => st,
        Err(e) => return offline(e),
    };
    let voting = st.members.iter().filter(|h| !h.member.is_learner).count();
    if voting > 1 {
        if settings.coordination.mode == Mode::None {
            bail!("coordination.mode is none, but etcd has {voting} voting members: a CA rotation must be coordinated across every control-plane node");
        }
        return Ok(Place::Etcd(Box::new(c)));
    }
    Ok(Place::Local)
}

/// A rotation ready to be recorded.
pub struct Started {
    /// The record.
    pub record: Rotation,
    /// The revision it replaces (0: none).
    pub replaces: i64,
    /// Whether the operator brought the CA.
    pub operator_ca: bool,
    /// The old CA.
    pub old: CertInfo,
    /// The new CA.
    pub new: CertInfo,
}

fn rotation_id(now: OffsetDateTime) -> String {
    let n = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{:04x}",
        n.year(),
        u8::from(n.month()),
        n.day(),
        n.hour(),
        n.minute(),
        n.second(),
        rand::rng().random::<u16>()
    )
}

/// Who asks: node, user, pid.
pub fn who(node: &str) -> String {
    let uid = nix::unistd::getuid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    format!("{node} (user {user}, pid {})", std::process::id())
}

/// Everything checked before a rotation starts, each problem one line naming its file or
/// object; then the record with the new CA and its sealed key. Nothing is written here.
pub fn prepare(
    paths: &NodePaths,
    settings: &Settings,
    place: &Place,
    ca_dir: Option<&Path>,
    now: OffsetDateTime,
) -> Result<Started> {
    let mut problems = Vec::new();
    let store = place.store(paths);
    let existing = store.load()?;
    let replaces = match &existing {
        Some((r, _)) if r.phase.active() => bail!(
            "the {} rotation {} is in {} (started by {} at {}): see `kubeadm-certd ca status`; abort it with `kubeadm-certd ca rotate {} --abort` while it is before trust-new",
            r.ca, r.id, r.phase, r.started_by, r.started_at, r.ca
        ),
        Some((_, rev)) => *rev,
        None => 0,
    };
    let nodes = match place {
        Place::Etcd(c) => {
            let st = c.status()?;
            if let Some(h) = &st.halt {
                problems.push(format!(
                    "a halt record stands ({h}); resolve it and run `kubeadm-certd cluster resume` first"
                ));
            }
            for h in &st.members {
                if h.member.is_learner {
                    problems.push(format!(
                        "etcd member {} is a learner: promote it or remove it first",
                        h.member.label()
                    ));
                } else if let Err(e) = &h.status {
                    problems.push(format!(
                        "etcd member {} does not answer: {e}",
                        h.member.label()
                    ));
                }
            }
            st.members
                .iter()
                .filter(|h| !h.member.is_learner)
                .map(|h| h.member.label())
                .collect()
        }
        Place::Local => vec![super::node_name(paths)],
    };
    if ca_dir.is_none() && settings.ca_validity <= settings.ca_warn_before {
        problems.push(format!(
            "caValidity ({}) is not longer than caWarnBefore ({}): the new CA would be inside its warning window at once; raise caValidity",
            crate::pki::ca::as_written(settings.ca_validity),
            crate::pki::ca::as_written(settings.ca_warn_before)
        ));
    }
    if !settings.restart.enabled {
        problems.push("restart.enabled is false: a CA rotation restarts etcd and kube-apiserver on every control-plane node".into());
    }
    // The old CA, as this node holds it.
    let ca = load_ca(paths, CaId::EtcdCa).map_err(|e| anyhow!("{e}"))?;
    let crt_show = paths.show(&ca.cert_path);
    let Some(old) = ca.cert.clone() else {
        bail!("{crt_show}: missing: this node has no etcd CA to rotate (phase 1 rotates stacked etcd's CA)");
    };
    if ca.external() {
        bail!("{}: missing: the etcd CA is external (no key on this node); rotate it with the tooling that holds its key", paths.show(&ca.key_path));
    }
    let old_key = load_ca_key(paths, &ca).map_err(|e| anyhow!("{e}"))?;
    let in_file = read_node_file(&paths.root, &ca.cert_path)
        .ok()
        .and_then(|b| parse_cert_file(&b).ok())
        .map_or(0, |v| v.len());
    if in_file != 1 {
        problems.push(format!(
            "{crt_show}: holds {in_file} certificates; a rotation starts from a file holding the etcd CA alone"
        ));
    }
    if old.not_after <= now {
        problems.push(format!(
            "{crt_show}: expired at {}: the members no longer trust each other; restore the cluster first",
            rfc3339(old.not_after)
        ));
    }
    for h in HANDLERS.iter().filter(|h| h.ca == CaId::EtcdCa) {
        match material::load(paths, h) {
            Ok(Some(l)) if !l.leaf.signed_by(&old) => problems.push(format!(
                "{}: not signed by the etcd CA; a rotation would leave it untrusted",
                paths.show(&material::cert_file(paths, h))
            )),
            Ok(_) => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    let (new, key_pem, operator_ca) = match ca_dir {
        None => {
            let n = new_like(&old, old_key.format, now, settings.ca_validity)
                .map_err(|e| anyhow!("making the new etcd CA: {e}"))?;
            (n.cert, n.key_pem, false)
        }
        Some(d) => match operator_ca(d, &old, now, settings) {
            Ok((c, k)) => (c, k, true),
            Err(lines) => {
                problems.extend(lines);
                (old.clone(), String::new(), true)
            }
        },
    };
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    let id = rotation_id(now);
    let node = super::node_name(paths);
    let stamp = rfc3339(now);
    let mut record = Rotation {
        id,
        ca: super::ETCD_CA.into(),
        phase: Phase::TrustBoth,
        nodes,
        done: BTreeMap::new(),
        started_by: who(&node),
        started_at: stamp.clone(),
        updated_at: stamp,
        old_ca: old.to_pem(),
        new_ca: new.to_pem(),
        new_key: None,
        history: Vec::new(),
        aborted_by: None,
        halt: None,
    };
    let sealed = crate::pki::seal::seal(
        &old_key,
        &record.seal_label(),
        &seal_aad(&record, &new),
        key_pem.as_bytes(),
    )?;
    record.new_key = Some(sealed);
    Ok(Started {
        record,
        replaces,
        operator_ca,
        old,
        new,
    })
}

/// An operator's CA from `dir` (`ca.crt`, `ca.key`), checked; the certificate and the key
/// file's text, or one line per problem.
fn operator_ca(
    dir: &Path,
    old: &CertInfo,
    now: OffsetDateTime,
    settings: &Settings,
) -> Result<(CertInfo, String), Vec<String>> {
    let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let (cs, ks) = (crt.display().to_string(), key.display().to_string());
    let certs = match read_regular(&crt, MAX_NODE_FILE) {
        Ok(b) => match parse_cert_file(&b) {
            Ok(v) => v,
            Err(e) => return Err(vec![format!("{cs}: {e}")]),
        },
        Err(e) => return Err(vec![format!("{cs}: {e}")]),
    };
    let key_bytes = read_regular(&key, MAX_NODE_FILE).map_err(|e| e.to_string());
    let parsed: Result<PrivateKey, String> = key_bytes
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|b| parse_key_file(b).map_err(|e| e.to_string()));
    let lines = check_operator_ca(
        &cs,
        &ks,
        &certs,
        parsed.as_ref().map_err(Clone::clone),
        old,
        now,
        settings.ca_warn_before,
    );
    if !lines.is_empty() {
        return Err(lines);
    }
    let text = key_bytes
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| vec![format!("{ks}: not UTF-8 PEM")])?;
    let mut certs = certs;
    Ok((certs.remove(0), text.replace("\r\n", "\n")))
}

/// Record a prepared rotation (compare-and-swap: a rotation started meanwhile wins).
pub fn record(paths: &NodePaths, place: &Place, s: &Started) -> Result<()> {
    if matches!(place, Place::Local) {
        crate::act::store::atomic::create_dir_all_mode(&paths.state, 0o700)?;
    }
    if !place.store(paths).swap(s.replaces, &s.record)? {
        bail!("another rotation was recorded meanwhile: see `kubeadm-certd ca status`");
    }
    tracing::info!(
        MESSAGE_ID = crate::logging::MSG_ROTATION_STARTED,
        ACTION = "ca-rotate",
        "{} rotation {} recorded by {}: trust-both begins on {}",
        s.record.ca,
        s.record.id,
        s.record.started_by,
        s.record.nodes.join(", ")
    );
    Ok(())
}

/// Ask for an abort: the record moves to the abort's first phase (compare-and-swap).
pub fn abort(paths: &NodePaths, place: &Place, now: OffsetDateTime) -> Result<Rotation> {
    let store = place.store(paths);
    for _ in 0..10 {
        let Some((cur, rev)): Option<Versioned> = store.load()? else {
            bail!("no CA rotation is recorded: nothing to abort");
        };
        let by = who(&super::node_name(paths));
        let next = cur.aborted(&by, &rfc3339(now)).map_err(|e| anyhow!(e))?;
        if store.swap(rev, &next).context("recording the abort")? {
            tracing::warn!(
                MESSAGE_ID = crate::logging::MSG_ROTATION_ABORT,
                ACTION = "ca-rotate",
                "{} rotation {} aborted by {by} in {}: {} begins",
                cur.ca,
                cur.id,
                cur.phase,
                next.phase
            );
            return Ok(next);
        }
    }
    bail!("the rotation record kept changing; try again")
}

/// Clear a single node's rotation halt (`cluster resume`); the halt that was cleared.
pub fn clear_local_halt(paths: &NodePaths) -> Result<Option<crate::plan::rotation::LocalHalt>> {
    let store = LocalStore { paths };
    let Some((mut r, rev)) = store.load()? else {
        return Ok(None);
    };
    let Some(h) = r.halt.take() else {
        return Ok(None);
    };
    if !store.swap(rev, &r)? {
        bail!("the rotation record changed meanwhile; try again");
    }
    Ok(Some(h))
}
