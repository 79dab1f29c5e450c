//! `kubelet-client revive [--dry-run]` and `kubelet-client kubeconfig --node NAME
//! [--server URL]`: the manual paths of issue 13.

use crate::act::kubelet::revive::{self, manual_steps};
use crate::context::{cancel_on_signals, Ctx};
use crate::plan::kubelet_client::{decide, Verdict};
use crate::plan::report::format::rfc3339_utc;
use anyhow::{bail, Context, Result};
use time::OffsetDateTime;

/// `kubelet-client revive`: the daemon's revival on demand (whatever
/// `kubelet.reviveClientCert` says: asking is the operator's decision).
pub fn revive(ctx: &Ctx, dry_run: bool, now: OffsetDateTime) -> Result<()> {
    let cancel = cancel_on_signals();
    let _lock = if dry_run {
        None
    } else {
        Some(ctx.lock_and_recover("kubelet-client revive", &cancel)?)
    };
    let paths = &ctx.paths;
    let scan = crate::plan::scan::scan(paths);
    let verdict = decide(&scan, now, true);
    let node = crate::plan::kubelet_client::node_name(paths, &scan);
    let due = match &verdict {
        Verdict::Absent => {
            bail!(
                "{} does not exist: this node has no kubelet client certificate to revive",
                paths.show(&paths.kubelet_pki.join(crate::node::kubelet_pki::CLIENT_CURRENT))
            )
        }
        Verdict::Unreadable(why) => bail!("the kubelet's client certificate: {why}"),
        Verdict::Rotating { revivable_from } => {
            println!(
                "The kubelet's client certificate is valid and the kubelet rotates it; nothing to do (revivable from {} if rotation fails).",
                rfc3339_utc(*revivable_from)
            );
            return Ok(());
        }
        Verdict::NotHere { due, reason } => bail!(
            "the kubelet's client certificate needs reviving ({due}), and this node cannot issue one: {reason}. {}",
            manual_steps(node.as_deref().unwrap_or("NAME"))
        ),
        Verdict::Revive { due, .. } | Verdict::Disabled(due) => due.clone(),
    };
    let node =
        node.context("cannot tell the node's name (certificate CN, kubelet.conf user, hostname)")?;
    if dry_run {
        println!("Plan (dry run; nothing is changed):");
        println!("  revive the kubelet's client certificate: {due}");
        let wanted = now + ctx.settings.certificate_validity;
        let until = match scan
            .ca(crate::pki::table::CaId::Ca)
            .and_then(|c| c.cert.as_ref())
        {
            Some(ca) if ca.not_after < wanted => {
                format!(
                    "{} (clamped to the CA's NotAfter)",
                    rfc3339_utc(ca.not_after)
                )
            }
            _ => rfc3339_utc(wanted),
        };
        println!(
            "  issue O=system:nodes, CN=system:node:{node} (ECDSA P-256, clientAuth) with {}, valid until {until}",
            paths.show(&paths.pki.join("ca.crt")),
        );
        println!(
            "  write {}/kubelet-client-<now>.pem, point {} at it, restart the kubelet",
            paths.show(&paths.kubelet_pki),
            crate::node::kubelet_pki::CLIENT_CURRENT
        );
        if crate::act::kubelet::conf::detect(paths).is_some() {
            println!("  repair kubelet.conf, which embeds its client certificate");
        }
        return Ok(());
    }
    println!("Reviving the kubelet's client certificate for node {node}: {due}");
    let r = revive::revive(paths, &ctx.settings, &node, now, &cancel, true)?;
    println!(
        "{} now points at {} (valid until {}{}).",
        crate::node::kubelet_pki::CLIENT_CURRENT,
        paths.show(&r.file),
        rfc3339_utc(r.not_after),
        if r.clamped {
            ", clamped to the CA's NotAfter"
        } else {
            ""
        }
    );
    if let Some(old) = &r.old_file {
        println!("The old file stays: {}", paths.show(old));
    }
    if r.repaired_conf {
        println!("kubelet.conf now references it instead of an embedded certificate.");
    }
    println!("Backup: {}", paths.show(&r.backup));
    println!("The kubelet was restarted and its healthz answers.");
    Ok(())
}

/// `kubelet-client kubeconfig --node NAME [--server URL]`: a kubelet.conf for another node,
/// signed by this node's CA, on stdout. Writes nothing.
pub fn kubeconfig(ctx: &Ctx, node: &str, server: Option<&str>, now: OffsetDateTime) -> Result<()> {
    let paths = &ctx.paths;
    let conf = crate::act::kubelet::conf::kubelet_conf(paths);
    let host = paths.show(&conf);
    let text = crate::node::kubelet_edit::read_text(&paths.root, &conf)
        .with_context(|| format!("{host}: cannot read it for the cluster name and server"))?;
    let (cluster, own_server) = crate::pki::kubelet_client::current_cluster(&text)
        .map_err(|e| anyhow::anyhow!("{host}: {e}"))?;
    let server = server.map_or(own_server, str::to_owned);
    let (client, ca_pem) = revive::issue_for(paths, &ctx.settings, node, now)?;
    print!(
        "{}",
        crate::pki::kubelet_client::kubeconfig(&cluster, &server, &ca_pem, &client)
    );
    eprintln!(
        "kubelet.conf for node {node} (user {}, valid until {}). Copy it to that node as /etc/kubernetes/kubelet.conf (mode 0600), then run `systemctl restart kubelet` there.",
        client.user,
        rfc3339_utc(client.info.not_after)
    );
    Ok(())
}
