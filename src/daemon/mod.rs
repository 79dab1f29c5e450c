//! `run`: the daemon. A tokio loop that runs a cycle at start, every checkInterval plus a
//! random splay, and soon after a watched directory changes; reloads on SIGHUP; and on SIGTERM
//! finishes or rolls back the step in progress before exiting.

/// Restarts under the HA coordination: STATUS=, metrics, owed restarts.
pub mod coordinate;
/// One scan → plan → renew → restart → report cycle.
pub mod cycle;
/// sd_notify wrapper.
pub mod notify;
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(run_async(ctx, reload, once))
}

fn splay(jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::rng().random_range(0..=jitter.as_millis() as u64))
}

async fn cycle(
    ctx: &Ctx,
    counters: &mut crate::act::metrics::Counters,
    cancel: &Cancel,
) -> Result<cycle::CycleReport> {
    let (paths, settings, mut c, cl) = (
        ctx.paths.clone(),
        ctx.settings.clone(),
        std::mem::take(counters),
        cancel.clone(),
    );
    let started = std::time::Instant::now();
    let mut task = tokio::task::spawn_blocking(move || {
        let rep = cycle::run(&paths, &settings, &mut c, now(), &cl);
        (rep, c)
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
    match joined {
        Ok((rep, c)) => {
            *counters = c;
            Ok(rep)
        }
        Err(e) => {
            // A panic unwound through the restart guard, which puts manifests back; make sure.
            if let Err(r) = crate::act::staticpods::park::recover_parked(&ctx.paths, now()) {
                tracing::error!("moving parked manifests back: {r:#}");
            }
            Err(anyhow::anyhow!("the cycle panicked: {e}"))
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
    let _lock = ctx.lock_and_recover(&cancel)?;
    validate::validate(&ctx.settings)?;
    apply_kubelet_setting(&ctx, &cancel).await;
    let mut counters = crate::act::metrics::Counters::default();
    let rep = cycle(&ctx, &mut counters, &cancel).await?;
    tracing::info!("{}", rep.status);
    if cancel.is_cancelled() {
        notify::stopping();
        return Ok(());
    }
    notify::ready(&rep.status);
    if once {
        notify::stopping();
        return Ok(());
    }
    let (mut watcher, mut events) = watch::start(&ctx.paths)?;
    let wd = notify::watchdog_interval();
    let mut wd_tick = tokio::time::interval(wd.unwrap_or(Duration::from_secs(3600)));
    let mut next =
        tokio::time::Instant::now() + ctx.settings.check_interval + splay(ctx.settings.jitter);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {
                run_and_report(&ctx, &mut counters, &mut events, &cancel).await;
                next = tokio::time::Instant::now() + ctx.settings.check_interval + splay(ctx.settings.jitter);
            }
            Some(first) = events.recv() => {
                // Collect the burst, then scan once.
                tokio::time::sleep(DEBOUNCE).await;
                let mut paths = vec![first];
                while let Ok(p) = events.try_recv() { paths.push(p); }
                tracing::debug!("change in watched directories: {paths:?}");
                run_and_report(&ctx, &mut counters, &mut events, &cancel).await;
            }
            _ = wd_tick.tick(), if wd.is_some() => notify::watchdog(),
            _ = sighup.recv() => {
                notify::reloading();
                match reload().and_then(|c| validate::validate(&c.settings).map(|()| c)) {
                    Ok(new) => {
                        ctx = new;
                        drop(watcher);
                        (watcher, events) = watch::start(&ctx.paths)?;
                        tracing::info!("configuration reloaded");
                        next = tokio::time::Instant::now();
                    }
                    Err(e) => tracing::error!("new configuration rejected, keeping the old one: {e:#}"),
                }
                notify::ready("configuration reloaded");
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    notify::stopping();
    tracing::info!("stopping");
    drop(watcher);
    Ok(())
}

async fn run_and_report(
    ctx: &Ctx,
    counters: &mut crate::act::metrics::Counters,
    events: &mut watch::Events,
    cancel: &Cancel,
) {
    // A change by someone else during a cycle gets a cycle of its own (bounded, so a tool
    // rewriting files in a loop cannot keep the daemon busy forever).
    for _ in 0..3 {
        match cycle(ctx, counters, cancel).await {
            Ok(rep) => {
                tracing::info!("{}", rep.status);
                notify::status(&rep.status);
                // Events caused by our own writes are not changes to react to.
                if watch::drain_own(events, &rep.written).is_empty() || cancel.is_cancelled() {
                    break;
                }
            }
            Err(e) => {
                tracing::error!("cycle failed: {e:#}");
                break;
            }
        }
    }
}

/// Apply `kubelet.serverTLSBootstrap` (at start and after a reload). The kubelet restart and
/// its health wait block, so they run off the runtime thread; a signal cancels them.
async fn apply_kubelet_setting(ctx: &Ctx, cancel: &Cancel) {
    let (paths, settings, cancel) = (ctx.paths.clone(), ctx.settings.clone(), cancel.clone());
    let r = tokio::task::spawn_blocking(move || {
        crate::act::kubelet::serving::apply_setting(&paths, &settings, now(), &cancel)
    })
    .await;
    match r {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!("kubelet serverTLSBootstrap: {e:#}"),
        Err(e) => tracing::error!("kubelet serverTLSBootstrap: the task failed: {e}"),
    }
}
