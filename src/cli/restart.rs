//! `restart`: restart named static pods by parking their manifests, one at a time, verified.

use crate::act::staticpods::restart::{parse_components, restart_all, RestartOpts};
use crate::context::{cancel_on_signals, Ctx};
use anyhow::Result;

/// `restart <all|COMPONENT...>`.
pub fn run(ctx: &Ctx, components: &[String]) -> Result<()> {
    let cancel = cancel_on_signals();
    let _l = ctx.lock_and_recover(&cancel)?;
    let comps = parse_components(&ctx.paths, components)?;
    let opts = RestartOpts::from_node(&ctx.paths, &ctx.settings, &cancel)?;
    for r in restart_all(&ctx.paths, &comps, &opts, &|_| Vec::new())? {
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
    Ok(())
}
