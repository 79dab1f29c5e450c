//! `backups`: which backup sets are kept, why, and how much space they take; `--prune`
//! deletes the rest now instead of after the daemon's next successful cycle.

use crate::act::store::prune::{self, SetReport};
use crate::context::Ctx;
use crate::plan::guard::Keep;
use anyhow::Result;
use time::OffsetDateTime;

/// 1536 -> "1.5 KiB".
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn why(k: &Option<Keep>) -> String {
    match k {
        Some(Keep::Newest) => "kept: the newest set".into(),
        Some(Keep::Retained) => "kept: within backups.keep and backups.maxAge".into(),
        Some(Keep::Needed(why)) => format!("kept: recovery may need it ({why})"),
        Some(Keep::Foreign) => "kept: not a set kubeadm-certd made".into(),
        None => "to prune".into(),
    }
}

fn rfc3339(t: Option<OffsetDateTime>) -> String {
    t.map(crate::logging::rfc3339).unwrap_or_else(|| "-".into())
}

fn print(ctx: &Ctx, sets: &[SetReport]) {
    let b = &ctx.settings.backups;
    println!(
        "Backup sets in {} (backups.keep: {}, backups.maxAge: {}):",
        ctx.paths.show(&ctx.paths.backups()),
        b.keep,
        crate::act::guard::days_or_human(b.max_age)
    );
    for s in sets {
        let name = s
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "  {name:<22} {:<22} {:>10}  {}",
            rfc3339(s.made),
            human_bytes(s.bytes),
            why(&s.keep)
        );
    }
    let kept: Vec<&SetReport> = sets.iter().filter(|s| s.keep.is_some()).collect();
    println!(
        "{} set(s), {}; {} kept ({}), {} to prune",
        sets.len(),
        human_bytes(sets.iter().map(|s| s.bytes).sum()),
        kept.len(),
        human_bytes(kept.iter().map(|s| s.bytes).sum()),
        sets.len() - kept.len()
    );
}

/// `backups [--prune]`.
pub fn run(ctx: &Ctx, do_prune: bool, now: OffsetDateTime) -> Result<()> {
    // Pruning waits for the node lock (the daemon's cycle prunes too, and a renewal must not
    // lose its backup); listing takes nothing. No recovery runs: a journal's set stays protected.
    let _lock = if do_prune {
        Some(ctx.lock("backups --prune", &crate::context::cancel_on_signals())?)
    } else {
        None
    };
    let sets = prune::report(&ctx.paths, &ctx.settings.backups, now);
    print(ctx, &sets);
    if do_prune {
        let gone = prune::prune(&ctx.paths, &ctx.settings.backups, now)?;
        for d in &gone {
            println!("removed {}", ctx.paths.show(d));
        }
        println!("pruned {} set(s)", gone.len());
    }
    Ok(())
}
