//! What the Kubernetes side counts, shared (`Arc<Mutex<_>>`) between its tasks and the
//! daemon's metrics textfile, which the cycle renders on its own thread. Also the "API
//! unreachable" standing condition: logged once when it starts, once when it ends, never per
//! retry.

use crate::logging;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use time::OffsetDateTime;

/// The numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Whether the last call reached the API; `None` before the first call.
    pub reachable: Option<bool>,
    /// Whether the approver runs (its counters are exported only then).
    pub approver_on: bool,
    /// CSRs approved.
    pub approved: u64,
    /// CSRs not approved, by (rule label, action): action `denied` or `left_pending`.
    pub denied: BTreeMap<(String, String), u64>,
    /// Pending kubelet-serving CSRs and when each was created.
    pub pending: BTreeMap<String, Option<OffsetDateTime>>,
    /// `serverTLSBootstrap` waiting to be set in the kubelet-config ConfigMap, if any.
    pub configmap: Option<bool>,
    /// The ConfigMap value already said to be pending: a task restarted with a new client
    /// (a renewed admin.conf, a reload) does not say it again.
    pub configmap_said: Option<bool>,
}

/// What waits for the API while it does not answer, for the one line that says so: only
/// what runs (the approver when on, the kubelet-config ConfigMap when a value is pending), and
/// always the read of the ClusterConfiguration (every task that notes reachability runs
/// beside it).
pub fn waiting(s: &Stats) -> String {
    let mut w = Vec::new();
    if s.approver_on {
        w.push("approving kubelet serving CSRs".to_string());
    }
    if let Some(v) = s.configmap {
        w.push(format!(
            "serverTLSBootstrap: {v} in the cluster's kubelet-config ConfigMap"
        ));
    }
    w.push(
        "reading the cluster's ClusterConfiguration (renewals use the copy kept in the state dir, if any)"
            .into(),
    );
    match w.split_last() {
        Some((last, [])) => format!("{last} waits"),
        Some((last, rest)) => format!("{} and {last} wait", rest.join(", ")),
        None => String::new(),
    }
}

/// A cloneable handle on the shared numbers.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<Mutex<Stats>>);

impl Shared {
    /// The numbers, for reading or updating (a poisoned lock still holds usable counters).
    pub fn lock(&self) -> MutexGuard<'_, Stats> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the numbers now.
    pub fn snapshot(&self) -> Stats {
        self.lock().clone()
    }

    /// A call reached the API: logs the end of an unreachable spell, once.
    pub fn reached(&self, url: &str) {
        let was = self.lock().reachable.replace(true);
        if was == Some(false) {
            tracing::info!(
                MESSAGE_ID = logging::MSG_API_REACHABLE,
                ACTION = "kube-api",
                "the API server at {url} answers again"
            );
        }
    }

    /// A call found the API unreachable (`why`): logged once per spell, with what waits.
    pub fn unreachable(&self, why: &str) {
        let (was, waits) = {
            let mut s = self.lock();
            (s.reachable.replace(false), waiting(&s))
        };
        if was != Some(false) {
            tracing::warn!(
                MESSAGE_ID = logging::MSG_API_UNREACHABLE,
                ACTION = "kube-api",
                "{why}; {waits} for it (retrying quietly); renewals and restarts go on without it"
            );
        }
    }

    /// Note the outcome of a call: reachable unless it could not connect or timed out.
    pub fn note<T>(&self, url: &str, r: &Result<T, super::KubeError>) {
        match r {
            Err(e) if e.unreachable() => self.unreachable(&e.to_string()),
            Err(super::KubeError::Cancelled) => {}
            _ => self.reached(url),
        }
    }

    /// Count one CSR not approved because of `rule`, with `action` (`denied`, `left_pending`).
    pub fn not_approved(&self, rule: &str, action: &str) {
        *self
            .lock()
            .denied
            .entry((rule.to_string(), action.to_string()))
            .or_default() += 1;
    }
}

/// Pending CSRs created more than `age` before `now`.
pub fn pending_older_than(s: &Stats, now: OffsetDateTime, age: time::Duration) -> usize {
    s.pending
        .values()
        .filter(|c| c.is_some_and(|c| now - c > age))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachability_transitions_and_counts() {
        let s = Shared::default();
        assert_eq!(s.snapshot().reachable, None);
        s.unreachable("down");
        s.unreachable("down");
        assert_eq!(s.snapshot().reachable, Some(false));
        s.reached("u");
        assert_eq!(s.snapshot().reachable, Some(true));
        s.not_approved("ip-sans", "left_pending");
        s.not_approved("ip-sans", "left_pending");
        assert_eq!(
            s.snapshot().denied[&("ip-sans".into(), "left_pending".into())],
            2
        );
        let now = time::macros::datetime!(2026-12-01 10:00 UTC);
        s.lock()
            .pending
            .insert("a".into(), Some(now - time::Duration::minutes(6)));
        s.lock()
            .pending
            .insert("b".into(), Some(now - time::Duration::minutes(1)));
        s.lock().pending.insert("c".into(), None);
        assert_eq!(
            pending_older_than(&s.snapshot(), now, time::Duration::minutes(5)),
            1
        );
    }

    #[test]
    fn the_unreachable_line_names_only_what_waits() {
        let mut s = Stats::default();
        let read = "reading the cluster's ClusterConfiguration (renewals use the copy kept in the state dir, if any)";
        assert_eq!(waiting(&s), format!("{read} waits"));
        s.configmap = Some(true);
        assert_eq!(
            waiting(&s),
            format!("serverTLSBootstrap: true in the cluster's kubelet-config ConfigMap and {read} wait")
        );
        s.approver_on = true;
        assert_eq!(
            waiting(&s),
            format!("approving kubelet serving CSRs, serverTLSBootstrap: true in the cluster's kubelet-config ConfigMap and {read} wait")
        );
    }
}
