//! The command line: clap definitions, one module per command, generated assets and the
//! demo. Output for humans goes to stdout; errors surface as `anyhow` chains that `main`
//! prints one line each.

/// Command-line definitions (also feed the man page and completions).
pub mod args;
/// Man pages and shell completions generated from the CLI (packaging).
pub mod assets;
mod backups;
mod ca;
mod check;
mod cluster;
mod cluster_config;
mod csr;
/// The `demo` command.
pub mod demo;
mod kubelet;
mod kubelet_client;
mod recover;
mod renew;
mod restart;

pub use args::{
    CaAction, Cli, ClusterAction, Command, CsrAction, KubeletClientAction, Output, RenewArgs,
};

use crate::context::{now, Ctx};
use anyhow::Result;

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Demo { keep } => return demo::run(keep.as_deref()),
        Command::Standin {
            node_root,
            listen,
            http,
            flags,
        } => {
            return crate::testkit::standin::run(&crate::testkit::standin::Standin {
                root: node_root,
                listen,
                http: *http,
                flags,
            })
        }
        Command::GenerateAssets { dir } => return assets::generate_assets(dir),
        _ => {}
    }
    let mut ctx = match Ctx::load_from(&cli.root, cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            if matches!(cli.command, Command::Run { .. }) {
                // The daemon's refusal reaches the journal with its MESSAGE_ID.
                tracing::error!(
                    MESSAGE_ID = crate::logging::MSG_CONFIG_REJECTED,
                    "configuration refused, not starting: {e:#}"
                );
            }
            return Err(e);
        }
    };
    ctx.lock_wait = cli.wait;
    match cli.command {
        Command::CheckExpiration { output } => check::run(&ctx, output, now()),
        Command::Renew(args) => renew::run(&ctx, &args, now()),
        Command::InstallSigned {
            csr_dir,
            names,
            no_restart,
        } => renew::install_signed(&ctx, &csr_dir, &names, no_restart, now()),
        Command::Recover => recover::run(&ctx),
        Command::Cluster { action } => cluster::run(&ctx, &action),
        Command::Ca { action } => ca::run(&ctx, &action, now()),
        Command::Backups { prune } => backups::run(&ctx, prune, now()),
        Command::KubeletServingCerts {
            action,
            no_restart,
            node_only,
        } => kubelet::serving_certs(&ctx, action == "enable", no_restart, node_only),
        Command::Csr { action } => csr::run(&ctx, &action),
        Command::RepairKubeletConf => kubelet::repair(&ctx),
        Command::KubeletClient { action } => match action {
            KubeletClientAction::Revive { dry_run } => kubelet_client::revive(&ctx, dry_run, now()),
            KubeletClientAction::Kubeconfig { node, server } => {
                kubelet_client::kubeconfig(&ctx, &node, server.as_deref(), now())
            }
        },
        Command::Restart { components } => restart::run(&ctx, &components),
        Command::Run { once } => {
            let (root, config) = (cli.root.clone(), cli.config.clone());
            crate::daemon::run(ctx, move || Ctx::load_from(&root, config.as_deref()), once)
        }
        Command::Demo { .. } | Command::GenerateAssets { .. } | Command::Standin { .. } => Ok(()),
    }
}

/// For `renew` and `restart`: one line each time another node is found holding the cluster
/// restart lock (not at every look while the same node holds it).
fn lock_wait_printer() -> impl Fn(crate::act::restart::Progress) {
    let last = std::cell::RefCell::new(String::new());
    move |p| {
        if let crate::act::restart::Progress::Waiting { holder, .. } = p {
            if *last.borrow() != holder {
                println!("Waiting for the cluster-wide restart lock, held by {holder}");
                *last.borrow_mut() = holder;
            }
        }
    }
}
