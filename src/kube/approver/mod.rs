//! The approver: list the kubelet-serving CSRs, then watch them (`fieldSelector=
//! spec.signerName=kubernetes.io/kubelet-serving`), and decide every pending one with the
//! rules (`plan::approve`). A 410 lists again; a watch the server closes is reopened from the
//! last resourceVersion; errors back off (bounded) and an unreachable API is one standing
//! condition, not a log line per retry. Every control-plane daemon may run it at once:
//! writes carry the resourceVersion read, and a CSR someone else decided is not an error.
//!
//! It is one tokio task on the daemon's current-thread runtime; it owns nothing the cycle
//! needs, so renewals and restarts never wait for it.

pub mod decide;
pub mod facts;

pub use facts::{gather, Env, Facts, HostFn};

use crate::kube::client::{pause, Backoff, Csr, Kube, KUBELET_SERVING};
use crate::kube::stats::Shared;
use crate::kube::views::{csr_view, is_pending};
use crate::kube::KubeError;
use crate::logging;
use crate::plan::approve as rules;
use decide::{approve_message, deny_message, failure_line, write, Kind, Written};
use futures::StreamExt;
use kube::api::WatchEvent;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// The server ends each watch after this (the real apiserver caps it at 5-10 min anyway).
const WATCH_TIMEOUT_SECS: u32 = 290;
/// A watch with no event (not even a bookmark) for this long is presumed dead and reopened.
const WATCH_IDLE: Duration = Duration::from_secs(330);
/// Pending CSRs that failed a rule are looked at again this often (their Node may have
/// registered since; a write that failed is retried).
const RECHECK: Duration = Duration::from_secs(30);
/// A watch that ends sooner than this without an event did not really work (a proxy that
/// closes at once, a server answering garbage): the next attempt waits its backoff, so that
/// the approver never spins on list and watch.
const WATCH_HEALTHY: Duration = Duration::from_secs(10);

/// The approver's state between events.
struct Approver {
    kube: Kube,
    env: Env,
    stats: Shared,
    /// This node's name, for the messages written on CSRs.
    by: String,
    /// Pending kubelet-serving CSRs, by name.
    pending: BTreeMap<String, Csr>,
    /// What was last logged about a CSR, so that each outcome is logged once.
    reported: HashMap<String, String>,
    /// Whether the flood guard is holding (warned once per spell).
    flooded: bool,
    /// UIDs of the CSRs this approver decided. Conditions are never removed, so a later
    /// event showing one of them pending is older than our own write (the watch lagging
    /// behind it): deciding it again would only earn a 409.
    decided: HashSet<String>,
}

/// Run the approver until the task is dropped or a stop is requested.
pub async fn run(kube: Kube, env: Env, stats: Shared) {
    let by = env.node.clone().unwrap_or_else(|| "this node".into());
    stats.lock().approver_on = true;
    let mut a = Approver {
        kube,
        env,
        stats,
        by,
        pending: BTreeMap::new(),
        reported: HashMap::new(),
        flooded: false,
        decided: HashSet::new(),
    };
    // Reset only by a watch that worked (see `watch`): a list that succeeds while every
    // watch fails must not bring the retries back to full speed.
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut listed = false;
    while !a.kube.cancel().is_cancelled() {
        let list = a.kube.list_csrs().await;
        a.stats.note(a.kube.url(), &list);
        let list = match list {
            Ok(l) => l,
            Err(KubeError::Cancelled) => return,
            Err(e) => {
                a.problem("list", &e);
                if !pause(backoff.next_delay(), a.kube.cancel()).await {
                    return;
                }
                continue;
            }
        };
        if !std::mem::replace(&mut listed, true) {
            tracing::info!(
                MESSAGE_ID = logging::MSG_APPROVER_STATE,
                ACTION = "csr-approve",
                "approving kubelet serving CSRs through {}: {} now, watching for new ones",
                a.kube.url(),
                list.items.len()
            );
        }
        a.pending.clear();
        let uids: HashSet<String> = list
            .items
            .iter()
            .filter_map(|c| c.metadata.uid.clone())
            .collect();
        a.decided.retain(|u| uids.contains(u));
        for c in list.items {
            a.upsert(c);
        }
        a.pass(None).await;
        let rv = list.metadata.resource_version.unwrap_or_default();
        if !a.watch(rv, &mut backoff).await {
            return;
        }
    }
}

impl Approver {
    /// Watch from `rv`, reopening the watch whenever the server closes it. Returns true to
    /// list again (410, an error), false when stopped.
    async fn watch(&mut self, mut rv: String, backoff: &mut Backoff) -> bool {
        loop {
            let opened = tokio::time::Instant::now();
            let mut events = 0usize;
            let stream = self.kube.watch_csrs(&rv, WATCH_TIMEOUT_SECS).await;
            self.stats.note(self.kube.url(), &stream);
            let stream = match stream {
                Ok(s) => s,
                Err(KubeError::Cancelled) => return false,
                Err(e) => {
                    if !e.gone() {
                        self.problem("watch", &e);
                        if !pause(backoff.next_delay(), self.kube.cancel()).await {
                            return false;
                        }
                    }
                    return true;
                }
            };
            let mut stream = std::pin::pin!(stream);
            // Only while CSRs are pending: an idle approver sleeps until the watch delivers.
            let mut recheck = tokio::time::interval(RECHECK);
            recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            recheck.tick().await;
            loop {
                tokio::select! {
                    ev = tokio::time::timeout(WATCH_IDLE, stream.next()) => match ev {
                        // Idle too long, or ended by the server: at its timeoutSeconds, or
                        // because it went away (kube-client ends the stream without an
                        // error when the connection closes). Reopen from rv.
                        Err(_) | Ok(None) => break,
                        Ok(Some(Ok(ev))) => { events += 1; self.kube.touched(); match ev {
                            WatchEvent::Added(c) | WatchEvent::Modified(c) => {
                                rv = c.metadata.resource_version.clone().unwrap_or(rv);
                                let name = c.metadata.name.clone().unwrap_or_default();
                                if self.upsert(c) {
                                    self.pass(Some(&name)).await;
                                } else {
                                    self.publish();
                                }
                            }
                            WatchEvent::Deleted(c) => {
                                rv = c.metadata.resource_version.clone().unwrap_or(rv);
                                if let Some(uid) = &c.metadata.uid {
                                    self.decided.remove(uid);
                                }
                                let name = c.metadata.name.unwrap_or_default();
                                self.pending.remove(&name);
                                self.reported.remove(&name);
                                self.publish();
                            }
                            WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                            // 410 Gone (or any error event): list again.
                            WatchEvent::Error(s) => {
                                tracing::debug!("watch of kubelet-serving CSRs ended: HTTP {} {}", s.code, s.message);
                                return self.pause_unless_healthy(opened, events - 1, backoff).await;
                            }
                        }},
                        Ok(Some(Err(e))) => {
                            let e = KubeError::from_kube(e, "watching kubelet-serving CSRs", self.kube.url());
                            tracing::debug!("{e}");
                            return self.pause_unless_healthy(opened, events, backoff).await;
                        }
                    },
                    _ = recheck.tick(), if !self.pending.is_empty() => self.pass(None).await,
                    _ = self.kube.cancel().stopped() => return false,
                }
                if self.kube.cancel().is_cancelled() {
                    return false;
                }
            }
            if !self.pause_unless_healthy(opened, events, backoff).await {
                return false;
            }
        }
    }

    /// After a watch ended: reset the backoff when it worked (it delivered an event or
    /// lasted [`WATCH_HEALTHY`]), else wait the next delay. False when stopped meanwhile.
    async fn pause_unless_healthy(
        &self,
        opened: tokio::time::Instant,
        events: usize,
        backoff: &mut Backoff,
    ) -> bool {
        if events > 0 || opened.elapsed() >= WATCH_HEALTHY {
            backoff.reset();
            return true;
        }
        pause(backoff.next_delay(), self.kube.cancel()).await
    }

    /// Take in a CSR from a list or an event; true when it is pending (worth deciding).
    fn upsert(&mut self, c: Csr) -> bool {
        let name = c.metadata.name.clone().unwrap_or_default();
        let ours = c
            .metadata
            .uid
            .as_ref()
            .is_some_and(|u| self.decided.contains(u));
        if c.spec.signer_name != KUBELET_SERVING || !is_pending(&csr_view(&c)) || ours {
            self.pending.remove(&name);
            self.reported.remove(&name);
            return false;
        }
        self.pending.insert(name, c);
        true
    }

    /// Publish the pending CSRs (for the pending-too-long gauge).
    fn publish(&self) {
        let p = self
            .pending
            .iter()
            .map(|(n, c)| (n.clone(), csr_view(c).created))
            .collect();
        self.stats.lock().pending = p;
    }

    /// Decide the pending CSRs (or only `only`), with one gathering of the facts.
    async fn pass(&mut self, only: Option<&str>) {
        self.publish();
        if self.pending.is_empty() {
            return;
        }
        let facts = gather(&self.kube, &self.env).await;
        self.stats.note(self.kube.url(), &facts);
        let facts = match facts {
            Ok(f) => f,
            Err(e) => return self.problem("facts", &e),
        };
        if rules::flood(self.pending.len(), facts.nodes.len()) {
            if !self.flooded {
                tracing::warn!(
                    MESSAGE_ID = logging::MSG_CSR_FLOOD,
                    ACTION = "csr-approve",
                    "{} kubelet serving CSRs are pending, more than 100 + the {} Nodes: approving none until fewer are pending (a flood of CSRs is an attack or a broken kubelet; look at `kubeadm-certd csr list`)",
                    self.pending.len(),
                    facts.nodes.len()
                );
                self.flooded = true;
            }
            return;
        }
        // The end of a flood decides every pending CSR, not only the one that arrived.
        let ended = std::mem::take(&mut self.flooded);
        if ended {
            tracing::info!(
                MESSAGE_ID = logging::MSG_CSR_FLOOD,
                ACTION = "csr-approve",
                "{} kubelet serving CSRs pending, within 100 + the Nodes again: approving resumes",
                self.pending.len()
            );
        }
        let names: Vec<String> = match only {
            Some(n) if !ended => vec![n.to_string()],
            _ => self.pending.keys().cloned().collect(),
        };
        for name in names {
            if let Some(c) = self.pending.get(&name).cloned() {
                self.decide(&c, &facts).await;
            }
        }
        self.publish();
    }

    /// Decide one CSR and carry the verdict out; each outcome is logged once.
    async fn decide(&mut self, csr: &Csr, facts: &Facts) {
        let v = csr_view(csr);
        let verdict = rules::evaluate(
            &v,
            &facts.nodes,
            &facts.api,
            facts.host.as_ref(),
            &self.env.policy,
        );
        let node = v
            .username
            .strip_prefix("system:node:")
            .unwrap_or(&v.username)
            .to_string();
        let name = v.name.clone();
        // Approvable only when (a)-(g) pass and (h) passes or does not apply; a rule that
        // could not be judged counts as the failure it stands for.
        let failure = if verdict.approvable() {
            None
        } else {
            Some(verdict.first_failure().map_or_else(
                || (rules::Rule::Attested, verdict.summary()),
                |(r, val)| (r, val.to_string()),
            ))
        };
        let (kind, message) = match &failure {
            None => (Kind::Approve, approve_message(&verdict, &self.by)),
            Some((rule, val)) if self.env.deny => (Kind::Deny, deny_message(*rule, val, &self.by)),
            Some((rule, val)) => {
                let line = failure_line(*rule, val);
                if self.reported.get(&name) != Some(&line) {
                    tracing::warn!(
                        MESSAGE_ID = logging::MSG_CSR_LEFT_PENDING,
                        ACTION = "csr-approve",
                        CSR = name.as_str(),
                        NODE = node.as_str(),
                        RESULT = "left-pending",
                        "left kubelet serving CSR {name} of node {node} pending: {line} (approver.deny is false, so another approver or `kubectl certificate approve` may still decide it)"
                    );
                    self.stats.not_approved(&rule.to_string(), "left_pending");
                    self.reported.insert(name, line);
                }
                return;
            }
        };
        let now = self.env.now;
        let r = write(&self.kube, csr, kind, &message, &now).await;
        self.stats.note(self.kube.url(), &r);
        match r {
            Ok(Written::Done) => {
                if let Some(uid) = &csr.metadata.uid {
                    self.decided.insert(uid.clone());
                }
                match &failure {
                    None => {
                        tracing::info!(
                            MESSAGE_ID = logging::MSG_CSR_APPROVED,
                            ACTION = "csr-approve",
                            CSR = name.as_str(),
                            NODE = node.as_str(),
                            RESULT = "approved",
                            "approved kubelet serving CSR {name} of node {node}: every check passed"
                        );
                        self.stats.lock().approved += 1;
                    }
                    Some((rule, val)) => {
                        tracing::warn!(
                            MESSAGE_ID = logging::MSG_CSR_DENIED,
                            ACTION = "csr-approve",
                            CSR = name.as_str(),
                            NODE = node.as_str(),
                            RESULT = "denied",
                            "denied kubelet serving CSR {name} of node {node}: {}",
                            failure_line(*rule, val)
                        );
                        self.stats.not_approved(&rule.to_string(), "denied");
                    }
                }
                self.forget(&name);
            }
            Ok(Written::AlreadyDecided(state)) => {
                tracing::debug!("CSR {name} was decided elsewhere first ({state})");
                if let Some(uid) = &csr.metadata.uid {
                    self.decided.insert(uid.clone());
                }
                self.forget(&name);
            }
            Ok(Written::Gone) => self.forget(&name),
            Err(e) => self.problem(&format!("write:{name}"), &e),
        }
    }

    fn forget(&mut self, name: &str) {
        self.pending.remove(name);
        self.reported.remove(name);
        self.reported.remove(&format!("problem:write:{name}"));
    }

    /// An error other than "unreachable" (that one is the shared standing condition): logged
    /// once per key and text.
    fn problem(&mut self, key: &str, e: &KubeError) {
        if e.unreachable() || matches!(e, KubeError::Cancelled) {
            return;
        }
        let text = e.to_string();
        let key = format!("problem:{key}");
        if self.reported.get(&key) != Some(&text) {
            tracing::error!(
                MESSAGE_ID = logging::MSG_APPROVER_FAILED,
                ACTION = "csr-approve",
                "{text}"
            );
            self.reported.insert(key, text);
        }
    }
}
