//! Node-file drift (issue 18, item 4). `kubeadm upgrade node` rewrites
//! /var/lib/kubelet/config.yaml from the cluster's `kubelet-config` ConfigMap, so a
//! `serverTLSBootstrap` that only the node file had is gone after an upgrade (kubernetes
//! `cmd/kubeadm/app/phases/kubelet/config.go`, `writeConfigBytesToDisk`; see
//! shared/reference/kubeadm.md, "Changes from v1.29 to v1.36"). When the daemon's config sets
//! `kubelet.serverTLSBootstrap`, every cycle checks the file (the directory watch on the kubelet
//! config's directory starts that cycle soon after the rewrite) and sets the key again,
//! restarting the kubelet once.
//!
//! Idempotent: a file that already says what the config wants is neither written nor logged.
//! Bounded: each restart counts in the daemon's restart history as component `kubelet`, and
//! past `restart.maxPerDay` in 24 h the daemon stops setting the key again and says so once (a
//! standing condition) instead of restarting the kubelet in a loop.

use super::conditions::Conditions;
use super::cycle::CycleReport;
use crate::act::cancel::Cancel;
use crate::config::Settings;
use crate::logging::{MSG_KUBELET_CONFIG_DRIFT, MSG_KUBELET_DRIFT_LOOP};
use crate::node::kubelet_edit::{edited_text, read_text, KEY};
use crate::node::NodePaths;
use time::OffsetDateTime;

/// The restart history's key for the kubelet (`<stateDir>/restarts.json`).
pub const KUBELET: &str = "kubelet";

/// Conditions keys of this step.
const UNREADABLE: &str = "kubelet-config-drift:unreadable";
const LOOP: &str = "kubelet-config-drift:loop";

/// Check the kubelet config against `kubelet.serverTLSBootstrap` and set it again when the
/// file lost it. Nothing when the setting is not set.
pub fn reapply(
    paths: &NodePaths,
    settings: &Settings,
    conditions: &mut Conditions,
    now: OffsetDateTime,
    cancel: &Cancel,
    rep: &mut CycleReport,
) {
    let Some(enable) = settings.kubelet_server_tls_bootstrap else {
        return;
    };
    let file = &paths.kubelet_config;
    let host = paths.show(file);
    let needed = read_text(&paths.root, file).and_then(|t| edited_text(&t, enable));
    match needed {
        Ok(None) => return,
        Ok(Some(_)) => {}
        Err(e) => {
            let text = format!("{host}: {e:#}; cannot keep {KEY}: {enable} in it");
            if conditions.holds(UNREADABLE, &text, now) {
                tracing::warn!(
                    MESSAGE_ID = MSG_KUBELET_CONFIG_DRIFT,
                    CERT_PATH = host.as_str(),
                    "{text}"
                );
            }
            return;
        }
    }
    let history = crate::act::store::stamps::read_restarts(paths);
    let done = history
        .get(KUBELET)
        .map(|h| crate::plan::guard::recent_restarts(h, now))
        .unwrap_or(0);
    let max = settings.restart.max_per_day;
    if settings.restart.enabled && done >= max as usize {
        let text = format!(
            "{host} lost {KEY}: {enable} again and kubeadm-certd leaves it so: it restarted the kubelet for it {done} times in the last {} (restart.maxPerDay: {max}). Something rewrites the file again and again (kubeadm upgrade node, configuration management): set {KEY}: {enable} where it comes from, the kubelet-config ConfigMap (kubectl -n kube-system edit cm kubelet-config)",
            crate::logging::human_duration(crate::plan::guard::RESTART_WINDOW)
        );
        if conditions.holds(LOOP, &text, now) {
            tracing::warn!(
                MESSAGE_ID = MSG_KUBELET_DRIFT_LOOP,
                ACTION = "kubelet-config",
                COMPONENT = KUBELET,
                "{text}"
            );
        }
        return;
    }
    match crate::act::kubelet::serving::set_server_tls_bootstrap(paths, enable, now) {
        Ok(crate::act::kubelet::serving::Edit::Unchanged) => return,
        Ok(crate::act::kubelet::serving::Edit::Changed { .. }) => rep.written.push(host.clone()),
        Err(e) => {
            rep.failures += 1;
            tracing::error!(
                MESSAGE_ID = MSG_KUBELET_CONFIG_DRIFT,
                ACTION = "kubelet-config",
                RESULT = "failed",
                "setting {KEY}: {enable} again in {host}: {e:#}"
            );
            return;
        }
    }
    let restart = if settings.restart.enabled {
        "and restarting the kubelet"
    } else {
        "(restart.enabled is false: restart the kubelet yourself, systemctl restart kubelet)"
    };
    tracing::warn!(
        MESSAGE_ID = MSG_KUBELET_CONFIG_DRIFT,
        ACTION = "kubelet-config",
        CERT_PATH = host.as_str(),
        "{host} was rewritten without {KEY}: {enable} (kubeadm upgrade node writes it from the kubelet-config ConfigMap); set it again {restart}. To keep it across upgrades, set {KEY}: {enable} in that ConfigMap too: kubectl -n kube-system edit cm kubelet-config"
    );
    if !settings.restart.enabled {
        return;
    }
    // An attempt counts, as for static pods: a failed restart disrupts the kubelet too.
    crate::act::guard::record_restarts(paths, &[KUBELET.to_string()], now);
    if crate::act::systemd::restart_kubelet(paths, settings.restart.timeout, cancel).is_err() {
        // restart_kubelet has logged the failure with its reason.
        rep.failures += 1;
    }
}
