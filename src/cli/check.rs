//! `check-expiration`.

use crate::cli::Output;
use crate::context::Ctx;
use crate::plan::report;
use anyhow::Result;
use std::io::Write;
use time::OffsetDateTime;

/// Print kubeadm's tables (or JSON). Exit 0 even when certificates are expired, as kubeadm.
pub fn run(ctx: &Ctx, output: Output, now: OffsetDateTime) -> Result<()> {
    // Read-only: an interrupted run is reported, never finished here, and the node lock is
    // not taken. Whoever holds the lock (a daemon cycle, a command) is mid-run, so its
    // in-flight files are not news.
    if !crate::act::store::lock::is_held(&ctx.paths.lock_file()) {
        let left = crate::act::recover::pending(&ctx.paths);
        if !left.is_empty() {
            eprintln!(
                "warning: an interrupted run left {}; the tables show the disk as it is: run `kubeadm-certd recover`",
                left.join(", ")
            );
        }
        let owed = crate::act::store::owed::read(&ctx.paths);
        if !owed.is_empty() {
            eprintln!(
                "note: restarts owed: {}; the daemon carries them out on its next cycle, or run `kubeadm-certd recover`",
                owed.join(", ")
            );
        }
    }
    // The ClusterConfiguration, read live with a short bound (its certificatesDir, and whether
    // kubeadm's header lines are printed); nothing is written (issue 18).
    let cancel = crate::context::cancel_on_signals();
    let (ctx, eff) = super::cluster_config::for_command(ctx, &cancel, false);
    let ctx = &ctx;
    let scan = crate::plan::scan::scan(&ctx.paths);
    let mut r = match report::build::build(&scan, now, ctx.settings.renew_before) {
        Ok(r) => r,
        Err(problems) => {
            let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            anyhow::bail!("{}", lines.join("\n"));
        }
    };
    mark_blocked(ctx, &scan, &mut r, now);
    budget_note(ctx, now);
    let opts = options(ctx, eff.live_text.as_deref());
    let text = match output {
        Output::Text => report::render_text_with(&r, now, &opts),
        Output::Json => report::render_json_with(&r, now, &opts.style),
        Output::Yaml => report::yaml::json_to_yaml(&report::render_json_with(&r, now, &opts.style))
            .ok_or_else(|| anyhow::anyhow!("cannot print the report as YAML"))?,
    };
    std::io::stdout().write_all(text.as_bytes())?;
    // An unreadable kubelet file is a row above, and still a failure.
    let unreadable = report::build::kubelet_problems(&scan);
    if !unreadable.is_empty() {
        let lines: Vec<String> = unreadable.iter().map(|p| p.to_string()).collect();
        anyhow::bail!("{}", lines.join("\n"));
    }
    Ok(())
}

/// Print as the node's kubeadm release does (issue 18 item 3; the table of releases is in
/// `plan::report::style`). The release: the ClusterConfiguration's `kubernetesVersion` read
/// live in this run, then the sources of `act::kubeadm_version::detect` (the kept copy's, the
/// kube-apiserver image tag, `kubeadm version`). No release found: the v1.30 style, the output
/// before issue 18.
fn options(ctx: &Ctx, live: Option<&str>) -> report::style::Options {
    use crate::act::kubeadm_version::{detect, Detected, BINARY_TIMEOUT};
    let from_live = live
        .and_then(|t| crate::node::cluster_config::parse::parse(t).ok())
        .and_then(|c| c.kubernetes_version)
        .and_then(|v| crate::node::version::KubeVersion::parse(&v))
        .map(|version| Detected {
            version,
            source: format!(
                "ClusterConfiguration of ConfigMap {} (read live)",
                crate::node::cluster_config::CONFIGMAP
            ),
        });
    let found = from_live.or_else(|| detect(&ctx.paths, BINARY_TIMEOUT));
    if let Some(d) = &found {
        tracing::debug!("printing as kubeadm {} does ({})", d.version, d.source);
    }
    report::style::Options {
        style: report::style::Style::for_version(found.map(|d| d.version)),
        // kubeadm prints its "Reading configuration from the ... ConfigMap" lines when it reads
        // the ConfigMap: here only when this run read a usable copy live (a short bounded
        // attempt). When admin.conf exists and the read fails, kubeadm prints the same two
        // lines (FetchInitConfigurationFromCluster prints them before it asks) and then
        // `printer.Printf("[%s] Error reading configuration from the Cluster. Falling back to
        // default configuration\n\n", logPrefix)` (kubernetes/kubernetes
        // cmd/kubeadm/app/cmd/certs.go, getInternalCfg, v1.30+ with the output printer).
        // Decided not to print any of it then: issue 18 asks for the header only after a
        // real read; the fallback line alone is not kubeadm's output either (it never comes
        // without the header); and it would be untrue here, where a failed read falls back to
        // the ClusterConfiguration kept in the state dir, not to kubeadm's defaults.
        configmap_read: live.is_some(),
    }
}

/// Due certificates the daemon will not renew because their CA ends too soon: status
/// `blocked` in the JSON, and a note on stderr (the text tables stay kubeadm's).
fn mark_blocked(
    ctx: &Ctx,
    scan: &crate::plan::scan::Scan,
    r: &mut report::Report,
    now: OffsetDateTime,
) {
    use crate::plan::guard::Hold;
    use crate::plan::{Decision, Selection, Skip};
    // Planning verifies every signature: on a node with due certificates that is most of the
    // run, so it runs only when a certificate could be blocked at all.
    let could = |c| crate::plan::due_without_gain(scan, c, &ctx.settings, now);
    if !scan.certs.iter().any(could) {
        return;
    }
    let plan = crate::plan::plan(scan, &Selection::Due, &ctx.settings, now);
    for i in &plan.items {
        let Decision::Skip(Skip::Held(Hold::NoGain { ca, ca_not_after })) = &i.decision else {
            continue;
        };
        for row in r.certs.iter_mut().filter(|c| c.name == i.handler.name) {
            row.status = report::RowStatus::Blocked;
        }
        eprintln!(
            "note: {} is due but blocked by CA runway: the {} CA ends at {}, so renewing it gains nothing; the daemon leaves it alone. Rotate the {} CA",
            i.handler.name,
            ca.name(),
            report::format::kubeadm_date(*ca_not_after),
            ca.name()
        );
    }
}

/// Components whose daemon restart budget is spent (restart.maxPerDay in 24 h).
fn budget_note(ctx: &Ctx, now: OffsetDateTime) {
    let history = crate::act::store::stamps::read_restarts(&ctx.paths);
    let names: Vec<String> = history.keys().cloned().collect();
    let max = ctx.settings.restart.max_per_day;
    let (_, over) = crate::plan::guard::split_budget(&names, &history, max, now);
    for (c, n) in over {
        let why = if c == crate::daemon::kubelet_drift::KUBELET {
            "something rewrites the kubelet config without kubelet.serverTLSBootstrap again and again"
        } else {
            "something renews again and again"
        };
        eprintln!(
            "note: the daemon restarted {c} {n} times in the last 24h (restart.maxPerDay: {max}) and will not restart it again until the oldest of those is a day old: {why} (see journalctl -u kubeadm-certd)"
        );
    }
}
