//! `recover`: finish or undo whatever an interrupted run left, and say what was done.

use crate::context::{cancel_on_signals, now, Ctx};
use anyhow::Result;

/// `recover`.
pub fn run(ctx: &Ctx) -> Result<()> {
    let cancel = cancel_on_signals();
    let _l = ctx.lock("recover", &cancel)?;
    let r = crate::act::recover::recover_all(&ctx.paths, &ctx.settings, true, &cancel, now())?;
    if r.actions.is_empty() && r.problems.is_empty() {
        println!("Nothing to recover.");
    }
    for a in &r.actions {
        println!("{a}");
    }
    if !r.problems.is_empty() {
        anyhow::bail!("{}", r.problems.join("\n"));
    }
    Ok(())
}
