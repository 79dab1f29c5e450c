//! Where a daemon cycle enters this node's part of a rotation: a single node (the record in
//! stateDir, no lock) or a node of an HA control plane (the record in etcd, its steps under
//! the cluster-wide restart lock, behind the quorum guard, with the membership unchanged).

use super::inflight;
use super::run::{halted, steps, Report};
use super::side::{Ha, Local};
use super::store::{EtcdStore, LocalStore, Store};
use crate::act::cancel::Cancel;
use crate::act::restart::Progress;
use crate::act::staticpods::restart::RestartOpts;
use crate::cluster::{Coordinator, Wait};
use crate::config::Settings;
use crate::node::NodePaths;
use crate::plan::rotation::Rotation;
use time::OffsetDateTime;

/// A single node's rotation: every due step, in one call.
pub fn local(
    paths: &NodePaths,
    settings: &Settings,
    cancel: &Cancel,
    clock: &dyn Fn() -> OffsetDateTime,
) -> Report {
    let mut rep = Report::seen(None);
    let store = LocalStore { paths };
    match store.load() {
        Ok(Some((r, _))) => {
            inflight::forget_unless(paths, Some(&r));
            rep.blocked = halted(&r);
            let active = r.phase.active() && r.halt.is_none();
            rep.record = Some(r);
            if !active {
                return rep;
            }
        }
        Ok(None) => {
            inflight::forget_unless(paths, None);
            return rep;
        }
        Err(e) => {
            rep.blocked = Some(format!("{e:#}"));
            return rep;
        }
    }
    let Some(opts) = restart_opts(paths, settings, cancel, &mut rep) else {
        return rep;
    };
    let mut side = Local { store, paths, opts };
    let node = super::node_name(paths);
    if let Err(e) = steps(paths, settings, &node, &mut side, cancel, clock, &mut rep) {
        rep.blocked = Some(format!("{e:#}"));
    }
    rep
}

/// How this node restarts; `None` with why it cannot in `rep`.
fn restart_opts(
    paths: &NodePaths,
    settings: &Settings,
    cancel: &Cancel,
    rep: &mut Report,
) -> Option<RestartOpts> {
    if !settings.restart.enabled {
        rep.blocked = Some("restart.enabled is false: a CA rotation restarts etcd and kube-apiserver on every control-plane node, so it cannot go on here".into());
        return None;
    }
    RestartOpts::from_node(paths, settings, cancel)
        .map_err(|e| rep.blocked = Some(format!("{e:#}")))
        .ok()
}

/// An HA node's part: `coord` is connected; the record was seen active.
pub fn ha(
    coord: &Coordinator,
    paths: &NodePaths,
    settings: &Settings,
    ca: &str,
    cancel: &Cancel,
    clock: &dyn Fn() -> OffsetDateTime,
    progress: &dyn Fn(Progress),
) -> Report {
    let mut rep = Report::seen(None);
    let node = coord.node_name();
    let rec = match coord.rotation(ca) {
        Ok(Some((r, _))) => r,
        Ok(None) => {
            inflight::forget_unless(paths, None);
            return rep;
        }
        Err(e) => {
            rep.seen = false;
            tracing::debug!("reading the rotation record: {e:#}");
            return rep;
        }
    };
    inflight::forget_unless(paths, Some(&rec));
    rep.record = Some(rec.clone());
    if !rec.phase.active() {
        return rep;
    }
    if !rec.nodes.contains(&node) {
        rep.blocked = Some(format!(
            "this node ({node}) is not one of the nodes of the {} rotation {} ({}); it was added after the rotation began, or its etcd member's name changed",
            rec.ca,
            rec.id,
            rec.nodes.join(", ")
        ));
        return rep;
    }
    if !rec.due(&node) {
        return rep;
    }
    let Some(opts) = restart_opts(paths, settings, cancel, &mut rep) else {
        return rep;
    };
    let stop = || {
        cancel.heartbeat();
        cancel.is_cancelled()
    };
    let mut permit = match coord.acquire(&node, &stop, clock(), &|h, waited| {
        progress(Progress::Waiting {
            holder: h.to_string(),
            waited,
        })
    }) {
        Ok(p) => p,
        Err(Wait::Halted(h)) => {
            rep.blocked = Some(format!(
                "the {} rotation {} waits: {}",
                rec.ca,
                rec.id,
                Wait::Halted(h)
            ));
            return rep;
        }
        Err(Wait::Cancelled) => return rep,
        Err(w) => {
            rep.blocked = Some(format!("the {} rotation {} waits: {w}", rec.ca, rec.id));
            return rep;
        }
    };
    progress(Progress::Acquired(permit.waited()));
    if permit.is_break_glass() {
        rep.blocked = Some(format!(
            "the {} rotation {} waits: no etcd quorum is reachable, and a rotation step never breaks glass",
            rec.ca, rec.id
        ));
    } else if let Err(e) = members_unchanged(coord, &rec) {
        rep.blocked = Some(e);
    } else {
        let mut side = Ha {
            store: EtcdStore { coord, ca },
            permit: &mut permit,
            paths,
            opts,
            stop: &stop,
            clock,
            catch_up: settings.restart.timeout,
        };
        if let Err(e) = steps(paths, settings, &node, &mut side, cancel, clock, &mut rep) {
            rep.blocked = Some(format!("{e:#}"));
        }
    }
    if let Err(e) = permit.release() {
        tracing::warn!("releasing the restart lock: {e:#} (it lapses with its lease)");
    }
    progress(Progress::Released);
    rep
}

/// The voting members must be the rotation's nodes: a member added since would not trust the
/// new CA, one removed would never do its steps.
fn members_unchanged(coord: &Coordinator, rec: &Rotation) -> Result<(), String> {
    let mut now = coord.voting_members().map_err(|e| format!("{e:#}"))?;
    let mut want = rec.nodes.clone();
    now.sort();
    want.sort();
    if now != want {
        return Err(format!(
            "the {} rotation {} waits: the etcd members are now {}, the rotation began with {}; restore the membership, or abort the rotation",
            rec.ca,
            rec.id,
            now.join(", "),
            want.join(", ")
        ));
    }
    Ok(())
}
