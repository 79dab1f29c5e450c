//! `restart`: restart named static pods by parking their manifests, one at a time, verified;
//! on an HA control plane under the cluster-wide restart lock.

use crate::act::restart::{restart_coordinated, Sequence};
use crate::act::staticpods::restart::parse_components;
use crate::context::{cancel_on_signals, now, Ctx};
use anyhow::{bail, Result};

/// `restart <all|COMPONENT...>`.
pub fn run(ctx: &Ctx, components: &[String]) -> Result<()> {
    let cancel = cancel_on_signals();
    let _l = ctx.lock_and_recover("restart", &cancel)?;
    let comps = parse_components(&ctx.paths, components)?;
    let progress = super::lock_wait_printer();
    let seq = restart_coordinated(
        &ctx.paths,
        &ctx.settings,
        &comps,
        &cancel,
        &|_| Vec::new(),
        &now,
        &progress,
    )?;
    let names: Vec<String> = comps.iter().map(|c| c.name().to_string()).collect();
    report_sequence(&names, seq)
}

/// Print what a restart sequence did; an error when one of `asked` was not restarted.
pub(crate) fn report_sequence(asked: &[String], seq: Sequence) -> Result<()> {
    let done = match seq {
        Sequence::Owed(why) => bail!("nothing restarted: {why}"),
        Sequence::Done(d) => d,
    };
    for r in &done {
        let old: Vec<String> = r.old.iter().map(|p| p.pid.to_string()).collect();
        println!(
            "{} restarted: pid {} -> {}, down for {}",
            r.component.name(),
            if old.is_empty() {
                "none".to_string()
            } else {
                old.join(",")
            },
            r.new
                .map(|p| p.pid.to_string())
                .unwrap_or_else(|| "?".into()),
            crate::logging::human_duration(r.downtime)
        );
    }
    let missing: Vec<&str> = asked
        .iter()
        .filter(|a| !done.iter().any(|r| r.component.name() == a.as_str()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        bail!(
            "not restarted now (see the log): {}; renewed files leave them owed, and the daemon retries them",
            missing.join(", ")
        );
    }
    Ok(())
}
