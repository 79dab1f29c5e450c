//! The per-component restart procedure: record, park, hold, unpark, verify; one component at
//! a time; roll back a component that does not come back and stop there.

use crate::act::cancel::Cancel;
use crate::act::staticpods::park::{self, Unparked};
use crate::act::staticpods::probe::{probe, ProbeResult};
use crate::act::staticpods::process::{find_by_cmdline, is_alive, ProcInfo};
use crate::node::kubelet::{parse_kubelet_config, KubeletConfigInfo};
use crate::node::manifests::find_manifest;
use crate::node::manifests::Manifest;
use crate::node::NodePaths;
use crate::pki::table::Component;
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use time::OffsetDateTime;

/// How restarts are carried out; tests point `proc_root` and timings at their harness.
#[derive(Debug, Clone)]
pub struct RestartOpts {
    /// Where to read processes.
    pub proc_root: PathBuf,
    /// Minimum hold (the kubelet's fileCheckFrequency unless configured).
    pub min_hold: Duration,
    /// Bound on each hold and on each wait for the component to come back.
    pub timeout: Duration,
    /// How often to look while waiting.
    pub poll: Duration,
    /// Stop request and progress: polled by every wait.
    pub cancel: Cancel,
    /// The wall clock (process start times are compared with it); a seam for tests.
    pub clock: fn() -> SystemTime,
    /// A new process is enough, its probe is not asked (set per component by a [`Gate`]).
    pub process_only: bool,
}

impl RestartOpts {
    /// From the settings and the kubelet config (0s or absent fileCheckFrequency is 20 s).
    pub fn from_node(
        paths: &NodePaths,
        settings: &crate::config::Settings,
        cancel: &Cancel,
    ) -> Result<RestartOpts> {
        let kubelet = kubelet_info(paths)?;
        Ok(RestartOpts {
            proc_root: PathBuf::from(crate::act::staticpods::process::PROC_ROOT),
            min_hold: settings
                .restart
                .min_hold
                .unwrap_or(kubelet.file_check_frequency),
            timeout: settings.restart.timeout,
            poll: Duration::from_millis(200),
            cancel: cancel.clone(),
            clock: SystemTime::now,
            process_only: false,
        })
    }
}

/// The kubelet config, or its defaults when unreadable.
pub fn kubelet_info(paths: &NodePaths) -> Result<KubeletConfigInfo> {
    let p = &paths.kubelet_config;
    match crate::node::fsread::read_node_file(&paths.root, p) {
        // No kubelet config: the kubelet's own defaults (fileCheckFrequency 20 s).
        Err(crate::node::fsread::ReadError::Missing) => {
            parse_kubelet_config(b"{}").map_err(|e| anyhow!("kubelet defaults: {e}"))
        }
        Err(e) => bail!("{}: {e}", paths.show(p)),
        Ok(b) => parse_kubelet_config(&b).map_err(|e| anyhow!("{}: {e}", paths.show(p))),
    }
}

/// What one restart observed, for logs and the README's downtime figures.
#[derive(Debug, Clone)]
pub struct Restarted {
    /// The component.
    pub component: Component,
    /// Processes that ran before.
    pub old: Vec<ProcInfo>,
    /// The new process.
    pub new: Option<ProcInfo>,
    /// From parking to a healthy probe.
    pub downtime: Duration,
    /// How the unpark ended.
    pub superseded: bool,
}

/// Why a restart failed.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// A termination signal arrived during a hold; the manifest is back.
    #[error("{0}: interrupted by a signal during the hold; its manifest is back in place")]
    Interrupted(&'static str),
    /// The component did not come back healthy.
    #[error("{component}: did not come back healthy within {}: {seen}", crate::logging::human_duration(*timeout))]
    NotHealthy {
        /// The component.
        component: &'static str,
        /// The bound.
        timeout: Duration,
        /// What was seen last.
        seen: String,
    },
    /// Anything else (I/O, manifest errors).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// One health probe, bounded so that a stop request is seen within a second even when the
/// component hangs (the wait polls again; a slow answer only delays "healthy").
fn probe_once(m: &Manifest) -> Option<ProbeResult> {
    m.probe_target()
        .map(|p| probe(p, "127.0.0.1", Duration::from_millis(900)))
}

fn sleep_checking(d: Duration, cancel: &Cancel) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        cancel.heartbeat();
        if cancel.is_cancelled() {
            return false;
        }
        std::thread::sleep(
            Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())),
        );
    }
    !cancel.is_cancelled()
}

/// Restart one component: park, hold, unpark, wait for a new healthy process.
pub fn restart_one(
    paths: &NodePaths,
    c: Component,
    opts: &RestartOpts,
) -> Result<Restarted, RestartError> {
    let found = find_manifest(paths, c.name())?.ok_or_else(|| {
        anyhow!(
            "{}: no manifest in {}",
            c.name(),
            paths.show(&paths.manifests)
        )
    })?;
    let m = &found.manifest;
    // (a) the running instance and its probe answer
    let old = find_by_cmdline(&opts.proc_root, &m.command).context("reading processes")?;
    let before = probe_once(m);
    tracing::info!(
        COMPONENT = c.name(),
        ACTION = "park",
        "{}: parking {} (running pids {}, probe {})",
        c.name(),
        found.file,
        pid_list(&old),
        before
            .map(|p| p.to_string())
            .unwrap_or_else(|| "none".into())
    );
    // (b) park
    let parked_at = Instant::now();
    let parked_wall = (opts.clock)();
    park::park(paths, &found.file)?;
    // Whatever happens from here (an error, a panic), the manifest goes back.
    let mut guard = ParkGuard {
        paths,
        file: &found.file,
        clock: opts.clock,
        armed: true,
    };
    fail::fail_point!("restart::after-park");
    // (c) hold for fileCheckFrequency and until the old process is gone, bounded by timeout
    let held = hold(c.name(), &old, opts);
    fail::fail_point!("restart::during-hold");
    let unparked_at = (opts.clock)();
    guard.armed = false;
    let superseded = matches!(
        park::unpark(paths, &found.file, OffsetDateTime::from((opts.clock)()))?,
        Unparked::Superseded(_)
    );
    fail::fail_point!("restart::after-unpark");
    held?;
    // (e) a new process started after the unpark, and a healthy probe
    let back = if superseded {
        find_manifest(paths, c.name())?
            .map(|f| f.manifest)
            .unwrap_or_else(|| m.clone())
    } else {
        m.clone()
    };
    // A manifest that replaced ours during the hold may already run: its process counts from
    // the park on (the old processes are excluded by pid and start time).
    let since = if superseded { parked_wall } else { unparked_at };
    let new = wait_back(c, &back, &old, since, opts)?;
    Ok(Restarted {
        component: c,
        old,
        new: Some(new),
        downtime: parked_at.elapsed(),
        superseded,
    })
}

/// After the unpark: wait until a process that started after `since` (and is none of `old`)
/// runs `back`'s command line and its probe, if any, is healthy; bounded by the timeout.
fn wait_back(
    c: Component,
    back: &Manifest,
    old: &[ProcInfo],
    since: SystemTime,
    opts: &RestartOpts,
) -> Result<ProcInfo, RestartError> {
    let deadline = Instant::now() + opts.timeout;
    loop {
        let procs = find_by_cmdline(&opts.proc_root, &back.command).unwrap_or_default();
        let fresh = first_new(procs, old, since);
        let seen = match (&fresh, probe_once(back)) {
            // A new process, and a healthy probe (or none to ask).
            (Some(p), _) if opts.process_only => return Ok(*p),
            (Some(p), r) if r.as_ref().is_none_or(|r| r.is_healthy()) => return Ok(*p),
            (Some(p), Some(r)) => format!("new pid {} started, probe: {r}", p.pid),
            (Some(p), None) => format!("new pid {} started", p.pid),
            (None, r) => format!(
                "no new process; probe: {}",
                r.map(|r| r.to_string()).unwrap_or_default()
            ),
        };
        opts.cancel.heartbeat();
        if opts.cancel.is_cancelled() {
            return Err(RestartError::Interrupted(c.name()));
        }
        if Instant::now() >= deadline {
            return Err(RestartError::NotHealthy {
                component: c.name(),
                timeout: opts.timeout,
                seen,
            });
        }
        std::thread::sleep(opts.poll);
    }
}

/// Pids for a log line: `123, 456`, or `none`.
fn pid_list(procs: &[ProcInfo]) -> String {
    if procs.is_empty() {
        return "none".into();
    }
    let v: Vec<String> = procs.iter().map(|p| p.pid.to_string()).collect();
    v.join(", ")
}

/// The first of `procs` that is a new process: started at `since` or later (one second of slack:
/// start times come from `btime`, whole seconds) and none of `old` (same pid and start ticks,
/// which also holds when the wall clock was stepped).
fn first_new(procs: Vec<ProcInfo>, old: &[ProcInfo], since: SystemTime) -> Option<ProcInfo> {
    procs.into_iter().find(|p| {
        p.start_time + Duration::from_secs(1) >= since
            && !old
                .iter()
                .any(|o| o.pid == p.pid && o.start_ticks == p.start_ticks)
    })
}

/// Puts a parked manifest back when dropped while armed (an early return or a panic).
struct ParkGuard<'a> {
    paths: &'a NodePaths,
    file: &'a str,
    clock: fn() -> SystemTime,
    armed: bool,
}

impl Drop for ParkGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) =
                park::unpark(self.paths, self.file, OffsetDateTime::from((self.clock)()))
            {
                tracing::error!("{}: could not move the manifest back: {e:#}", self.file);
            }
        }
    }
}

/// Hold: at least `min_hold`, and until every old process has exited; bounded by `timeout`.
/// A signal ends the hold early; the caller unparks either way.
fn hold(component: &'static str, old: &[ProcInfo], opts: &RestartOpts) -> Result<(), RestartError> {
    let start = Instant::now();
    if !sleep_checking(opts.min_hold, &opts.cancel) {
        return Err(RestartError::Interrupted(component));
    }
    while old.iter().any(|p| is_alive(&opts.proc_root, p)) {
        if start.elapsed() >= opts.timeout {
            let alive: Vec<ProcInfo> = old
                .iter()
                .filter(|p| is_alive(&opts.proc_root, p))
                .copied()
                .collect();
            // The kubelet never stopped the old pod, so no new one can start.
            return Err(RestartError::NotHealthy {
                component,
                timeout: opts.timeout,
                seen: format!(
                    "no new process: the old process (pid {}) still ran after the manifest was parked; the kubelet did not stop it",
                    pid_list(&alive)
                ),
            });
        }
        if !sleep_checking(opts.poll, &opts.cancel) {
            return Err(RestartError::Interrupted(component));
        }
    }
    Ok(())
}

/// Certificates to put back if a component fails: (target, backup copy) pairs.
pub type Rollback = Vec<(PathBuf, PathBuf)>;

/// What a [`Gate`] says before a component is parked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateVerdict {
    /// Restart it now.
    Go,
    /// Not this one (it stays owed); go on with the next.
    Skip(String),
    /// Nothing more: this one and the rest stay owed.
    Stop(String),
}

/// Asked around each component, so that something outside the restart code (the HA
/// coordination) can hold a component back, wait after it, or record its failure.
pub trait Gate {
    /// Before parking `c`.
    fn before(&mut self, c: Component) -> GateVerdict;
    /// Whether `c` counts as back once a new process runs, without a healthy probe.
    fn process_only(&self, _c: Component) -> bool {
        false
    }
    /// After `c` came back healthy; an error stops the sequence (the rest stay owed).
    fn after(&mut self, _c: Component) -> Result<()> {
        Ok(())
    }
    /// `c` failed and was rolled back.
    fn failed(&mut self, _c: Component, _reason: &str) {}
}

/// The gate of a node that acts alone.
pub struct NoGate;

impl Gate for NoGate {
    fn before(&mut self, _c: Component) -> GateVerdict {
        GateVerdict::Go
    }
}

/// Restart components in order, one at a time. On a failure: restore that component's
/// previous certificates (when still valid), restart it once more, and stop.
pub fn restart_all(
    paths: &NodePaths,
    components: &[Component],
    opts: &RestartOpts,
    rollback: &dyn Fn(Component) -> Rollback,
) -> Result<Vec<Restarted>, SequenceError> {
    restart_all_gated(paths, components, opts, rollback, &mut NoGate)
}

/// [`restart_all`], asking `gate` around each component.
pub fn restart_all_gated(
    paths: &NodePaths,
    components: &[Component],
    opts: &RestartOpts,
    rollback: &dyn Fn(Component) -> Rollback,
    gate: &mut dyn Gate,
) -> Result<Vec<Restarted>, SequenceError> {
    let mut done = Vec::new();
    let mut current = None;
    match run_sequence(
        paths,
        components,
        opts,
        rollback,
        gate,
        &mut done,
        &mut current,
    ) {
        Ok(()) => Ok(done),
        Err(error) => Err(SequenceError {
            done: done.iter().map(|r| r.component).collect(),
            failed: current,
            error,
        }),
    }
}

/// A restart sequence that stopped: which components came back before, which one failed
/// (none when the failure was not a component's, e.g. writing the owed-restarts file).
#[derive(Debug, thiserror::Error)]
#[error("{error:#}")]
pub struct SequenceError {
    /// Components restarted and healthy before the failure.
    pub done: Vec<Component>,
    /// The component that failed (rolled back and restarted once more, when it could be).
    pub failed: Option<Component>,
    /// What went wrong.
    pub error: anyhow::Error,
}

fn run_sequence(
    paths: &NodePaths,
    components: &[Component],
    opts: &RestartOpts,
    rollback: &dyn Fn(Component) -> Rollback,
    gate: &mut dyn Gate,
    done: &mut Vec<Restarted>,
    current: &mut Option<Component>,
) -> Result<()> {
    for c in Component::ORDER
        .into_iter()
        .filter(|c| components.contains(c))
    {
        match gate.before(c) {
            GateVerdict::Go => {}
            GateVerdict::Skip(why) => {
                tracing::warn!(
                    COMPONENT = c.name(),
                    ACTION = "defer",
                    "{}: not restarted now, it stays owed: {why}",
                    c.name()
                );
                continue;
            }
            GateVerdict::Stop(why) => bail!(
                "{}: not restarted, and nothing after it: {why}; the restarts stay owed",
                c.name()
            ),
        }
        let relaxed;
        let opts = if gate.process_only(c) {
            relaxed = RestartOpts {
                process_only: true,
                ..opts.clone()
            };
            &relaxed
        } else {
            opts
        };
        *current = Some(c);
        match restart_one(paths, c, opts) {
            Ok(r) => {
                *current = None;
                tracing::info!(
                    MESSAGE_ID = crate::logging::MSG_RESTARTED,
                    COMPONENT = c.name(),
                    ACTION = "restart",
                    RESULT = "ok",
                    "{} restarted (pid {}), down for {}",
                    c.name(),
                    r.new
                        .as_ref()
                        .map(|p| p.pid.to_string())
                        .unwrap_or_else(|| "?".into()),
                    crate::logging::human_duration(r.downtime)
                );
                crate::act::store::owed::done(paths, c.name())?;
                done.push(r);
                gate.after(c)?;
            }
            Err(RestartError::Interrupted(_)) => {
                // Not a failure of the component: nothing to roll back, its restart stays owed.
                *current = None;
                bail!(
                    "{}: interrupted by a signal; its manifest is back in place and its restart stays owed",
                    c.name()
                )
            }
            Err(e) => {
                let e = match e {
                    RestartError::Other(a) => anyhow!("{a:#}"),
                    other => anyhow!("{other}"),
                };
                // The failure is reported now; recovery must not retry it forever.
                crate::act::store::owed::clear(paths)?;
                tracing::error!(
                    MESSAGE_ID = crate::logging::MSG_RESTART_FAILED,
                    COMPONENT = c.name(),
                    ACTION = "restart",
                    RESULT = "failed",
                    "{e}"
                );
                let restored = restore(paths, &rollback(c), OffsetDateTime::from((opts.clock)()))?;
                let again = if restored.is_empty() {
                    String::from("no previous certificates to restore")
                } else {
                    let r2 = restart_one(paths, c, opts);
                    format!(
                        "restored {} from the backup and restarted it again: {}",
                        restored.join(", "),
                        match r2 {
                            Ok(_) => "it came back".to_string(),
                            Err(e) => e.to_string(),
                        }
                    )
                };
                let rest: Vec<&str> = components
                    .iter()
                    .filter(|x| **x > c)
                    .map(|x| x.name())
                    .collect();
                gate.failed(c, &format!("{e}; {again}"));
                bail!(
                    "{e}; {again}; not restarting the remaining components{}",
                    if rest.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", rest.join(", "))
                    }
                );
            }
        }
    }
    Ok(())
}

/// Restore backed-up files whose certificates are still valid. Returns the host paths restored.
fn restore(paths: &NodePaths, pairs: &Rollback, now: OffsetDateTime) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (target, copy) in pairs {
        let Ok(bytes) = crate::node::fsread::read_regular(copy, crate::node::fsread::MAX_NODE_FILE)
        else {
            continue;
        };
        if !still_valid(&bytes, now) {
            continue;
        }
        crate::act::store::atomic::write_atomic(target, &bytes, 0o600)?;
        out.push(paths.show(target));
    }
    Ok(out)
}

/// Whether a backed-up file's certificate (PEM, or a kubeconfig's embedded one) is valid now.
/// Key files carry no date and count as valid.
fn still_valid(bytes: &[u8], now: time::OffsetDateTime) -> bool {
    if let Ok(certs) = crate::pki::inspect::parse_cert_file(bytes) {
        return certs.first().is_some_and(|c| c.valid_at(now));
    }
    if let Ok(kc) = std::str::from_utf8(bytes)
        .map_err(|_| ())
        .and_then(|t| crate::pki::kubeconfig::parse(t).map_err(|_| ()))
    {
        return crate::pki::inspect::parse_cert_file(&kc.client_cert)
            .ok()
            .and_then(|c| c.into_iter().next())
            .is_some_and(|c| c.valid_at(now));
    }
    true
}

/// Components named on the command line (`all` = every one with a manifest), in order.
pub fn parse_components(paths: &NodePaths, names: &[String]) -> Result<Vec<Component>> {
    if !paths.manifests.is_dir() {
        bail!(
            "{}: the manifests directory does not exist (manifestsDir)",
            paths.show(&paths.manifests)
        );
    }
    if names.iter().any(|n| n == "all") {
        return Ok(Component::ORDER
            .into_iter()
            .filter(|c| find_manifest(paths, c.name()).ok().flatten().is_some())
            .collect());
    }
    names
        .iter()
        .map(|n| Component::from_name(n).ok_or_else(|| anyhow!("unknown component {n:?}; use all, etcd, kube-apiserver, kube-controller-manager or kube-scheduler")))
        .collect()
}

#[cfg(test)]
#[path = "restart_tests.rs"]
mod tests;
