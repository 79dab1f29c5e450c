//! `csr list` and `csr approve`: the operator's view of the kubelet serving CSRs, with what
//! each approval rule says, and the manual path when `approver.mode` is off. `approve`
//! approves only CSRs that pass every rule (there is no force flag: `kubectl certificate
//! approve` exists for that). Neither takes the node lock: they change no node file.

use super::args::{CsrAction, Output};
use crate::context::{approver_env, cancel_on_signals, Ctx};
use crate::kube::approver::decide::{approve_message, failure_line, write, Kind, Written};
use crate::kube::approver::{gather, Facts};
use crate::kube::client::Kube;
use crate::kube::views::{csr_view, decision, is_pending, state};
use crate::plan::approve::{self as rules, Outcome, Rule, Verdict};
use anyhow::{bail, Context, Result};
use serde_json::json;
use time::OffsetDateTime;

/// Run a `csr` subcommand.
pub fn run(ctx: &Ctx, action: &CsrAction) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let cancel = cancel_on_signals();
        let kubeconfig = ctx.settings.approver.kubeconfig.clone();
        let Some(kube) = Kube::connect(&ctx.paths.root, &kubeconfig, &cancel).await? else {
            bail!("{kubeconfig} does not exist here: the csr commands need the API credentials of a control-plane node (approver.kubeconfig)");
        };
        match action {
            CsrAction::List { output } => list(ctx, &kube, *output).await,
            CsrAction::Approve { names } => approve(ctx, &kube, names).await,
        }
    })
}

/// One CSR with its verdict.
struct Row {
    csr: crate::kube::client::Csr,
    verdict: Verdict,
}

async fn rows(ctx: &Ctx, kube: &Kube) -> Result<(Vec<Row>, Facts)> {
    let env = approver_env(ctx);
    let list = kube.list_csrs().await?;
    let facts = gather(kube, &env).await?;
    let rows = list
        .items
        .into_iter()
        .map(|csr| {
            let v = csr_view(&csr);
            let verdict = rules::evaluate(
                &v,
                &facts.nodes,
                &facts.api,
                facts.host.as_ref(),
                &env.policy,
            );
            let verdict = shown(&csr, verdict);
            Row { csr, verdict }
        })
        .collect();
    Ok((rows, facts))
}

/// What an operator is shown. For a CSR already decided, rule (a)'s "already Approved" is no
/// failure of the CSR but the decision itself: it reads `n/a: decided: Approved by REASON`.
/// The verdict stays unapprovable ((a) is not a pass), as `evaluate` says for the approver.
fn shown(csr: &crate::kube::client::Csr, mut verdict: Verdict) -> Verdict {
    let v = csr_view(csr);
    if is_pending(&v) || v.signer_name != rules::KUBELET_SERVING_SIGNER {
        return verdict;
    }
    if let Some((_, o)) = verdict.checks.iter_mut().find(|(r, _)| *r == Rule::Signer) {
        *o = Outcome::NotApplicable(format!("decided: {}", decision(csr)));
    }
    verdict
}

fn age(created: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    created.map_or_else(
        || "?".into(),
        |c| crate::plan::report::format::short_human_duration((now - c).whole_seconds().max(0)),
    )
}

/// The requested DNS names and IPs (none when the request does not decode).
fn sans(v: &Verdict) -> Vec<String> {
    v.request.as_ref().map_or_else(Vec::new, |r| {
        r.dns
            .iter()
            .cloned()
            .chain(r.ips.iter().map(|i| i.to_string()))
            .collect()
    })
}

/// `approvable`, or the first failed rule and its value. For a CSR already decided, rule (a)
/// says only that; what the other rules say shows whether our rules would have approved it.
fn summary(csr: &crate::kube::client::Csr, v: &Verdict) -> String {
    if !is_pending(&csr_view(csr)) {
        return match v
            .checks
            .iter()
            .find(|(r, o)| *r != Rule::Signer && o.is_fail())
        {
            Some((r, o)) => format!("decided; would fail {}", failure_line(*r, o.message())),
            None => "decided; the other rules pass".into(),
        };
    }
    if v.approvable() {
        return "approvable".into();
    }
    match v.first_failure() {
        Some((r, val)) => failure_line(r, val),
        None => v.summary(),
    }
}

async fn list(ctx: &Ctx, kube: &Kube, output: Output) -> Result<()> {
    let (rows, facts) = rows(ctx, kube).await?;
    let now = crate::context::now();
    if output != Output::Text {
        let items: Vec<_> = rows
            .iter()
            .map(|r| {
                let v = csr_view(&r.csr);
                json!({
                    "name": v.name,
                    "requestor": v.username,
                    "sans": sans(&r.verdict),
                    "created": v.created.map(crate::logging::rfc3339),
                    "state": state(&v),
                    "approvable": r.verdict.approvable(),
                    "rules": r.verdict.checks.iter().map(|(rule, o)| {
                        json!({"rule": rule.label(), "result": o.result(), "message": o.message()})
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = json!({"nodes": facts.nodes.len(), "items": items});
        return output.print_doc(&doc);
    }
    if rows.is_empty() {
        println!("No kubelet serving CSRs.");
        return Ok(());
    }
    let head = ["NAME", "AGE", "REQUESTOR", "STATE", "SANS", "RULES"];
    let table: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let v = csr_view(&r.csr);
            [
                v.name.clone(),
                age(v.created, now),
                v.username.clone(),
                state(&v),
                sans(&r.verdict).join(","),
                summary(&r.csr, &r.verdict),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for row in &table {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = width[i]));
            }
        }
        println!("{s}");
    };
    line(head.to_vec());
    for row in &table {
        line(row.iter().map(String::as_str).collect());
    }
    for r in &rows {
        println!("\n{}:", r.csr.metadata.name.as_deref().unwrap_or_default());
        for l in r.verdict.lines() {
            println!("  {l}");
        }
    }
    Ok(())
}

async fn approve(ctx: &Ctx, kube: &Kube, names: &[String]) -> Result<()> {
    let (rows, _) = rows(ctx, kube).await?;
    let env = approver_env(ctx);
    let by = env.node.clone().unwrap_or_else(|| "this node".into());
    let mut refused = 0;
    for name in names {
        let Some(r) = rows
            .iter()
            .find(|r| r.csr.metadata.name.as_deref() == Some(name))
        else {
            println!("refused {name}: no kubelet serving CSR of that name");
            refused += 1;
            continue;
        };
        let v = csr_view(&r.csr);
        // Approved already (by us, another approver, kubectl): what was asked holds.
        if v.approved && !v.denied {
            println!("{name} is already decided: {}", state(&v));
            continue;
        }
        if !is_pending(&v) {
            println!(
                "refused {name}: it is already {}, and a decided CSR cannot be approved",
                state(&v)
            );
            refused += 1;
            continue;
        }
        if !r.verdict.approvable() {
            println!("refused {name}: {}", summary(&r.csr, &r.verdict));
            refused += 1;
            continue;
        }
        let message = approve_message(&r.verdict, &by);
        match write(kube, &r.csr, Kind::Approve, &message, &env.now).await? {
            Written::Done => {
                tracing::info!(
                    MESSAGE_ID = crate::logging::MSG_CSR_APPROVED,
                    ACTION = "csr-approve",
                    CSR = name.as_str(),
                    RESULT = "approved",
                    "approved kubelet serving CSR {name} of {} (csr approve): every check passed",
                    v.username
                );
                println!("approved {name} ({})", v.username);
            }
            Written::AlreadyDecided(s) => println!("{name} is already decided: {s}"),
            Written::Gone => {
                println!("refused {name}: it no longer exists");
                refused += 1;
            }
        }
    }
    if refused > 0 {
        bail!("{refused} of {} CSR(s) not approved", names.len());
    }
    Ok(())
}
