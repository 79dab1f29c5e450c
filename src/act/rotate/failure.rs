//! A step whose restart failed. The restart code has already put the step's files back from
//! the step's backup and restarted the failed component once more on them (and, on an HA
//! control plane, the cluster gate has written the halt record). What is left is the step's:
//! restart again the components that came back on the step's files before the failure, so
//! that everything runs on what is on disk; halt a single node's rotation; remember the
//! restarts the step still needs once it resumes; drop the step's backup record once its files
//! are all back.

use super::inflight::{self, InFlight};
use super::run::Report;
use super::side::Side;
use super::store::Resume;
use crate::act::staticpods::restart::SequenceError;
use crate::logging::MSG_ROTATION_FAILED;
use crate::node::NodePaths;
use crate::pki::table::Component;
use crate::plan::rotation::Rotation;
use time::OffsetDateTime;

/// Handle `e`, the failure of the step of `rec` on `node` that restarted `owed`; `stopped`:
/// a stop request came meanwhile.
#[allow(clippy::too_many_arguments)]
pub(super) fn handle(
    paths: &NodePaths,
    node: &str,
    rec: &Rotation,
    owed: &[Component],
    e: SequenceError,
    stopped: bool,
    side: &mut dyn Side,
    clock: &dyn Fn() -> OffsetDateTime,
    rep: &mut Report,
) {
    for c in &e.done {
        rep.restarts.push((c.name().into(), true));
    }
    if let Some(c) = e.failed {
        rep.restarts.push((c.name().into(), false));
    }
    let reason = format!(
        "{} step of the {} rotation {} on {node}: {}",
        rec.phase, rec.ca, rec.id, e.error
    );
    if e.failed.is_none() || stopped {
        // Stopped rather than failed (the lease, the gate, or a stop request, which the
        // restart code reports with the component it interrupted, its manifest put back):
        // nothing to roll back and nothing to halt; the restarts stay owed for next time.
        rep.blocked = Some(reason);
        return;
    }
    side.halt(&reason, clock());
    let step = InFlight::of(paths, rec);
    let restored = step.as_ref().is_some_and(|f| f.restored(paths));
    // The components that came back before the failure loaded the step's files, which are
    // gone again: restart them on the files now on disk (the failed one was restarted on
    // them already).
    let mut again = Vec::new();
    if restored && !e.done.is_empty() {
        for (c, ok) in side.restart_again(&e.done) {
            rep.restarts.push((c.name().into(), ok));
            again.push(format!(
                "{} {}",
                c.name(),
                if ok {
                    "restarted on them"
                } else {
                    "did not come back on them"
                }
            ));
        }
    }
    tracing::error!(
        MESSAGE_ID = MSG_ROTATION_FAILED,
        ACTION = "ca-rotate",
        RESULT = "failed",
        "{reason}; {}{}; the rotation is halted",
        match (&step, restored) {
            (None, _) => "this run of the step had no files of its own to put back",
            (Some(_), true) => "the step's files were restored from the step's backup",
            (Some(_), false) =>
                "not every file of the step could be restored from its backup (see above)",
        },
        if again.is_empty() {
            String::new()
        } else {
            format!("; {}", again.join(", "))
        }
    );
    // When it resumes the step restarts its components again, even should it find nothing
    // to write (files that could not be put back).
    let resume = Resume {
        id: rec.id.clone(),
        phase: rec.phase,
        components: owed.iter().map(|c| c.name().to_string()).collect(),
    };
    if let Err(w) = resume.write(paths) {
        tracing::error!("{w:#}");
    }
    if restored {
        if let Err(w) = inflight::clear(paths) {
            tracing::error!("{w:#}");
        }
    }
    rep.failed = Some(reason);
}
