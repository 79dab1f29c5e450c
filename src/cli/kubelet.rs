//! `kubelet-serving-certs enable|disable` and `repair-kubelet-conf`: one edit of a kubelet
//! file each, backed up, then a kubelet restart that waits until it is healthy.

use crate::act::kubelet::conf::{self as kubelet_conf, Repair};
use crate::act::kubelet::serving::{self, Edit};
use crate::context::{cancel_on_signals, now, Ctx};
use crate::node::kubelet_edit::{ENABLE_FOLLOW_UP, KEY};
use anyhow::Result;

/// `kubelet-serving-certs enable|disable`: this node's kubelet config, then (unless
/// `node_only`) the cluster's kubelet-config ConfigMap on a control-plane node.
pub fn serving_certs(ctx: &Ctx, enable: bool, no_restart: bool, node_only: bool) -> Result<()> {
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
    if !node_only {
        cluster_part(ctx, enable, &cancel)?;
    }
    if enable {
        println!("\n{ENABLE_FOLLOW_UP}");
        // The full text went to stdout; the journal gets the gist.
        tracing::warn!(
            ACTION = "kubelet-config",
            "serverTLSBootstrap is on: this node's kubelet-serving CSRs are approved by the kubeadm-certd daemons on the control-plane nodes (approver.mode: auto); see them with `kubeadm-certd csr list` there"
        );
    }
    Ok(())
}

/// The ConfigMap part: done now when the API answers; otherwise remembered as pending for
/// the daemon, which does it when the API answers.
fn cluster_part(ctx: &Ctx, enable: bool, cancel: &crate::act::cancel::Cancel) -> Result<()> {
    use crate::kube::kubelet_config::{set_server_tls_bootstrap, CmEdit};
    let kubeconfig = ctx.settings.approver.kubeconfig.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let r = rt.block_on(async {
        let Some(kube) = crate::kube::Kube::connect(&ctx.paths.root, &kubeconfig, cancel).await?
        else {
            return Ok(None);
        };
        Ok::<_, anyhow::Error>(Some(set_server_tls_bootstrap(&kube, enable).await))
    })?;
    match r {
        None => println!("{kubeconfig} does not exist here (not a control-plane node): the cluster's kubelet-config ConfigMap is set from a control-plane node."),
        Some(Ok(CmEdit::Unchanged { name })) => {
            println!("{KEY} is already {enable} in ConfigMap kube-system/{name}");
            crate::act::kubelet::pending::clear(&ctx.paths)?;
        }
        Some(Ok(CmEdit::Changed { name, diff })) => {
            print!("{diff}");
            println!("Set {KEY}: {enable} in ConfigMap kube-system/{name}: joins and upgrades keep it from now on.");
            tracing::info!(
                MESSAGE_ID = crate::logging::MSG_KUBELET_CONFIGMAP_SET,
                ACTION = "kubelet-config",
                "serverTLSBootstrap: {enable} in ConfigMap kube-system/{name}"
            );
            crate::act::kubelet::pending::clear(&ctx.paths)?;
        }
        Some(Err(e)) if e.transient() => {
            crate::act::kubelet::pending::write(&ctx.paths, enable, now())?;
            println!("The cluster part is pending: {e}. The daemon sets {KEY}: {enable} in the kubelet-config ConfigMap when the API answers (a running daemon takes it up after its next cycle, a stopped one when it starts).");
        }
        Some(Err(e)) => anyhow::bail!("this node's kubelet config is done, the cluster's is not: {e}"),
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
