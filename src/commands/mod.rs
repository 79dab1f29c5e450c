//! Command dispatch: each subcommand's run function. Output for humans goes to stdout;
//! errors surface as `anyhow` chains that `main` prints as one line.

mod check;
pub mod kubelet;
mod renew;

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::node::paths::Root;
use crate::node::NodePaths;
use crate::store::lock::{self, Lock};
use anyhow::Result;
use time::OffsetDateTime;

/// What every command needs: the node's paths and the settings.
#[derive(Debug)]
pub struct Ctx {
    /// Validated settings.
    pub settings: Settings,
    /// The node.
    pub paths: NodePaths,
}

impl Ctx {
    /// Load the config and resolve the node under `--root`.
    pub fn load(cli: &Cli) -> Result<Ctx> {
        Ctx::load_from(&cli.root, cli.config.as_deref())
    }

    /// Load from a root directory and an optional explicit config file.
    pub fn load_from(root: &std::path::Path, config: Option<&std::path::Path>) -> Result<Ctx> {
        let root = Root::new(root);
        let settings = Settings::load(&root, config)?;
        let paths = settings.paths(&root);
        Ok(Ctx { settings, paths })
    }

    /// Take the lock and finish whatever an interrupted run left.
    pub fn lock_and_recover(&self) -> Result<Lock> {
        let l = lock::acquire(&self.paths.lock_file())?;
        self.recover(true)?;
        Ok(l)
    }

    /// Recover, logging what was done; `restarts` also carries out owed restarts.
    pub fn recover(&self, restarts: bool) -> Result<()> {
        let r = crate::recover::recover_all(&self.paths, &self.settings, restarts)?;
        for a in r.actions {
            tracing::warn!(ACTION = "recover", "{a}");
        }
        for p in r.problems {
            tracing::error!(ACTION = "recover", "{p}");
        }
        Ok(())
    }
}

/// The wall clock, read only here at the edge.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Demo { keep } => return crate::demo::run(keep.as_deref()),
        Command::Standin {
            node_root,
            listen,
            http,
            flags,
        } => {
            return crate::standin::run(&crate::standin::Standin {
                root: node_root,
                listen,
                http: *http,
                flags,
            })
        }
        Command::GenerateAssets { dir } => return crate::assets_hook(dir),
        _ => {}
    }
    let ctx = Ctx::load(&cli)?;
    match cli.command {
        Command::CheckExpiration { output } => check::run(&ctx, output, now()),
        Command::Renew(args) => renew::run(&ctx, &args, now()),
        Command::InstallSigned {
            csr_dir,
            names,
            no_restart,
        } => renew::install_signed(&ctx, &csr_dir, &names, no_restart, now()),
        Command::Recover => {
            let _l = lock::acquire(&ctx.paths.lock_file())?;
            crate::signals::install();
            let r = crate::recover::recover_all(&ctx.paths, &ctx.settings, true)?;
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
        Command::KubeletServingCerts { action, no_restart } => {
            kubelet::serving_certs(&ctx, action == "enable", no_restart)
        }
        Command::RepairKubeletConf => kubelet::repair(&ctx),
        Command::Restart { components } => {
            let _l = ctx.lock_and_recover()?;
            crate::signals::install();
            let comps = crate::staticpods::restart::parse_components(&ctx.paths, &components)?;
            let opts =
                crate::staticpods::restart::RestartOpts::from_node(&ctx.paths, &ctx.settings)?;
            for r in
                crate::staticpods::restart::restart_all(&ctx.paths, &comps, &opts, &|_| Vec::new())?
            {
                println!(
                    "{} restarted: pid {} -> {}, down for {:.1}s",
                    r.component.name(),
                    r.old
                        .iter()
                        .map(|p| p.pid.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    r.new
                        .map(|p| p.pid.to_string())
                        .unwrap_or_else(|| "?".into()),
                    r.downtime.as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Run { once } => {
            let (root, config) = (cli.root.clone(), cli.config.clone());
            crate::daemon::run(ctx, move || Ctx::load_from(&root, config.as_deref()), once)
        }
        Command::Demo { .. } | Command::GenerateAssets { .. } | Command::Standin { .. } => Ok(()),
    }
}
