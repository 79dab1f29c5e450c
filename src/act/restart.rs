//! Restarting the static pods a renewal affects, with rollback of each failed component to
//! the renewal's backup.

use crate::act::cancel::Cancel;
use crate::act::renew::Outcome;
use crate::act::staticpods::restart::{restart_all, RestartOpts, Rollback};
use crate::config::Settings;
use crate::node::NodePaths;
use crate::pki::table::Component;
use crate::plan::restarts::ManifestConsumers;
use crate::plan::Consumers;

/// The files a failed component gets back: those of renewed certificates it uses, paired with
/// their copies in the renewal's backup.
pub fn rollback_for(paths: &NodePaths, outcome: &Outcome, c: Component) -> Rollback {
    let Some(dir) = &outcome.backup_dir else {
        return Vec::new();
    };
    let consumers = ManifestConsumers::read(paths);
    let mut out = Vec::new();
    for r in &outcome.renewed {
        let used = r.files.iter().any(|f| {
            consumers
                .uses(c, f)
                .unwrap_or_else(|| r.handler.consumers.contains(&c))
        });
        if used {
            for f in &r.files {
                let target = paths.root.resolve(f);
                out.push((target.clone(), paths.backup_path(dir, &target)));
            }
        }
    }
    out
}

/// Restart the components after a renewal or install, with rollback to `outcome`'s backup.
pub fn restart_after(
    paths: &NodePaths,
    settings: &Settings,
    outcome: &Outcome,
    components: &[String],
    cancel: &Cancel,
) -> anyhow::Result<()> {
    let comps: Vec<Component> = components
        .iter()
        .filter_map(|n| Component::from_name(n))
        .collect();
    let opts = RestartOpts::from_node(paths, settings, cancel)?;
    restart_all(paths, &comps, &opts, &|c| rollback_for(paths, outcome, c))?;
    Ok(())
}
