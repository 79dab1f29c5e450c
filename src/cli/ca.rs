//! `ca rotate etcd-ca [--dry-run] [--ca-dir DIR] [--abort]` and `ca status [-o text|json]`
//! (issue 20). The command only records the rotation; the daemons carry it out.

use super::args::{CaAction, Output};
use crate::act::rotate::start::{self, Place, Started};
use crate::context::Ctx;
use crate::logging::rfc3339;
use crate::pki::inspect::CertInfo;
use crate::plan::rotation::{Phase, Rotation};
use anyhow::{anyhow, Result};
use serde_json::json;
use time::OffsetDateTime;

/// `ca <action>`.
pub fn run(ctx: &Ctx, action: &CaAction, now: OffsetDateTime) -> Result<()> {
    match action {
        CaAction::Rotate {
            dry_run,
            ca_dir,
            abort,
            ..
        } => {
            let place = start::locate(&ctx.paths, &ctx.settings)?;
            // A single node's record is a file the daemon also writes: hold the node lock.
            let cancel = crate::context::cancel_on_signals();
            let _l = match (&place, dry_run) {
                (Place::Local, false) => Some(ctx.lock("ca rotate", &cancel)?),
                _ => None,
            };
            if *abort {
                if *dry_run {
                    return abort_plan(ctx, &place, now);
                }
                let r = start::abort(&ctx.paths, &place, now)?;
                println!(
                    "Abort of the {} rotation {} recorded: {} begins on {}.",
                    r.ca,
                    r.id,
                    r.phase,
                    r.nodes.join(", ")
                );
                println!("The daemons carry it out one node at a time; follow it with `kubeadm-certd ca status`.");
                return Ok(());
            }
            let s = start::prepare(&ctx.paths, &ctx.settings, &place, ca_dir.as_deref(), now)?;
            print_plan(ctx, &place, &s, *dry_run);
            if *dry_run {
                return Ok(());
            }
            start::record(&ctx.paths, &place, &s)?;
            println!(
                "Rotation {} of {} recorded: trust-both begins on {}.",
                s.record.id,
                s.record.ca,
                s.record.nodes.join(", ")
            );
            println!("The daemons carry it out one node at a time; follow it with `kubeadm-certd ca status`.");
            Ok(())
        }
        CaAction::Status { output } => status(ctx, *output),
    }
}

fn describe(c: &CertInfo) -> String {
    format!(
        "CN={}, {}, serial {}, valid {} to {}",
        c.cn().unwrap_or(""),
        c.key_alg
            .map(|a| a.to_string())
            .unwrap_or_else(|| "?".into()),
        c.serial
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        rfc3339(c.not_before),
        rfc3339(c.not_after)
    )
}

fn where_text(ctx: &Ctx, place: &Place) -> String {
    match place {
        Place::Etcd(_) => "an HA control plane: the record goes to etcd".into(),
        Place::Local => format!(
            "a single control-plane node: the record goes to {}",
            ctx.paths
                .show(&ctx.paths.state.join(crate::plan::rotation::LOCAL_RECORD))
        ),
    }
}

fn print_plan(ctx: &Ctx, place: &Place, s: &Started, dry_run: bool) {
    if dry_run {
        println!("Plan (dry run; nothing is changed):");
    } else {
        println!("Plan:");
    }
    let r = &s.record;
    println!(
        "  CA:       {} ({})",
        r.ca,
        ctx.paths.show(&ctx.paths.pki.join("etcd/ca.crt"))
    );
    println!("  Old CA:   {}", describe(&s.old));
    println!(
        "  New CA:   {} ({})",
        describe(&s.new),
        if s.operator_ca {
            "brought with --ca-dir"
        } else {
            "made as kubeadm makes a CA"
        }
    );
    println!(
        "  Nodes:    {} ({})",
        r.nodes.join(", "),
        where_text(ctx, place)
    );
    println!("  Phases, each completed on every node before the next, one node at a time under the restart lock:");
    println!("    1. trust-both  etcd/ca.crt holds the old and the new CA; restart etcd, then kube-apiserver");
    println!("    2. reissue     etcd-server, etcd-peer, etcd-healthcheck-client and apiserver-etcd-client re-issued by the new CA; etcd/ca.key becomes the new key (etcd/ca.crt: new, then old); restart etcd, then kube-apiserver");
    println!(
        "    3. trust-new   etcd/ca.crt holds only the new CA; restart etcd, then kube-apiserver"
    );
    println!(
        "  Restarts per node: 3 etcd, 3 kube-apiserver (each verified, rolled back on failure)."
    );
    println!("  The old CA is kept on every node in a backup set that is never pruned.");
    println!(
        "  Abort with `kubeadm-certd ca rotate {} --abort` until trust-new starts.",
        r.ca
    );
}

fn abort_plan(ctx: &Ctx, place: &Place, now: OffsetDateTime) -> Result<()> {
    let store = place.store(&ctx.paths);
    let (r, _) = store
        .load()?
        .ok_or_else(|| anyhow!("no CA rotation is recorded: nothing to abort"))?;
    let next = r
        .aborted("dry run", &rfc3339(now))
        .map_err(|e| anyhow!(e))?;
    println!("Plan (dry run; nothing is changed):");
    println!(
        "  The {} rotation {} would leave {} for {}:",
        r.ca, r.id, r.phase, next.phase
    );
    if next.phase == Phase::ReissueOld {
        println!("    reissue-old  the etcd leaves re-issued by the new CA are re-issued by the old one; etcd/ca.key becomes the old key (etcd/ca.crt: old, then new); restart etcd, then kube-apiserver");
    }
    println!("    untrust-new  etcd/ca.crt holds only the old CA again; restart etcd, then kube-apiserver");
    println!("  on {}, one node at a time.", next.nodes.join(", "));
    Ok(())
}

/// Find the record for `ca status`: a local one, else etcd's (whatever the mode says).
fn load_any(ctx: &Ctx) -> Result<(Option<Rotation>, Option<String>, Option<String>)> {
    let place = start::locate(&ctx.paths, &ctx.settings)?;
    let store = place.store(&ctx.paths);
    let rec = store.load()?.map(|(r, _)| r);
    let (halt, local_halt) = match &place {
        Place::Etcd(c) => (c.halt_record()?.map(|h| h.to_string()), None),
        Place::Local => (
            None,
            rec.as_ref()
                .and_then(|r| r.halt.as_ref())
                .map(|h| format!("halted at {}: {}", h.time, h.reason)),
        ),
    };
    Ok((rec, halt.or(local_halt), Some(where_text(ctx, &place))))
}

fn status(ctx: &Ctx, output: Output) -> Result<()> {
    let (rec, halt, place) = load_any(ctx)?;
    match output {
        Output::Json | Output::Yaml => {
            let v = match &rec {
                None => json!({"rotation": null, "halt": halt}),
                Some(r) => json!({
                    "rotation": public(r),
                    "progress": r.progress(),
                    "halt": halt,
                    "where": place,
                }),
            };
            output.print_doc(&v)?;
        }
        Output::Text => match &rec {
            None => println!("No CA rotation recorded."),
            Some(r) => print!("{}", text(r, halt.as_deref())),
        },
    }
    Ok(())
}

/// The record for humans and JSON: the sealed key only as a yes/no.
fn public(r: &Rotation) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or(serde_json::Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.remove("newKey");
        m.insert("newKeySealed".into(), json!(r.new_key.is_some()));
    }
    v
}

/// `ca status`'s text.
pub fn text(r: &Rotation, halt: Option<&str>) -> String {
    let cert = |pem: &str| {
        crate::pki::inspect::parse_cert_file(pem.as_bytes())
            .ok()
            .and_then(|v| v.into_iter().next())
            .map(|c| describe(&c))
            .unwrap_or_else(|| "unreadable".into())
    };
    let mut o = format!("CA rotation {} of {}\n", r.id, r.ca);
    let state = if r.phase.active() {
        format!(
            "{} ({} of {} nodes done)",
            r.phase,
            r.done.len(),
            r.nodes.len()
        )
    } else {
        r.phase.to_string()
    };
    o.push_str(&format!(
        "  Phase:      {state}, progress {:.0}%\n",
        r.progress() * 100.0
    ));
    o.push_str(&format!(
        "  Started:    {} by {}\n",
        r.started_at, r.started_by
    ));
    o.push_str(&format!("  Progressed: {}\n", r.updated_at));
    if let Some(a) = &r.aborted_by {
        o.push_str(&format!("  Aborted by: {a}\n"));
    }
    o.push_str(&format!("  Old CA:     {}\n", cert(&r.old_ca)));
    o.push_str(&format!("  New CA:     {}\n", cert(&r.new_ca)));
    if r.phase.active() {
        o.push_str(&format!(
            "\n  {:<24}STEP OF {}\n",
            "NODE",
            r.phase.name().to_uppercase()
        ));
        for n in &r.nodes {
            let s = match r.done.get(n) {
                Some(t) => format!("done at {t}"),
                None => "to do".into(),
            };
            o.push_str(&format!("  {n:<24}{s}\n"));
        }
    }
    if !r.history.is_empty() {
        o.push('\n');
        for h in &r.history {
            o.push_str(&format!("  {} completed at {}\n", h.phase, h.completed_at));
        }
    }
    match halt {
        Some(h) => o.push_str(&format!(
            "\n  Halt: {h}\n  resume with `kubeadm-certd cluster resume` once the cause is fixed\n"
        )),
        None => o.push_str("\n  Halt: none\n"),
    }
    o
}
