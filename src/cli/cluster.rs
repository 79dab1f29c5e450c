//! `cluster status` and `cluster resume`: what the HA coordination sees in etcd.

use super::args::{ClusterAction, Output};
use crate::cluster::settings::Mode;
use crate::cluster::{ClusterStatus, Coordinator};
use crate::context::Ctx;
use anyhow::{Context, Result};
use serde_json::json;

/// `cluster <action>`.
pub fn run(ctx: &Ctx, action: &ClusterAction) -> Result<()> {
    // A single node's rotation halt lives in its own record, not in etcd (issue 20).
    if matches!(action, ClusterAction::Resume) {
        if let Some(h) = crate::act::rotate::start::clear_local_halt(&ctx.paths)? {
            println!(
                "The CA rotation is halted: halted at {}: {}\nHalt cleared: the rotation goes on at the daemon's next cycle.",
                h.time, h.reason
            );
            return Ok(());
        }
    }
    // Whatever the mode, these commands talk to etcd.
    let mut s = ctx.settings.coordination.clone();
    let mode = s.mode;
    s.mode = Mode::Etcd;
    let coord =
        Coordinator::connect(&ctx.paths, &s)?.context("no etcd cluster to coordinate with")?;
    match action {
        ClusterAction::Status { output } => {
            let st = coord.status()?;
            // A rotation in progress (issue 20): one line, or a field in JSON.
            let rot = coord
                .rotation(crate::act::rotate::ETCD_CA)
                .ok()
                .flatten()
                .map(|(r, _)| r);
            match output {
                Output::Text => {
                    print!("{}", text(&st, mode));
                    println!("{}", rotation_line(rot.as_ref()));
                }
                Output::Json | Output::Yaml => {
                    let mut v = to_json(&st, mode);
                    v["caRotation"] = rot.as_ref().map_or(serde_json::Value::Null, |r| {
                        json!({"id": r.id, "ca": r.ca, "phase": r.phase, "nodes": r.nodes,
                               "done": r.done.keys().collect::<Vec<_>>(), "progress": r.progress()})
                    });
                    output.print_doc(&v)?
                }
            }
            Ok(())
        }
        ClusterAction::Resume => match coord.halt_record()? {
            None => {
                println!("No halt record: nothing to resume.");
                Ok(())
            }
            Some(h) => {
                println!("Restarts are halted: {h}");
                coord.clear_halt()?;
                tracing::info!(
                    MESSAGE_ID = crate::logging::MSG_HALT,
                    ACTION = "resume",
                    "halt record cleared by `cluster resume`: {h}"
                );
                println!("Halt record cleared: every node may restart again.");
                Ok(())
            }
        },
    }
}

fn rotation_line(r: Option<&crate::plan::rotation::Rotation>) -> String {
    match r {
        Some(r) if r.phase.active() => format!(
            "CA rotation: {} rotation {} in {} ({} of {} nodes done); see `kubeadm-certd ca status`",
            r.ca,
            r.id,
            r.phase,
            r.done.len(),
            r.nodes.len()
        ),
        Some(r) => format!("CA rotation: none in progress (the last, {}, is {})", r.id, r.phase),
        None => "CA rotation: none".into(),
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Auto => "auto",
        Mode::Etcd => "etcd",
        Mode::None => "none",
    }
}

fn text(st: &ClusterStatus, mode: Mode) -> String {
    let mut o = format!(
        "Coordination mode: {}\n\n{:<32}{:<27}HEALTH\n",
        mode_name(mode),
        "ETCD MEMBER",
        "CLIENT URL"
    );
    let leader = st
        .members
        .iter()
        .find_map(|h| h.status.as_ref().ok().map(|s| s.leader))
        .unwrap_or(0);
    for h in &st.members {
        let url = h.member.client_urls.first().cloned().unwrap_or_default();
        let health = match &h.status {
            Ok(s) => {
                let mut v = format!("healthy, v{}, raft index {}", s.version, s.raft_index);
                if h.member.id == leader {
                    v.push_str(", leader");
                }
                for e in &s.errors {
                    v.push_str(&format!(", {e}"));
                }
                v
            }
            Err(e) => format!("unhealthy: {e}"),
        };
        let name = if h.member.is_learner {
            format!("{} (learner)", h.member.label())
        } else {
            h.member.label()
        };
        o.push_str(&format!("{name:<32}{url:<27}{health}\n"));
    }
    o.push('\n');
    match st.queue.first() {
        None => o.push_str("Restart lock: free\n"),
        Some(h) => o.push_str(&format!(
            "Restart lock: held by {} since {}\n",
            h.node, h.since
        )),
    }
    for w in st.queue.iter().skip(1) {
        o.push_str(&format!("  waiting: {} since {}\n", w.node, w.since));
    }
    match &st.halt {
        None => o.push_str("Halt: none\n"),
        Some(h) => o.push_str(&format!(
            "Halt: {h}\n  resume with `kubeadm-certd cluster resume` once the cause is fixed\n"
        )),
    }
    o
}

fn to_json(st: &ClusterStatus, mode: Mode) -> serde_json::Value {
    let members: Vec<_> = st
        .members
        .iter()
        .map(|h| {
            let (healthy, status, error) = match &h.status {
                Ok(s) => (
                    true,
                    json!({"leader": format!("{:x}", s.leader), "raftIndex": s.raft_index,
                           "raftTerm": s.raft_term, "version": s.version, "errors": s.errors}),
                    None,
                ),
                Err(e) => (false, serde_json::Value::Null, Some(e.clone())),
            };
            json!({"id": format!("{:x}", h.member.id), "name": h.member.name,
                   "clientURLs": h.member.client_urls, "learner": h.member.is_learner,
                   "healthy": healthy, "status": status, "error": error})
        })
        .collect();
    json!({
        "mode": mode_name(mode),
        "members": members,
        "lock": {"holder": st.queue.first(), "waiters": st.queue.iter().skip(1).collect::<Vec<_>>()},
        "halt": st.halt,
    })
}
