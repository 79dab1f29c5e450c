//! `check-expiration`.

use crate::cli::Output;
use crate::context::Ctx;
use crate::plan::report;
use anyhow::Result;
use std::io::Write;
use time::OffsetDateTime;

/// Print kubeadm's tables (or JSON). Exit 0 even when certificates are expired, as kubeadm.
pub fn run(ctx: &Ctx, output: Output, now: OffsetDateTime) -> Result<()> {
    // Read-only: an interrupted run is reported, never finished here. A running daemon that
    // holds the lock is mid-cycle, so its in-flight files are not news.
    if !crate::act::store::lock::is_held(&ctx.paths.lock_file()) {
        let left = crate::act::recover::pending(&ctx.paths);
        if !left.is_empty() {
            eprintln!(
                "warning: an interrupted run left {}; the tables show the disk as it is: run `kubeadm-certd recover`",
                left.join(", ")
            );
        }
    }
    let scan = crate::plan::scan::scan(&ctx.paths);
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
