//! CA rotation, phase 1: the etcd CA (issue 20). `ca rotate etcd-ca` records a rotation (in
//! etcd on an HA control plane, in stateDir on a single node) with the new CA, its key sealed
//! with the old one; each control-plane node's daemon then carries out its step of each phase
//! (see `plan::rotation` for the phases and why they keep quorum).
//!
//! At idle this costs nothing on a single node (no etcd request: the record is a local file)
//! and one GET per cycle on an HA node.

/// Where a daemon cycle enters this node's part: a single node, or an HA node under the lock.
pub mod entry;
/// What the journal is told of a node's finished step and the phase it ends.
mod events;
/// A step whose restart failed: what is left to roll back, the halt, the resume.
mod failure;
/// The backup of a step in flight, tied to the step rather than the run.
pub mod inflight;
/// The two CAs as this node holds them; the kept backup set of the old one.
pub mod material;
/// One node's steps: files, restarts, progress.
pub mod run;
/// The HA and the single-node side of a step.
mod side;
/// Starting, aborting and reading a rotation (the CLI's side).
pub mod start;
/// One node's step of a phase: prepare and commit the files.
pub mod step;
/// Where the record lives: etcd, or stateDir.
pub mod store;

use crate::act::cancel::Cancel;
use crate::act::restart::Progress;
use crate::cluster::settings::Mode;
use crate::config::Settings;
use crate::node::NodePaths;
use run::Report;
use time::OffsetDateTime;

/// The CA phase 1 rotates.
pub const ETCD_CA: &str = "etcd-ca";

/// Whether this node may be part of an HA control plane, from what it knows without asking
/// etcd: `coordination.mode`, the etcd manifest's `--initial-cluster`, the member count last
/// seen, and the control-plane Nodes the API last listed (the first control-plane node's
/// manifest names only itself, whatever joined since). A single node adds no etcd traffic
/// (issue 19): it never builds the etcd client.
fn might_be_ha(paths: &NodePaths, settings: &Settings) -> bool {
    use crate::cluster::endpoints::{self, LocalSize};
    match settings.coordination.mode {
        Mode::None => false,
        Mode::Etcd => true,
        Mode::Auto => {
            let view = endpoints::local_view(paths);
            endpoints::local_size_of(paths, &view, &settings.coordination) != LocalSize::Single
        }
    }
}

/// The daemon's hook, once per cycle: carry out this node's due rotation steps, if any.
pub fn tick(
    paths: &NodePaths,
    settings: &Settings,
    cancel: &Cancel,
    clock: &dyn Fn() -> OffsetDateTime,
    progress: &dyn Fn(Progress),
) -> Report {
    if store::LocalStore::active(paths) {
        return entry::local(paths, settings, cancel, clock);
    }
    let c = cancel.clone();
    let stop: crate::cluster::StopFn = std::sync::Arc::new(move || c.is_cancelled());
    if !might_be_ha(paths, settings) {
        inflight::forget_unless(paths, None);
        return Report::seen(None);
    }
    match crate::cluster::rotation::peek(paths, &settings.coordination, ETCD_CA, &*stop) {
        Ok(None) => {
            inflight::forget_unless(paths, None);
            Report::seen(None)
        }
        Ok(Some(r)) if !r.phase.active() => {
            inflight::forget_unless(paths, Some(&r));
            Report::seen(Some(r))
        }
        Ok(Some(_)) => {
            match crate::cluster::Coordinator::connect_with(paths, &settings.coordination, stop) {
                Ok(Some(coord)) => {
                    entry::ha(&coord, paths, settings, ETCD_CA, cancel, clock, progress)
                }
                Ok(None) => Report {
                    blocked: Some(
                        "a rotation record stands in etcd, but this node does not coordinate (coordination.mode, or a single etcd member): it cannot take part".into(),
                    ),
                    ..Report::seen(None)
                },
                Err(e) => {
                    tracing::debug!("connecting to etcd for the rotation: {e:#}");
                    Report::default()
                }
            }
        }
        Err(e) => {
            tracing::debug!("reading the rotation record: {e:#}");
            Report::default()
        }
    }
}

/// This node's name as a rotation knows it: its etcd member's name, else the hostname.
pub fn node_name(paths: &NodePaths) -> String {
    crate::cluster::endpoints::local_view(paths)
        .local_name
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        })
}
