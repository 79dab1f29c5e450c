//! What a rotation tells the journal about a node's finished step and the phase it ends.

use crate::logging::{MSG_ROTATION_DONE, MSG_ROTATION_PHASE, MSG_ROTATION_STEP};
use crate::plan::rotation::{Phase, Rotation};

/// `node` finished its step of `rec`'s phase; `next` is the record it wrote.
pub(super) fn step_done(
    rec: &Rotation,
    node: &str,
    reissued: &[&str],
    restarted: &[&str],
    next: Option<&Rotation>,
) {
    let done = next
        .map(|n| {
            if n.phase == rec.phase {
                n.done.len()
            } else {
                rec.nodes.len()
            }
        })
        .unwrap_or(rec.done.len() + 1);
    tracing::info!(
        MESSAGE_ID = MSG_ROTATION_STEP,
        ACTION = "ca-rotate",
        RESULT = "ok",
        "{} rotation {}: {} done on {node} ({done} of {} nodes){}{}",
        rec.ca,
        rec.id,
        rec.phase,
        rec.nodes.len(),
        if reissued.is_empty() {
            String::new()
        } else {
            format!("; re-issued {}", reissued.join(", "))
        },
        if restarted.is_empty() {
            String::new()
        } else {
            format!("; restarted {}", restarted.join(", "))
        }
    );
    let Some(n) = next else { return };
    if n.phase == rec.phase {
        return;
    }
    let over = match n.phase {
        Phase::Done => "complete: every node trusts only the new CA",
        Phase::Aborted => "aborted: every node is back on the old CA",
        p => {
            tracing::info!(
                MESSAGE_ID = MSG_ROTATION_PHASE,
                ACTION = "ca-rotate",
                "{} rotation {}: {} complete on every node; {p} begins",
                rec.ca,
                rec.id,
                rec.phase
            );
            return;
        }
    };
    tracing::info!(
        MESSAGE_ID = MSG_ROTATION_DONE,
        ACTION = "ca-rotate",
        "{} rotation {} {over}",
        rec.ca,
        rec.id
    );
}
