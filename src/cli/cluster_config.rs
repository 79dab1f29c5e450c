//! What a command renews or reports with (issue 18): the config file's settings, with the
//! cluster's ClusterConfiguration where the file sets none, read live with a short bound
//! ([`COMMAND_BOUND`], cut short by SIGTERM/SIGINT), else from the copy in the state dir.

use crate::act::cancel::Cancel;
use crate::context::{now, Ctx};
use crate::kube::cluster_config::{read_bounded, COMMAND_BOUND};
use crate::plan::cluster_inputs::{effective, Effective, Live};

/// The live attempt: the document, or why there is none.
pub fn live(ctx: &Ctx, cancel: &Cancel) -> Live {
    let kubeconfig = &ctx.settings.approver.kubeconfig;
    match read_bounded(&ctx.paths.root, kubeconfig, COMMAND_BOUND, cancel) {
        Ok(Some(text)) => Live::Read { text, at: now() },
        Ok(None) => Live::NotTried(format!(
            "{kubeconfig} does not exist here, so the API was not asked"
        )),
        Err(why) => Live::Failed(why),
    }
}

/// The effective settings and paths for a command, and what the cluster said. Problems are
/// printed once, as warnings on stderr. With `keep`, a live document that parsed is kept in
/// the state dir (commands that change nothing, such as `--dry-run`, leave it alone).
pub fn for_command(ctx: &Ctx, cancel: &Cancel, keep: bool) -> (Ctx, Effective) {
    let e = effective(&ctx.paths, &ctx.settings, live(ctx, cancel));
    for w in &e.warnings {
        eprintln!("warning: {w}");
    }
    if let (true, Some(text), Some(k)) = (keep, &e.live_text, &e.known) {
        if let Err(err) = crate::act::cluster_config::keep(&ctx.paths, text, &k.config, now()) {
            eprintln!("warning: keeping the ClusterConfiguration in the state dir: {err:#}");
        }
    }
    let ctx = Ctx {
        settings: e.settings.clone(),
        paths: e.paths.clone(),
        lock_wait: ctx.lock_wait,
    };
    (ctx, e)
}
