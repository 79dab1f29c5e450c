//! `run`: the daemon. A tokio loop that runs a cycle at start, every checkInterval plus a
//! random splay, and soon after a watched directory changes; reloads on SIGHUP; and on SIGTERM
//! finishes or rolls back the step in progress before exiting.

/// One scan → plan → renew → restart → report cycle.
pub mod cycle;
/// sd_notify wrapper.
pub mod notify;
/// Daemon-only configuration checks.
pub mod validate;
/// Directory watches.
pub mod watch;

use crate::commands::Ctx;
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

async fn cycle(ctx: &Ctx, counters: &mut crate::metrics::Counters) -> Result<cycle::CycleReport> {
    let (paths, settings, mut c) = (
        ctx.paths.clone(),
        ctx.settings.clone(),
        std::mem::take(counters),
    );
    let started = std::time::Instant::now();
    let mut task = tokio::task::spawn_blocking(move || {
        let rep = cycle::run(&paths, &settings, &mut c, crate::commands::now());
        (rep, c)
    });
    // The watchdog keeps being fed while a cycle runs (restarts can take minutes), but only
    // while the cycle shows progress, so a hung cycle still trips it.
    let wd = notify::watchdog_interval();
    let mut tick = tokio::time::interval(wd.unwrap_or(Duration::from_secs(3600)));
    let mut seen = crate::signals::progress();
    let joined = loop {
        tokio::select! {
            r = &mut task => break r,
            _ = tick.tick(), if wd.is_some() => {
                let now = crate::signals::progress();
                if now != seen || started.elapsed() < Duration::from_secs(60) {
                    notify::watchdog();
                }
                seen = now;
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
            if let Err(r) = crate::staticpods::park::recover_parked(&ctx.paths) {
                tracing::error!("moving parked manifests back: {r:#}");
            }
            Err(anyhow::anyhow!("the cycle panicked: {e}"))
        }
    }
}

async fn run_async(mut ctx: Ctx, reload: impl Fn() -> Result<Ctx>, once: bool) -> Result<()> {
    let _lock = ctx.lock_and_recover()?;
    validate::validate(&ctx.settings)?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    // A SIGTERM during a restart hold must unpark: the blocking cycle polls this flag.
    let mut term_flag = signal(SignalKind::terminate())?;
    let mut int_flag = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term_flag.recv() => {}
            _ = int_flag.recv() => {}
        }
        crate::signals::request_termination();
    });
    if let Err(e) = crate::commands::kubelet::apply_setting(&ctx) {
        tracing::error!("kubelet serverTLSBootstrap: {e:#}");
    }
    let mut counters = crate::metrics::Counters::default();
    let rep = cycle(&ctx, &mut counters).await?;
    tracing::info!("{}", rep.status);
    if crate::signals::terminating() {
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
                run_and_report(&ctx, &mut counters, &mut events).await;
                next = tokio::time::Instant::now() + ctx.settings.check_interval + splay(ctx.settings.jitter);
            }
            Some(first) = events.recv() => {
                // Collect the burst, then scan once.
                tokio::time::sleep(DEBOUNCE).await;
                let mut paths = vec![first];
                while let Ok(p) = events.try_recv() { paths.push(p); }
                tracing::debug!("change in watched directories: {paths:?}");
                run_and_report(&ctx, &mut counters, &mut events).await;
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
    counters: &mut crate::metrics::Counters,
    events: &mut watch::Events,
) {
    // A change by someone else during a cycle gets a cycle of its own (bounded, so a tool
    // rewriting files in a loop cannot keep the daemon busy forever).
    for _ in 0..3 {
        match cycle(ctx, counters).await {
            Ok(rep) => {
                tracing::info!("{}", rep.status);
                notify::status(&rep.status);
                // Events caused by our own writes are not changes to react to.
                if watch::drain_own(events, &rep.written).is_empty()
                    || crate::signals::terminating()
                {
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
