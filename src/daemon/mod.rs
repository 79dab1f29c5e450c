//! `run`: the daemon. A tokio loop that runs a cycle at start, every checkInterval plus a
//! random splay, and soon after a real change in a watched directory; reloads on SIGHUP; and
//! on SIGTERM finishes or rolls back the step in progress before exiting. Idle, it is quiet:
//! a cycle that changed nothing logs nothing at info level, and standing conditions are
//! logged once (see `conditions`).

/// The Kubernetes side: the CSR approver and the kubelet-config ConfigMap (tokio tasks).
pub mod api;
/// The cluster's ClusterConfiguration: the refresh task, and what each cycle renews with.
pub mod cluster_config;
/// Standing conditions: logged once, reminded daily, cleared once.
pub mod conditions;
/// Restarts under the HA coordination: STATUS=, metrics, owed restarts.
pub mod coordinate;
/// One scan -> plan -> renew -> restart -> report cycle.
pub mod cycle;
/// Setting kubelet.serverTLSBootstrap again after an upgrade rewrote the kubelet config.
pub mod kubelet_drift;
/// The heap between cycles: malloc arenas and trimming.
pub mod memory;
/// The node lock, held only while the daemon acts; recovery of what a command left.
pub mod nodelock;
/// sd_notify wrapper.
pub mod notify;
/// CA rotations: this node's steps, their gauges, how soon to look again.
pub mod rotation;
/// What a cycle finds that stands: refusals, unreadable files, CA runway, skipped certs.
pub mod standing;
/// Daemon-only configuration checks.
pub mod validate;
/// Directory watches.
pub mod watch;

use crate::act::cancel::Cancel;
use crate::context::{now, Ctx};
use anyhow::{Context, Result};
use rand::Rng;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// How long to wait after a change before scanning (editors and tools write in bursts).
const DEBOUNCE: Duration = Duration::from_millis(700);

/// Run the daemon (or one cycle with `once`).
pub fn run(ctx: Ctx, reload: impl Fn() -> Result<Ctx> + Send + 'static, once: bool) -> Result<()> {
    memory::limit_arenas();
    // A cycle runs on a blocking thread; it leaves 1 s after the cycle (tokio's default is
    // 10 s), before the executable's pages are released (`memory::SETTLE`): an idle daemon
    // keeps no thread it does not use, and no thread's exit maps code back in.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_keep_alive(memory::BLOCKING_KEEP_ALIVE)
        .build()
        .context("starting the runtime")?;
    rt.block_on(run_async(ctx, reload, once))
}

fn splay(jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return Duration::ZERO;
    }
    let max = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=max))
}

/// Run one cycle on a blocking thread, under the node lock (waiting for a manual command
/// that holds it; `None` when a signal came first). The state is cloned in, so a cycle that
/// panics keeps the counters and conditions of the cycles before it.
async fn cycle(
    ctx: &Ctx,
    state: &mut cycle::State,
    trigger: &'static str,
    cancel: &Cancel,
) -> Result<Option<cycle::CycleReport>> {
    let (paths, settings, mut st, cl) = (
        ctx.paths.clone(),
        ctx.settings.clone(),
        state.clone(),
        cancel.clone(),
    );
    let started = std::time::Instant::now();
    let mut task = tokio::task::spawn_blocking(move || {
        let rep = nodelock::take(&paths, nodelock::CYCLE, &cl).map(|lock| {
            lock.map(|_lock| {
                let mut rep = cycle::run(&paths, &settings, &mut st, trigger, now(), &cl);
                rep.own = nodelock::stamp(&paths, &rep.written);
                rep
            })
        });
        (rep, st)
    });
    // The watchdog keeps being fed while a cycle runs (restarts can take minutes), but only
    // while the cycle shows progress, so a hung cycle still trips it.
    let wd = notify::watchdog_interval();
    let mut tick = tokio::time::interval(wd.unwrap_or(Duration::from_secs(3600)));
    let mut seen = cancel.progress();
    let joined = loop {
        tokio::select! {
            r = &mut task => break r,
            _ = tick.tick(), if wd.is_some() => {
                let p = cancel.progress();
                if p != seen || started.elapsed() < Duration::from_secs(60) {
                    notify::watchdog();
                }
                seen = p;
            }
        }
    };
    // What the cycle freed goes back to the kernel before the daemon sleeps.
    memory::trim();
    match joined {
        Ok((rep, st)) => {
            *state = st;
            rep
        }
        Err(e) => {
            // A panic unwound through the restart guard, which puts manifests back; make sure,
            // under the lock again (the unwinding released it, and a command may hold it now
            // with a manifest of its own parked).
            let (paths, cl) = (ctx.paths.clone(), cancel.clone());
            let r = tokio::task::spawn_blocking(move || {
                match nodelock::take(&paths, nodelock::CYCLE, &cl)? {
                    Some(_lock) => {
                        crate::act::staticpods::park::recover_parked(&paths, now()).map(|_| ())
                    }
                    None => Ok(()),
                }
            })
            .await;
            if let Ok(Err(r)) = r {
                tracing::error!("moving parked manifests back: {r:#}");
            }
            Err(anyhow::anyhow!("the cycle panicked: {e}"))
        }
    }
}

/// Run a cycle and report it: STATUS always, an info line only when it acted or failed.
async fn run_and_report(
    ctx: &Ctx,
    state: &mut cycle::State,
    trigger: &'static str,
    cancel: &Cancel,
) -> Option<cycle::CycleReport> {
    if cancel.is_cancelled() {
        return None;
    }
    match cycle(ctx, state, trigger, cancel).await {
        Ok(None) => None,
        Ok(Some(rep)) => {
            if rep.acted() {
                tracing::info!("{}", rep.status);
            } else {
                tracing::debug!("cycle ({trigger}): {}", rep.status);
            }
            notify::status(&rep.status);
            Some(rep)
        }
        Err(e) => {
            tracing::error!("cycle failed: {e:#}");
            None
        }
    }
}

/// Begin a conditions round and set up missing watches: a watch that cannot be set up is a
/// standing condition (the cycle that follows ends the round), and the daemon goes on with
/// its timer.
fn begin_round(w: &mut watch::Watch, ctx: &Ctx, state: &mut cycle::State, watching: bool) {
    state.conditions.begin();
    if !watching {
        return;
    }
    if let Some(problem) = w.refresh(&ctx.paths) {
        let text = format!(
            "{problem}; changes are picked up by the timer only (every {}), retrying the watch every cycle",
            crate::logging::human_duration(ctx.settings.check_interval)
        );
        if state.conditions.holds("watch", &text, now()) {
            tracing::warn!(ACTION = "watch", "{text}");
        }
    }
}

async fn run_async(mut ctx: Ctx, reload: impl Fn() -> Result<Ctx>, once: bool) -> Result<()> {
    // The signal handler itself sets the cancel flag (signal-hook), so a SIGTERM reaches a
    // restart hold or a kubelet wait at once, whatever the runtime thread is doing.
    let cancel = crate::context::cancel_on_signals();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    // Recovery may carry out owed restarts, which on an HA control plane talk to etcd through
    // a runtime of their own: off the runtime thread, like every other blocking step. The
    // lock is held for the recovery only (then for each cycle), never for the daemon's life.
    let (c, cl) = (ctx.clone(), cancel.clone());
    let started = tokio::task::spawn_blocking(move || {
        let Some(_lock) = nodelock::take(&c.paths, nodelock::START, &cl)? else {
            return Ok(false);
        };
        c.recover(true, &cl).map(|()| true)
    })
    .await
    .context("recovery at start-up")??;
    if !started {
        notify::stopping();
        return Ok(());
    }
    validate::validate(&ctx.settings).inspect_err(|e| {
        tracing::error!(
            MESSAGE_ID = crate::logging::MSG_CONFIG_REJECTED,
            "configuration refused, not starting: {e:#}"
        )
    })?;
    apply_kubelet_setting(&ctx, &cancel).await;
    let mut state = cycle::State::default();
    // The approver and the ConfigMap task are for the long-running daemon; `--once` (a
    // timer) runs one cycle and leaves.
    let mut kube = if once {
        api::refresh_cluster_config_once(&ctx, &cancel).await;
        api::KubeTasks::default()
    } else {
        api::KubeTasks::start(&ctx, &cancel).await
    };
    state.counters.kube = kube.source();
    let mut w = watch::Watch::new();
    begin_round(&mut w, &ctx, &mut state, !once);
    let Some(first) = cycle(&ctx, &mut state, "start", &cancel).await? else {
        notify::stopping();
        return Ok(());
    };
    tracing::info!("{}", first.status);
    if cancel.is_cancelled() {
        notify::stopping();
        return Ok(());
    }
    notify::ready(&first.status);
    if once {
        notify::stopping();
        return Ok(());
    }
    w.forget_own(&ctx.paths, &first.own);
    kube.after_cycle(&ctx, &cancel).await;
    state.counters.kube = kube.source();
    let wd = notify::watchdog_interval();
    let mut wd_tick = tokio::time::interval(wd.unwrap_or(Duration::from_secs(3600)));
    let next_at = |s: &crate::config::Settings| {
        tokio::time::Instant::now() + s.check_interval + splay(s.jitter)
    };
    let mut next = rotation::next_cycle(next_at(&ctx.settings), Some(&first));
    // When to release the executable's pages: once quiet for `memory::SETTLE` after a cycle.
    let settle = |s: &crate::config::Settings| {
        s.idle_pageout
            .then(|| tokio::time::Instant::now() + memory::SETTLE)
    };
    let mut release = settle(&ctx.settings);
    // The approver's watch events and the API calls run code too: release again after them.
    let api_activity = kube.activity();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {
                begin_round(&mut w, &ctx, &mut state, true);
                let rep = run_and_report(&ctx, &mut state, "timer", &cancel).await;
                if let Some(rep) = &rep {
                    w.forget_own(&ctx.paths, &rep.own);
                }
                kube.after_cycle(&ctx, &cancel).await;
                state.counters.kube = kube.source();
                next = rotation::next_cycle(next_at(&ctx.settings), rep.as_ref());
                release = settle(&ctx.settings);
            }
            _ = w.changed() => {
                // Collect the burst, then scan once for all of it.
                tokio::time::sleep(DEBOUNCE).await;
                let changes = w.take();
                if changes.is_empty() {
                    continue;
                }
                tracing::debug!(
                    "change in watched directories: {}{}",
                    changes.paths.iter().cloned().collect::<Vec<_>>().join(", "),
                    if changes.rescan { " (rescan)" } else { "" }
                );
                begin_round(&mut w, &ctx, &mut state, true);
                if let Some(rep) = run_and_report(&ctx, &mut state, "change", &cancel).await {
                    w.forget_own(&ctx.paths, &rep.own);
                }
                // `kubelet-serving-certs` with the API down leaves the ConfigMap part pending.
                kube.after_cycle(&ctx, &cancel).await;
                state.counters.kube = kube.source();
                release = settle(&ctx.settings);
            }
            _ = api_activity.notified() => release = settle(&ctx.settings),
            _ = tokio::time::sleep_until(release.unwrap_or(next)), if release.is_some() => {
                release = None;
                memory::release_executable();
            }
            _ = wd_tick.tick(), if wd.is_some() => notify::watchdog(),
            _ = sighup.recv() => {
                notify::reloading();
                match reload().and_then(|c| validate::validate(&c.settings).map(|()| c)) {
                    Ok(new) => {
                        let kubelet_changed = new.settings.kubelet_server_tls_bootstrap
                            != ctx.settings.kubelet_server_tls_bootstrap;
                        ctx = new;
                        // New paths may mean new directories: watch afresh (the next
                        // cycle, right away, sets the watches up).
                        w = watch::Watch::new();
                        tracing::info!("configuration reloaded");
                        if kubelet_changed {
                            apply_kubelet_setting(&ctx, &cancel).await;
                        }
                        // The approver and the ConfigMap task follow the new settings,
                        // restarted only where they changed (their counters stay).
                        kube.reload(&ctx, &cancel).await;
                        state.counters.kube = kube.source();
                        notify::ready("configuration reloaded");
                        next = tokio::time::Instant::now();
                    }
                    Err(e) => {
                        tracing::error!(MESSAGE_ID = crate::logging::MSG_CONFIG_REJECTED, "new configuration rejected, keeping the old one: {e:#}");
                        notify::ready(&format!("new configuration rejected, keeping the old one: {e:#}"));
                    }
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    // Every way out of the loop is a stop. The signal handler set only the flag; this also
    // wakes the API tasks' waits.
    cancel.cancel();
    notify::stopping();
    kube.finish().await;
    tracing::info!("stopping");
    Ok(())
}

/// Apply `kubelet.serverTLSBootstrap` (at start and after a reload that changed it), under
/// the node lock. The kubelet restart and its health wait block, so they run off the runtime
/// thread; a signal cancels them. Unset, nothing is touched: a manual
/// `kubelet-serving-certs` stays as the operator left it.
async fn apply_kubelet_setting(ctx: &Ctx, cancel: &Cancel) {
    if ctx.settings.kubelet_server_tls_bootstrap.is_none() {
        return;
    }
    let (paths, settings, cancel) = (ctx.paths.clone(), ctx.settings.clone(), cancel.clone());
    let r = tokio::task::spawn_blocking(move || {
        let Some(_lock) = nodelock::take(&paths, nodelock::KUBELET_SETTING, &cancel)? else {
            return Ok(crate::act::kubelet::serving::Edit::Unchanged);
        };
        crate::act::kubelet::serving::apply_setting(&paths, &settings, now(), &cancel)
    })
    .await;
    match r {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!("kubelet serverTLSBootstrap: {e:#}"),
        Err(e) => tracing::error!("kubelet serverTLSBootstrap: the task failed: {e}"),
    }
}
