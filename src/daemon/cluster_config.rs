//! The daemon's side of issue 18 item 1: a task on the daemon's runtime keeps the copy of the
//! cluster's ClusterConfiguration in the state dir fresh (read at start, then every
//! [`REFRESH`], quietly retried with backoff while the API does not answer), and every cycle
//! renews with the copy it finds there: a renewal never waits for the API.

use crate::act::cluster_config::{keep, summary, Kept};
use crate::config::Settings;
use crate::kube::client::{pause, race, Backoff, Kube};
use crate::kube::cluster_config::{read, ReadError, COMMAND_BOUND};
use crate::kube::stats::Shared;
use crate::logging;
use crate::node::cluster_config::{parse::parse, CONFIGMAP, DATA_KEY};
use crate::node::NodePaths;
use crate::plan::cluster_inputs::{effective, Live};
use std::time::Duration;
use time::OffsetDateTime;

/// How often the copy is refreshed while the API answers (the ClusterConfiguration changes
/// with upgrades, not by the minute).
pub const REFRESH: Duration = Duration::from_secs(15 * 60);

/// What one read did, for the task's loop.
enum Outcome {
    /// Read (kept, or not usable and said so): wait for the next refresh.
    Done,
    /// The API did not answer or failed transiently: retry sooner.
    Retry,
    /// Stopped.
    Stop,
}

/// Read the document once (bounded by the client's own call bound), keep it if it parses, and
/// say what changed, once. `said` carries the last problem logged, so a standing one is not
/// repeated.
async fn read_and_keep(
    kube: &Kube,
    paths: &NodePaths,
    stats: &Shared,
    now: fn() -> OffsetDateTime,
    said: &mut Option<String>,
) -> Outcome {
    let r = read(kube).await;
    match &r {
        Err(ReadError::Kube(e)) => stats.note::<()>(kube.url(), &Err(e.clone())),
        _ => stats.reached(kube.url()),
    }
    let text = match r {
        Ok(t) => t,
        Err(ReadError::Kube(crate::kube::KubeError::Cancelled)) => return Outcome::Stop,
        Err(e) if e.transient() => return Outcome::Retry,
        Err(e) => {
            let line = format!("{e}; renewals use the copy last read, or renew as without one");
            warn_once(said, logging::MSG_CLUSTER_CONFIG_FAILED, line);
            return Outcome::Done;
        }
    };
    let config = match parse(&text) {
        Ok(c) => c,
        Err(e) => {
            let line = format!(
                "ConfigMap {CONFIGMAP}, key {DATA_KEY}: {e}; not used (renewals use the copy last read, or renew as without one)"
            );
            warn_once(said, logging::MSG_CLUSTER_CONFIG_INVALID, line);
            return Outcome::Done;
        }
    };
    let (p, c, at) = (paths.clone(), config.clone(), now());
    let kept = tokio::task::spawn_blocking(move || keep(&p, &text, &c, at)).await;
    match kept {
        Ok(Ok(k)) => {
            if k != Kept::Same || said.is_some() {
                tracing::info!(
                    MESSAGE_ID = logging::MSG_CLUSTER_CONFIG_READ,
                    ACTION = "cluster-config",
                    "ClusterConfiguration of ConfigMap {CONFIGMAP} {} and kept in {}: {}",
                    if k == Kept::Changed {
                        "changed"
                    } else {
                        "read"
                    },
                    paths.show(&crate::node::cluster_config::path(paths)),
                    summary(&config)
                );
            }
            *said = None;
        }
        Ok(Err(e)) => {
            let line = format!("keeping the ClusterConfiguration: {e:#}");
            warn_once(said, logging::MSG_CLUSTER_CONFIG_FAILED, line);
        }
        Err(e) => tracing::warn!(
            ACTION = "cluster-config",
            "keeping the ClusterConfiguration: {e}"
        ),
    }
    Outcome::Done
}

/// Warn `line` with `message_id`, unless it is what was last said (a standing problem is said
/// once, not at every refresh).
fn warn_once(said: &mut Option<String>, message_id: &str, line: String) {
    if said.as_deref() != Some(line.as_str()) {
        tracing::warn!(MESSAGE_ID = message_id, ACTION = "cluster-config", "{line}");
        *said = Some(line);
    }
}

/// The task: read now, then every [`REFRESH`]; while the API does not answer, retry with
/// backoff (the unreachable condition is logged once, by `stats`).
pub async fn refresh(kube: Kube, paths: NodePaths, stats: Shared, now: fn() -> OffsetDateTime) {
    let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
    let mut said = None;
    loop {
        note_control_planes(&kube, &paths).await;
        let wait = match read_and_keep(&kube, &paths, &stats, now, &mut said).await {
            Outcome::Stop => return,
            Outcome::Done => {
                backoff.reset();
                REFRESH
            }
            Outcome::Retry => backoff.next_delay(),
        };
        if !pause(wait, kube.cancel()).await {
            return;
        }
    }
}

/// Keep the number of control-plane Nodes in the state dir: the first control-plane node
/// learns from it that others joined, without asking etcd (`cluster::endpoints`). A failed
/// list changes nothing; the config read right after reports an unreachable API.
async fn note_control_planes(kube: &Kube, paths: &NodePaths) {
    if let Ok(n) = kube.control_plane_nodes().await {
        let p = paths.clone();
        let _ = tokio::task::spawn_blocking(move || {
            crate::cluster::endpoints::record_control_planes(&p, n)
        })
        .await;
    }
}

/// `run --once` (a timer) has no background task: one read before the cycle, bounded by
/// [`COMMAND_BOUND`].
pub async fn refresh_once(kube: Kube, paths: NodePaths, now: fn() -> OffsetDateTime) {
    let stats = Shared::default();
    let mut said = None;
    let attempt = read_and_keep(&kube, &paths, &stats, now, &mut said);
    if race(attempt, COMMAND_BOUND, kube.cancel()).await.is_none() {
        tracing::debug!(
            "the API did not answer within {}: renewing with the ClusterConfiguration kept in the state dir, if any",
            logging::human_duration(COMMAND_BOUND)
        );
    }
}

/// The settings and paths a cycle renews with: the config file's, with the kept
/// ClusterConfiguration's values where the file sets none. A copy that cannot be used is a
/// standing condition, logged once.
pub fn for_cycle(
    paths: &NodePaths,
    settings: &Settings,
    conditions: &mut super::conditions::Conditions,
    now: OffsetDateTime,
) -> (NodePaths, Settings) {
    let e = effective(
        paths,
        settings,
        Live::NotTried("the daemon reads the API in the background".into()),
    );
    if !e.warnings.is_empty() {
        let text = e.warnings.join("; ");
        if conditions.holds("cluster-config", &text, now) {
            tracing::warn!(
                MESSAGE_ID = logging::MSG_CLUSTER_CONFIG_INVALID,
                ACTION = "cluster-config",
                "{text}"
            );
        }
    }
    (e.paths, e.settings)
}
