//! Logging: tracing to journald (structured fields, stable MESSAGE_IDs) when JOURNAL_STREAM
//! is set, else human-readable lines on stderr. Key material never appears in any log.

/// MESSAGE_ID of a renewed certificate.
pub const MSG_RENEWED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b301";
/// MESSAGE_ID of a failed renewal.
pub const MSG_RENEW_FAILED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b302";
/// MESSAGE_ID of a restarted component.
pub const MSG_RESTARTED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b303";
/// MESSAGE_ID of a failed restart.
pub const MSG_RESTART_FAILED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b304";
/// MESSAGE_ID of a certificate close to expiry that will not be renewed.
pub const MSG_EXPIRING_SOON: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b305";
/// MESSAGE_ID of a CA with little runway left.
pub const MSG_CA_EXPIRING: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b306";
/// MESSAGE_ID of a due certificate not renewed because the CA's NotAfter leaves no gain.
pub const MSG_BLOCKED_BY_CA: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b307";
/// MESSAGE_ID of a due certificate not renewed because the daemon renewed it within 24 h.
pub const MSG_RECENTLY_RENEWED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b308";
/// MESSAGE_ID of a restart withheld because the component's restart budget is spent.
pub const MSG_RESTART_BUDGET: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b309";
/// MESSAGE_ID of renewals deferred while the kernel reports the clock unsynchronised.
pub const MSG_CLOCK_UNSYNCED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b30a";
/// MESSAGE_ID of renewals refused because the clock reads earlier than the newest NotBefore.
pub const MSG_CLOCK_BEHIND: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b30b";
/// MESSAGE_ID of old backup sets deleted.
pub const MSG_BACKUPS_PRUNED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b30c";
/// MESSAGE_ID of a configuration refused (at start or on SIGHUP).
pub const MSG_CONFIG_REJECTED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b30d";
/// MESSAGE_ID of a revived kubelet client certificate.
pub const MSG_KUBELET_CLIENT_REVIVED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b30e";
/// MESSAGE_ID of a kubelet client certificate that needs reviving and was not revived (a
/// worker without ca.key, the setting off, or a failure).
pub const MSG_KUBELET_CLIENT_STUCK: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b30f";
/// MESSAGE_ID (HA coordination): waiting for the restart lock.
pub const MSG_LOCK_WAIT: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b321";
/// MESSAGE_ID (HA coordination): the restart lock was acquired.
pub const MSG_LOCK_ACQUIRED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b322";
/// MESSAGE_ID (HA coordination): the restart lock was released.
pub const MSG_LOCK_RELEASED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b323";
/// MESSAGE_ID (HA coordination): a halt record was written, or blocks restarts.
pub const MSG_HALT: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b324";
/// MESSAGE_ID (HA coordination): the etcd restart was deferred by the quorum guard.
pub const MSG_DEFERRED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b325";
/// MESSAGE_ID (HA coordination): restarting without the lock (no quorum reachable).
pub const MSG_BREAK_GLASS: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b326";
/// MESSAGE_ID (HA coordination): the lock's lease was lost mid-hold.
pub const MSG_LOCK_LOST: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b327";
/// MESSAGE_ID (issue 18): the kubelet config lost the configured serverTLSBootstrap (rewritten,
/// as `kubeadm upgrade node` does) and the daemon set it again.
pub const MSG_KUBELET_CONFIG_DRIFT: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b340";
/// MESSAGE_ID (issue 18): the kubelet config keeps losing serverTLSBootstrap and the restart
/// budget is spent: the daemon no longer sets it again.
pub const MSG_KUBELET_DRIFT_LOOP: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b341";
/// MESSAGE_ID (issue 18): the cluster's ClusterConfiguration was read and kept in the state
/// dir for the first time, or it changed (validity, key algorithm, endpoint, dir).
pub const MSG_CLUSTER_CONFIG_READ: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b342";
/// MESSAGE_ID (issue 18): the ClusterConfiguration (ConfigMap or kept copy) cannot be used:
/// renewals go on with the copy last read, or as without one.
pub const MSG_CLUSTER_CONFIG_INVALID: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b343";
/// MESSAGE_ID (issue 18): the ClusterConfiguration could not be read (no `kubeadm-config`
/// ConfigMap) or kept (the state dir refused the write).
pub const MSG_CLUSTER_CONFIG_FAILED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b344";
/// MESSAGE_ID (Kubernetes API, issue 17): a kubelet serving CSR was approved.
pub const MSG_CSR_APPROVED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b331";
/// MESSAGE_ID (Kubernetes API): a kubelet serving CSR was denied (`approver.deny: true`).
pub const MSG_CSR_DENIED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b332";
/// MESSAGE_ID (Kubernetes API): a kubelet serving CSR failed a rule and was left pending.
pub const MSG_CSR_LEFT_PENDING: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b333";
/// MESSAGE_ID (Kubernetes API): too many pending CSRs, nothing is approved (flood guard).
pub const MSG_CSR_FLOOD: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b334";
/// MESSAGE_ID (Kubernetes API): the API server is unreachable (a standing condition).
pub const MSG_API_UNREACHABLE: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b335";
/// MESSAGE_ID (Kubernetes API): the API server answers again.
pub const MSG_API_REACHABLE: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b336";
/// MESSAGE_ID (Kubernetes API): a decision could not be written (e.g. 403), or the approver
/// cannot run (no kubeconfig with `approver.mode: on`).
pub const MSG_APPROVER_FAILED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b337";
/// MESSAGE_ID (Kubernetes API): serverTLSBootstrap set in the cluster's kubelet-config ConfigMap.
pub const MSG_KUBELET_CONFIGMAP_SET: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b338";
/// MESSAGE_ID (Kubernetes API): the ConfigMap part waits for the API (persisted as pending).
pub const MSG_KUBELET_CONFIGMAP_PENDING: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b339";
/// MESSAGE_ID (Kubernetes API): the ConfigMap could not be changed (not found, refused).
pub const MSG_KUBELET_CONFIGMAP_FAILED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b33a";
/// MESSAGE_ID (Kubernetes API): the approver started or stopped.
pub const MSG_APPROVER_STATE: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b33b";
/// MESSAGE_ID (CA rotation): a rotation was recorded by `ca rotate`.
pub const MSG_ROTATION_STARTED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b360";
/// MESSAGE_ID (CA rotation): this node finished its step of a phase.
pub const MSG_ROTATION_STEP: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b361";
/// MESSAGE_ID (CA rotation): a phase completed on every node; the next one begins.
pub const MSG_ROTATION_PHASE: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b362";
/// MESSAGE_ID (CA rotation): the rotation finished, or its abort did.
pub const MSG_ROTATION_DONE: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b363";
/// MESSAGE_ID (CA rotation): an abort was asked for (`ca rotate --abort`).
pub const MSG_ROTATION_ABORT: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b364";
/// MESSAGE_ID (CA rotation): a node's step failed; it was rolled back and the rollout halted.
pub const MSG_ROTATION_FAILED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b365";
/// MESSAGE_ID (CA rotation): this node cannot do its step now (standing, logged once).
pub const MSG_ROTATION_BLOCKED: &str = "5b1f3b8e0c7d4a8f9e2a6c41d7e0b366";

/// Set up logging once, at process start.
pub fn init(verbose: bool) {
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::{fmt, prelude::*, EnvFilter, Layer, Registry};
    // A plain level unless KUBEADM_CERTD_LOG asks for more: EnvFilter's directive parsing is
    // a visible share of a short command's start-up.
    let level = if verbose {
        LevelFilter::DEBUG
    } else {
        LevelFilter::INFO
    };
    // kube-client logs every failed request itself, at ERROR, with Debug formatting in
    // places (kube-client 5 src/client/builder.rs `on_failure`, src/client/mod.rs): the
    // API client classifies its errors and logs a standing condition once (`kube::stats`),
    // so kube's own lines would repeat it at every retry.
    let quiet = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target("kube_client", LevelFilter::OFF)
        .with_target("kube_core", LevelFilter::OFF)
        .with_target("tower_http", LevelFilter::OFF);
    let filter: Box<dyn Layer<Registry> + Send + Sync> = match std::env::var_os("KUBEADM_CERTD_LOG")
        .map(|_| EnvFilter::try_from_env("KUBEADM_CERTD_LOG"))
    {
        Some(Ok(f)) => f.boxed(),
        _ => quiet.boxed(),
    };
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(layer) = tracing_journald::layer() {
            let layer = layer
                .with_field_prefix(None)
                .with_syslog_identifier("kubeadm-certd".into());
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(layer)
                .try_init();
            return;
        }
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .without_time()
                .with_target(false),
        )
        .try_init();
}

/// Whether a recurring warning about `key` should be logged now: at most once a day per key,
/// so that a daemon reacting to every change does not repeat itself.
pub fn once_a_day(key: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    static SEEN: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);
    let Ok(mut g) = SEEN.lock() else { return true };
    let map = g.get_or_insert_with(HashMap::new);
    match map.get(key) {
        Some(t) if t.elapsed() < Duration::from_secs(86_400) => false,
        _ => {
            map.insert(key.to_string(), Instant::now());
            true
        }
    }
}

/// A duration as people read it (humantime, to the millisecond): `1s 234ms`, `5m`.
pub fn human_duration(d: std::time::Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}

/// An instant as people and journald fields read it: RFC 3339 in UTC, to the second
/// (`2027-11-29T08:58:21Z`).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
