//! `check-expiration`.

use super::Ctx;
use crate::cli::Output;
use crate::report;
use anyhow::Result;
use std::io::Write;
use time::OffsetDateTime;

/// Print kubeadm's tables (or JSON). Exit 0 even when certificates are expired, as kubeadm.
pub fn run(ctx: &Ctx, output: Output, now: OffsetDateTime) -> Result<()> {
    // Recover only when no other run holds the lock: a running daemon owns its own state.
    if let Ok(_l) = crate::store::lock::acquire(&ctx.paths.lock_file()) {
        ctx.recover(false)?;
    }
    let scan = crate::scan::scan(&ctx.paths);
    let r = match report::build::build(&scan, now, ctx.settings.renew_before) {
        Ok(r) => r,
        Err(problems) => {
            let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            anyhow::bail!("{}", lines.join("\n"));
        }
    };
    let text = match output {
        Output::Text => report::render_text(&r, now),
        Output::Json => report::render_json(&r, now),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}
