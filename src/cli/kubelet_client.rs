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
///
/// Valid for `certificateValidity` as it is in effect (the config file's, else the cluster's
/// `certificateValidityPeriod`, live or kept; clamped to the CA), as the daemon's revival: the
/// cycle renews and revives with the same effective settings. That is kubeadm's rule for the
/// node client certificate it issues itself (kubelet.conf's `system:node:NAME` at init, and
/// `kubeadm kubeconfig user`: NotAfter = start + `CertificateValidityPeriod`,
/// kubernetes/kubernetes `cmd/kubeadm/app/phases/kubeconfig/kubeconfig.go` and
/// `cmd/kubeadm/app/cmd/kubeconfig.go`, v1.31+). The kubelet rotates it from 70-90 % of its
/// life on, at kube-controller-manager's `--cluster-signing-duration`, once the API answers.
pub fn revive(ctx: &Ctx, dry_run: bool, now: OffsetDateTime) -> Result<()> {
    let cancel = cancel_on_signals();
    let _lock = if dry_run {
        None
    } else {
        Some(ctx.lock_and_recover("kubelet-client revive", &cancel)?)
    };
    let (ctx, _) = super::cluster_config::for_command(ctx, &cancel, !dry_run);
    let ctx = &ctx;
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
            "  {}",
            crate::plan::cluster_inputs::describe_validity(&ctx.settings)
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
///
/// The server, in order (issue 18 item 2): `--server`; the ClusterConfiguration's
/// `controlPlaneEndpoint` (read live with a short bound, else the copy in the state dir), as
/// kubeadm turns it into a URL; admin.conf's server; only then this node's kubelet.conf's,
/// which on a v1.33+ control-plane node names its own API server (ControlPlaneKubeletLocalMode),
/// not the endpoint a worker must use.
pub fn kubeconfig(ctx: &Ctx, node: &str, server: Option<&str>, now: OffsetDateTime) -> Result<()> {
    let cancel = cancel_on_signals();
    let (eff_ctx, eff) = super::cluster_config::for_command(ctx, &cancel, false);
    let paths = &eff_ctx.paths;
    let read_kubeconfig = |file: std::path::PathBuf| {
        let host = paths.show(&file);
        crate::node::kubelet_edit::read_text(&paths.root, &file)
            .map_err(|e| format!("{host}: {e:#}"))
            .and_then(|t| {
                crate::pki::kubelet_client::current_cluster(&t).map_err(|e| format!("{host}: {e}"))
            })
    };
    let kubelet_conf = read_kubeconfig(crate::act::kubelet::conf::kubelet_conf(paths));
    let admin_conf = read_kubeconfig(paths.kubeconfigs.join("admin.conf"));
    let endpoint = control_plane_endpoint(paths, &eff);
    let (server, from) = match (server, &endpoint, &admin_conf, &kubelet_conf) {
        (Some(s), ..) => (s.to_string(), "--server".to_string()),
        (None, Some((url, from)), ..) => (url.clone(), from.clone()),
        (None, None, Ok((_, s)), _) => (
            s.clone(),
            format!("{}'s server", paths.show(&paths.kubeconfigs.join("admin.conf"))),
        ),
        (None, None, Err(_), Ok((_, s))) => (
            s.clone(),
            format!(
                "this node's {} (no controlPlaneEndpoint known and no admin.conf)",
                paths.show(&crate::act::kubelet::conf::kubelet_conf(paths))
            ),
        ),
        (None, None, Err(a), Err(k)) => bail!(
            "no server for the kubeconfig: no --server, no controlPlaneEndpoint known, and neither kubeconfig can be read ({a}; {k})"
        ),
    };
    // The cluster name as this node's kubeconfigs name it (kubeadm's clusterName).
    let cluster = match (&kubelet_conf, &admin_conf) {
        (Ok((c, _)), _) | (Err(_), Ok((c, _))) => c.clone(),
        (Err(k), Err(_)) => bail!("{k}: cannot read it for the cluster name"),
    };
    let (client, ca_pem) = revive::issue_for(paths, &eff_ctx.settings, node, now)?;
    print!(
        "{}",
        crate::pki::kubelet_client::kubeconfig(&cluster, &server, &ca_pem, &client)
    );
    eprintln!(
        "kubelet.conf for node {node} (user {}, server {server} from {from}, valid until {}). Copy it to that node as /etc/kubernetes/kubelet.conf (mode 0600), then run `systemctl restart kubelet` there.",
        client.user,
        rfc3339_utc(client.info.not_after)
    );
    Ok(())
}

/// The ClusterConfiguration's `controlPlaneEndpoint` as a server URL, and where it came from:
/// the document in use, else a live or kept one whose other values were not applied. Without
/// a port, the local kube-apiserver's `--secure-port` (kubeadm uses the API server's bind
/// port), else 6443.
fn control_plane_endpoint(
    paths: &crate::node::NodePaths,
    eff: &crate::plan::cluster_inputs::Effective,
) -> Option<(String, String)> {
    use crate::node::cluster_config::{self as cc, endpoint};
    let (config, when) = match &eff.known {
        Some(k) => (
            k.config.clone(),
            format!(
                "{} as read at {}",
                if k.live { "live" } else { "cached" },
                k.read_at
            ),
        ),
        // A document whose other values were not applied still names its endpoint.
        None => match eff.live_text.as_deref().map(cc::parse::parse) {
            Some(Ok(c)) => (c, "live".to_string()),
            _ => {
                let cached = cc::read(paths).ok().flatten()?;
                (
                    cached.config().ok().flatten()?,
                    format!("cached, read at {}", cached.read_at),
                )
            }
        },
    };
    let ep = config.control_plane_endpoint?;
    let port = apiserver_secure_port(paths).unwrap_or(endpoint::DEFAULT_BIND_PORT);
    let url = endpoint::server_url(&ep, port).ok()?;
    Some((
        url,
        format!(
            "the ClusterConfiguration's controlPlaneEndpoint {ep:?} ({}, {when})",
            cc::CONFIGMAP
        ),
    ))
}

/// `--secure-port` of this node's kube-apiserver manifest, if it says.
fn apiserver_secure_port(paths: &crate::node::NodePaths) -> Option<u16> {
    let found = crate::node::manifests::find_manifest(paths, "kube-apiserver")
        .ok()
        .flatten()?;
    found
        .manifest
        .command
        .iter()
        .find_map(|a| a.strip_prefix("--secure-port="))
        .and_then(|p| p.parse().ok())
}
