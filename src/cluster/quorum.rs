//! The quorum guard before the local etcd member is restarted, as a pure decision over the
//! members' statuses, and the catch-up check after it is back.

use super::client::{MemberHealth, Pool};
use std::time::Duration;

/// May the local member be restarted now?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every other voting member answers, they agree on the leader, no alarm is active and
    /// quorum holds without this member.
    Allow,
    /// Not now: the etcd restart stays owed.
    Defer(Deferral),
}

/// Why the etcd restart was deferred.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("etcd restart deferred: {reason}")]
pub struct Deferral {
    /// Members that did not answer or reported a problem (names).
    pub unhealthy: Vec<String>,
    /// One line for humans.
    pub reason: String,
}

/// The guard. `local` tells which entry is this node's member (matched by client URL or
/// name); a learner is never counted.
pub fn decide(members: &[MemberHealth], is_local: &dyn Fn(&MemberHealth) -> bool) -> Verdict {
    let voting: Vec<&MemberHealth> = members.iter().filter(|h| !h.member.is_learner).collect();
    let others: Vec<&MemberHealth> = voting.iter().copied().filter(|h| !is_local(h)).collect();
    let defer =
        |unhealthy: Vec<String>, reason: String| Verdict::Defer(Deferral { unhealthy, reason });
    if voting.is_empty() {
        return defer(Vec::new(), "no voting member is known".into());
    }
    let down: Vec<String> = others
        .iter()
        .filter(|h| h.status.is_err())
        .map(|h| h.member.label())
        .collect();
    if !down.is_empty() {
        return defer(
            down.clone(),
            format!("member(s) not answering: {}", down.join(", ")),
        );
    }
    let alarmed: Vec<String> = voting
        .iter()
        .filter(|h| h.status.as_ref().is_ok_and(|s| !s.errors.is_empty()))
        .map(|h| h.member.label())
        .collect();
    if !alarmed.is_empty() {
        let detail: Vec<String> = voting
            .iter()
            .filter_map(|h| h.status.as_ref().ok().map(|s| (h, s)))
            .flat_map(|(h, s)| {
                s.errors
                    .iter()
                    .map(move |e| format!("{}: {e}", h.member.label()))
            })
            .collect();
        return defer(
            alarmed,
            format!("alarm or error active: {}", detail.join("; ")),
        );
    }
    let leaders: Vec<u64> = voting
        .iter()
        .filter_map(|h| h.status.as_ref().ok().map(|s| s.leader))
        .collect();
    let first = leaders.first().copied().unwrap_or(0);
    if first == 0 || leaders.iter().any(|l| *l != first) {
        let odd: Vec<String> = voting
            .iter()
            .filter(|h| {
                h.status
                    .as_ref()
                    .is_ok_and(|s| s.leader == 0 || s.leader != first)
            })
            .map(|h| h.member.label())
            .collect();
        return defer(odd, "the members do not agree on a leader".into());
    }
    let quorum = voting.len() / 2 + 1;
    if others.len() < quorum {
        return defer(
            Vec::new(),
            format!(
                "{} voting member(s) cannot keep quorum ({quorum}) while this one restarts",
                voting.len()
            ),
        );
    }
    Verdict::Allow
}

/// Whether `h` is the local member: one of its client URLs is ours, or its name is.
pub fn matches_local(h: &MemberHealth, urls: &[String], name: Option<&str>) -> bool {
    h.member.client_urls.iter().any(|u| urls.contains(u))
        || name.is_some_and(|n| !n.is_empty() && h.member.name == n)
}

/// After the restart: has the local member caught up? It must answer Status, and its raft
/// index must have reached the leader's index read just before it.
pub async fn caught_up(
    pool: &Pool,
    is_local: &(dyn Fn(&MemberHealth) -> bool + Sync),
) -> Result<(), String> {
    let members = pool.refresh_members().await.map_err(|e| e.0)?;
    let opts = pool.options().map_err(|e| format!("{e:#}"))?;
    let local = members
        .iter()
        .find(|m| {
            is_local(&MemberHealth {
                member: (*m).clone(),
                status: Err(String::new()),
            })
        })
        .ok_or("the local member is not in the member list")?;
    // Ask the leader (through any other member's view) first, then the local member.
    let others: Vec<_> = members
        .iter()
        .filter(|m| m.id != local.id)
        .cloned()
        .collect();
    let mut target = None;
    for h in super::client::health(&others, &opts).await {
        if let Ok(s) = h.status {
            if s.leader != 0 {
                let leader = members.iter().find(|m| m.id == s.leader).cloned();
                target = match leader {
                    Some(l) if l.id == h.member.id => Some(s.raft_index),
                    Some(l) => super::client::status(&l, &opts)
                        .await
                        .ok()
                        .map(|s| s.raft_index),
                    None => None,
                };
                break;
            }
        }
    }
    let mine = super::client::status(local, &opts).await?;
    match target {
        // The local member may itself be the leader again.
        None if mine.leader == local.id => Ok(()),
        None => Err("no leader known to compare with".into()),
        Some(t) if mine.raft_index >= t => Ok(()),
        Some(t) => Err(format!(
            "raft index {} behind the leader's {t}",
            mine.raft_index
        )),
    }
}

/// How often the catch-up is polled.
pub const CATCH_UP_POLL: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::client::{Member, Status};

    fn m(id: u64, status: Result<(u64, &[&str]), &str>) -> MemberHealth {
        MemberHealth {
            member: Member {
                id,
                name: format!("cp{id}"),
                client_urls: vec![format!("https://127.0.0.1{id}:2379")],
                is_learner: false,
            },
            status: status
                .map(|(leader, errs)| Status {
                    leader,
                    raft_index: 10,
                    raft_term: 2,
                    version: "3.4.23".into(),
                    errors: errs.iter().map(|s| s.to_string()).collect(),
                })
                .map_err(String::from),
        }
    }
    fn local1(h: &MemberHealth) -> bool {
        h.member.id == 1
    }

    #[test]
    fn healthy_three_allows() {
        let ms = [m(1, Ok((2, &[]))), m(2, Ok((2, &[]))), m(3, Ok((2, &[])))];
        assert_eq!(decide(&ms, &local1), Verdict::Allow);
    }

    #[test]
    fn local_member_down_still_allows() {
        // Restarting an already stopped local member loses nothing.
        let ms = [m(1, Err("refused")), m(2, Ok((2, &[]))), m(3, Ok((2, &[])))];
        assert_eq!(decide(&ms, &local1), Verdict::Allow);
    }

    #[test]
    fn other_member_down_defers_naming_it() {
        let ms = [m(1, Ok((2, &[]))), m(2, Ok((2, &[]))), m(3, Err("refused"))];
        match decide(&ms, &local1) {
            Verdict::Defer(d) => {
                assert_eq!(d.unhealthy, vec!["cp3".to_string()]);
                assert!(d.reason.contains("cp3"), "{}", d.reason);
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn alarm_defers() {
        let ms = [
            m(1, Ok((2, &[]))),
            m(2, Ok((2, &["alarm Nospace"]))),
            m(3, Ok((2, &[]))),
        ];
        assert!(matches!(decide(&ms, &local1), Verdict::Defer(d) if d.unhealthy == ["cp2"]));
    }

    #[test]
    fn leader_disagreement_defers() {
        let ms = [m(1, Ok((2, &[]))), m(2, Ok((2, &[]))), m(3, Ok((3, &[])))];
        assert!(matches!(decide(&ms, &local1), Verdict::Defer(_)));
        let ms = [m(1, Ok((0, &[]))), m(2, Ok((0, &[]))), m(3, Ok((0, &[])))];
        assert!(matches!(decide(&ms, &local1), Verdict::Defer(_)));
    }

    #[test]
    fn two_members_cannot_lose_one() {
        let ms = [m(1, Ok((2, &[]))), m(2, Ok((2, &[])))];
        assert!(matches!(decide(&ms, &local1), Verdict::Defer(d) if d.reason.contains("quorum")));
    }

    #[test]
    fn learners_do_not_count() {
        let mut l = m(4, Err("learner down"));
        l.member.is_learner = true;
        let ms = [
            m(1, Ok((2, &[]))),
            m(2, Ok((2, &[]))),
            m(3, Ok((2, &[]))),
            l,
        ];
        assert_eq!(decide(&ms, &local1), Verdict::Allow);
    }
}
