//! `kubelet-serving-certs enable|disable` and `repair-kubelet-conf`: one edit of a kubelet
//! file each, backed up, then a kubelet restart that waits until it is healthy.

use crate::act::kubelet::conf::{self as kubelet_conf, Repair};
use crate::act::kubelet::serving::{self, Edit};
use crate::context::{cancel_on_signals, now, Ctx};
use crate::node::kubelet_edit::{ENABLE_FOLLOW_UP, KEY};
use anyhow::Result;

/// `kubelet-serving-certs enable|disable`.
pub fn serving_certs(ctx: &Ctx, enable: bool, no_restart: bool) -> Result<()> {
    let cancel = cancel_on_signals();
    let _lock = ctx.lock_and_recover("kubelet-serving-certs", &cancel)?;
    let paths = &ctx.paths;
    let host = paths.show(&paths.kubelet_config);
    match serving::set_server_tls_bootstrap(paths, enable, now())? {
        Edit::Unchanged => println!("{KEY} is already {enable} in {host}; nothing to do"),
        Edit::Changed { backup, diff } => {
            print!("{diff}");
            println!("Backup of the old file: {}", paths.show(&backup));
            if no_restart {
                println!("Not restarting the kubelet (--no-restart); the change takes effect at `systemctl restart kubelet`.");
            } else {
                println!("Restarting the kubelet...");
                crate::act::systemd::restart_kubelet(paths, ctx.settings.restart.timeout, &cancel)?;
                println!("The kubelet is active and its healthz answers.");
            }
        }
    }
    if enable {
        println!("\n{ENABLE_FOLLOW_UP}");
        // The full text went to stdout; the journal gets the gist.
        tracing::warn!(
            ACTION = "kubelet-config",
            "serverTLSBootstrap is on: approve this node's kubelet-serving CSRs (kubectl get csr; kubectl certificate approve NAME)"
        );
    }
    Ok(())
}

/// `repair-kubelet-conf`.
pub fn repair(ctx: &Ctx) -> Result<()> {
    let cancel = cancel_on_signals();
    let _lock = ctx.lock_and_recover("repair-kubelet-conf", &cancel)?;
    let paths = &ctx.paths;
    let host = paths.show(&kubelet_conf::kubelet_conf(paths));
    match kubelet_conf::repair(paths, now())? {
        Repair::AlreadyRepaired { client_certificate } => {
            println!("{host} already references {client_certificate}; nothing to do");
        }
        Repair::Repaired {
            backup,
            diff,
            not_after,
        } => {
            print!("{diff}");
            println!("Backup of the old file: {}", paths.show(&backup));
            println!(
                "kubelet.conf now uses the kubelet's rotated client certificate (valid until {}).",
                crate::logging::rfc3339(not_after)
            );
            println!("Restarting the kubelet (systemctl restart kubelet)...");
            crate::act::systemd::restart_kubelet(paths, ctx.settings.restart.timeout, &cancel)?;
            println!("The kubelet is active and its healthz answers.");
        }
    }
    Ok(())
}
