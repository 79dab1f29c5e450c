//! `renew` and `install-signed`.

use crate::act::cancel::Cancel;
use crate::act::renew::Outcome;
use crate::cli::RenewArgs;
use crate::context::{cancel_on_signals, Ctx};
use crate::plan::guard::Hold;
use crate::plan::report::format::kubeadm_date;
use crate::plan::{self, Decision, Plan, Selection, Skip};
use anyhow::{bail, Result};
use std::path::Path;
use time::OffsetDateTime;

/// Parse `all`, `due` or names.
pub fn selection(targets: &[String]) -> Result<Selection> {
    match targets {
        [one] if one == "all" => Ok(Selection::All),
        [one] if one == "due" => Ok(Selection::Due),
        _ if targets.iter().any(|t| t == "all" || t == "due") => {
            bail!("`all` and `due` cannot be combined with other names")
        }
        _ => Ok(Selection::Names(targets.to_vec())),
    }
}

fn known_names() -> String {
    crate::pki::table::HANDLERS
        .iter()
        .map(|h| h.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kubeadm-style line for one plan item (None for items that say nothing).
fn item_line(i: &plan::Item, now: OffsetDateTime) -> Option<String> {
    let h = i.handler;
    Some(match &i.decision {
        Decision::Renew { .. } => format!("{} renewed", h.long_name),
        Decision::Skip(Skip::Missing) => format!("MISSING! {}", h.long_name),
        Decision::Skip(Skip::ExternalCa(ca)) => format!(
            "Detected external {}, {} can't be renewed",
            ca.name(),
            h.long_name
        ),
        Decision::Skip(Skip::Excluded) => {
            format!("{} is excluded in the config; not renewed", h.name)
        }
        Decision::Skip(Skip::NotSignedByCa(ca)) => format!(
            "{} is not signed by {} (a user-provided certificate); never overwritten",
            h.name,
            ca.name()
        ),
        Decision::Skip(Skip::NotDue) => {
            let left = i.old_not_after.map(|t| {
                crate::plan::report::format::short_human_duration((t - now).whole_seconds())
            });
            format!(
                "{} is not due for renewal ({} left)",
                h.name,
                left.unwrap_or_default()
            )
        }
        Decision::Skip(Skip::Held(Hold::NoGain { ca, ca_not_after })) => format!(
            "{} is blocked by CA runway: the {} CA ends at {}, so renewing gains nothing; not renewed (name it to force a renewal anyway)",
            h.name,
            ca.name(),
            kubeadm_date(*ca_not_after)
        ),
        Decision::Skip(Skip::Held(Hold::RecentlyRenewed { at })) => format!(
            "{} was renewed by the daemon at {}; not renewed again within a day",
            h.name,
            kubeadm_date(*at)
        ),
        Decision::Refuse(_) => return None,
    })
}

/// Named certificates are renewed even when that gains nothing (issue 12); say why: the CA's
/// end clamps the new NotAfter (then the date is the CA's), or the certificate already ends
/// about as late as a renewal now would (renewed recently: then the dates are its own and the
/// CA has nothing to do with it).
fn no_gain_notes(plan: &Plan, scan: &crate::plan::scan::Scan, check_interval: std::time::Duration) {
    let within = crate::logging::human_duration(check_interval);
    for i in &plan.items {
        let (
            Decision::Renew {
                new_not_after,
                clamped,
            },
            Some(old),
        ) = (&i.decision, i.old_not_after)
        else {
            continue;
        };
        if crate::plan::guard::gains(old, *new_not_after, check_interval) {
            continue;
        }
        let (name, ca) = (i.handler.name, i.handler.ca);
        let ca_end = scan
            .ca(ca)
            .and_then(|c| c.cert.as_ref())
            .map(|c| c.not_after);
        match ca_end.filter(|_| *clamped) {
            Some(end) => println!(
                "note: renewing {name} gains nothing: its CA ends at {}, which clamps the new NotAfter to within {within} of the current one; renewing anyway because it was asked for. Rotate the {} CA",
                kubeadm_date(end),
                ca.name()
            ),
            None => println!(
                "note: renewing {name} gains nothing: it ends at {} and a renewal now would end at {}, not {within} or more later (it was renewed recently, or with a longer validity); renewing anyway because it was asked for",
                kubeadm_date(old),
                kubeadm_date(*new_not_after)
            ),
        }
    }
}

fn print_dry_run(plan: &Plan, now: OffsetDateTime, restarts: &[String]) {
    println!("Plan (dry run; nothing is changed):");
    for i in &plan.items {
        let old = i
            .old_not_after
            .map(kubeadm_date)
            .unwrap_or_else(|| "-".into());
        match &i.decision {
            Decision::Renew {
                new_not_after,
                clamped,
            } => println!(
                "  renew   {:<25} {} -> {}{}",
                i.handler.name,
                old,
                kubeadm_date(*new_not_after),
                if *clamped {
                    " (clamped to the CA's NotAfter)"
                } else {
                    ""
                }
            ),
            Decision::Refuse(why) => println!("  refuse  {:<25} {why}", i.handler.name),
            _ => println!(
                "  skip    {:<25} {}",
                i.handler.name,
                item_line(i, now).unwrap_or_default()
            ),
        }
    }
    println!(
        "Static pods that would restart: {}",
        if restarts.is_empty() {
            "none".into()
        } else {
            restarts.join(", ")
        }
    );
}

/// `renew`.
pub fn run(ctx: &Ctx, args: &RenewArgs, now: OffsetDateTime) -> Result<()> {
    let sel = selection(&args.targets)?;
    let cancel = cancel_on_signals();
    let _lock = if args.dry_run {
        None
    } else {
        Some(ctx.lock_and_recover("renew", &cancel)?)
    };
    // The cluster's validity, key algorithm and certificatesDir where the config sets none
    // (issue 18): read live with a short bound, else the copy kept in the state dir.
    let (ctx, _) = super::cluster_config::for_command(ctx, &cancel, !args.dry_run);
    let ctx = &ctx;
    let scan = crate::plan::scan::scan(&ctx.paths);
    let plan = plan::plan(&scan, &sel, &ctx.settings, now);
    if !plan.unknown.is_empty() {
        bail!(
            "unknown certificate name(s) {}; known: {}",
            plan.unknown.join(", "),
            known_names()
        );
    }
    if args.csr_only {
        let dir = args
            .csr_dir
            .clone()
            .unwrap_or_else(|| ctx.paths.pki.clone());
        let names: Vec<String> = plan
            .items
            .iter()
            .filter(|i| !matches!(i.decision, Decision::Skip(Skip::NotDue)))
            .map(|i| i.handler.name.to_string())
            .collect();
        let out = crate::act::csr::write_csrs(
            &ctx.paths,
            &scan,
            &names,
            &dir,
            ctx.settings.encryption_algorithm,
        )?;
        for m in &out.missing {
            println!("MISSING! {m}");
        }
        for p in &out.written {
            println!("CSR written to {}", p.display());
        }
        return Ok(());
    }
    let restarts = crate::plan::restarts::for_plan(&ctx.paths, &plan);
    no_gain_notes(&plan, &scan, ctx.settings.check_interval);
    if args.dry_run {
        print_dry_run(&plan, now, &restarts);
        println!("Renewing with:");
        for l in crate::plan::cluster_inputs::describe(&ctx.settings) {
            println!("  {l}");
        }
        return refusals(&plan);
    }
    // All or nothing: a refused certificate stops the whole command before anything is
    // written, so bad input leaves the node as it was.
    refusals(&plan)?;
    let owe = !args.no_restart && ctx.settings.restart.enabled;
    let outcome = crate::act::renew::apply(&ctx.paths, &scan, &plan, &ctx.settings, now, owe)?;
    for i in &plan.items {
        if let Some(l) = item_line(i, now) {
            println!("{l}");
        }
    }
    report_outcome(ctx, &outcome, &restarts, args.no_restart, &cancel)?;
    refusals(&plan)
}

fn refusals(plan: &Plan) -> Result<()> {
    let why: Vec<&str> = plan
        .items
        .iter()
        .filter_map(|i| match &i.decision {
            Decision::Refuse(w) => Some(w.as_str()),
            _ => None,
        })
        .collect();
    if why.is_empty() {
        Ok(())
    } else {
        bail!("{}", why.join("\n"))
    }
}

fn report_outcome(
    ctx: &Ctx,
    outcome: &Outcome,
    restarts: &[String],
    no_restart: bool,
    cancel: &Cancel,
) -> Result<()> {
    if outcome.renewed.is_empty() {
        return Ok(());
    }
    if let Some(d) = &outcome.backup_dir {
        println!("\nThe previous files are saved in {}", ctx.paths.show(d));
    }
    if restarts.is_empty() {
        println!("No static pod uses the renewed files; nothing to restart.");
    } else if no_restart || !ctx.settings.restart.enabled {
        println!(
            "Not restarting. Restart these static pods so that they load the new certificates: {}",
            restarts.join(", ")
        );
    } else {
        println!(
            "Restarting static pods so that they load the new certificates: {}",
            restarts.join(", ")
        );
        let progress = super::lock_wait_printer();
        let seq = crate::act::restart::restart_after(
            &ctx.paths,
            &ctx.settings,
            Some(outcome),
            restarts,
            cancel,
            &crate::context::now,
            &progress,
        )?;
        super::restart::report_sequence(restarts, seq)?;
        println!("Restarted {}; each came back healthy.", restarts.join(", "));
    }
    Ok(())
}

/// `install-signed`.
pub fn install_signed(
    ctx: &Ctx,
    dir: &Path,
    names: &[String],
    no_restart: bool,
    now: OffsetDateTime,
) -> Result<()> {
    let cancel = cancel_on_signals();
    let _lock = ctx.lock_and_recover("install-signed", &cancel)?;
    let scan = crate::plan::scan::scan(&ctx.paths);
    let names = if names.is_empty() {
        crate::act::csr::signed_names(&scan, dir)
    } else {
        names.to_vec()
    };
    if names.is_empty() {
        bail!("{}: no signed <name>.crt found", dir.display());
    }
    let owe = !no_restart && ctx.settings.restart.enabled;
    let outcome = crate::act::csr::install(&ctx.paths, &scan, &names, dir, now, owe)?;
    for r in &outcome.renewed {
        println!(
            "{} installed, valid until {}",
            r.handler.long_name,
            kubeadm_date(r.new_not_after)
        );
    }
    let renamed: Vec<(&crate::pki::table::Handler, Vec<String>)> = outcome
        .renewed
        .iter()
        .map(|r| (r.handler, r.files.clone()))
        .collect();
    let restarts = crate::plan::restarts::for_changes(&ctx.paths, &renamed);
    report_outcome(ctx, &outcome, &restarts, no_restart, &cancel)
}
