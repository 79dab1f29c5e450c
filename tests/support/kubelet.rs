//! A stand-in kubelet for tests: watches a static pod directory by polling and
//! runs each manifest's first container command as a real child process.
//!
//! Like the kubelet's file source it lists only non-dot regular files, does
//! not recurse, parses every such file whatever its extension, and identifies
//! a pod by file name + content, so a changed or removed file stops the old
//! process (SIGTERM, then SIGKILL after a grace period).

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use kubeadm_certd::node::manifests::{parse_manifest, Manifest};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How the stand-in kubelet behaves.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// How often the directory is listed (the kubelet's fileCheckFrequency).
    pub poll_period: Duration,
    /// Pause between noticing a change and acting on it.
    pub reaction_delay: Duration,
    /// If set, run every command in a private mount namespace with
    /// `<node_root>/etc` bind-mounted over `/etc` (needs root).
    pub node_root: Option<PathBuf>,
    /// SIGTERM to SIGKILL delay.
    pub stop_grace: Duration,
    /// Minimum delay before re-running a pod whose process exited by itself.
    pub restart_backoff: Duration,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        HarnessOptions {
            poll_period: Duration::from_millis(200),
            reaction_delay: Duration::ZERO,
            node_root: None,
            stop_grace: Duration::from_secs(5),
            restart_backoff: Duration::from_secs(1),
        }
    }
}

/// What happened to a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A process was started for a manifest.
    Started,
    /// Its process was stopped or exited, and has been reaped.
    Stopped,
    /// The command could not be spawned (pid is 0).
    SpawnFailed,
}

/// One recorded event.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// Manifest file name inside the directory.
    pub file: String,
    /// `metadata.name`.
    pub pod: String,
    /// Process id (0 for SpawnFailed).
    pub pid: i32,
    /// When it was recorded.
    pub at: SystemTime,
    /// Why it stopped / failed, or the log file for Started.
    pub detail: String,
}

struct Running {
    hash: u64,
    pod: String,
    child: Child,
}

struct Shared {
    events: Mutex<Vec<Event>>,
    stop: AtomicBool,
    /// Act on the last listing from now on (see [`KubeletHarness::freeze`]).
    frozen: AtomicBool,
}

/// The running stand-in kubelet; dropping it stops every process it started.
pub struct KubeletHarness {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    logs: tempfile::TempDir,
}

impl KubeletHarness {
    /// Starts polling `manifests_dir` in a background thread.
    pub fn start(manifests_dir: &Path, opts: HarnessOptions) -> Self {
        let shared = Arc::new(Shared {
            events: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            frozen: AtomicBool::new(false),
        });
        let logs = tempfile::tempdir().expect("log dir");
        let mut worker = Worker {
            dir: manifests_dir.to_path_buf(),
            opts,
            shared: shared.clone(),
            log_dir: logs.path().to_path_buf(),
            running: BTreeMap::new(),
            exited: BTreeMap::new(),
            spawned: 0,
            last: BTreeMap::new(),
        };
        let thread = std::thread::spawn(move || worker.run());
        KubeletHarness {
            shared,
            thread: Some(thread),
            logs,
        }
    }

    /// All events so far, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.shared.events.lock().expect("events lock").clone()
    }

    /// Events for one manifest file.
    pub fn events_for(&self, file: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.file == file)
            .collect()
    }

    /// Pid of the process currently running for `file`, per the event log.
    pub fn running_pid(&self, file: &str) -> Option<i32> {
        let mut pid = None;
        for e in self.events_for(file) {
            match e.kind {
                EventKind::Started => pid = Some(e.pid),
                EventKind::Stopped if pid == Some(e.pid) => pid = None,
                _ => {}
            }
        }
        pid
    }

    /// From now on, never look at the directory again: act on the last listing, like a
    /// kubelet that misses every change (its pods keep running, and one that exits is
    /// started again from the cached spec). Call it once the pods run.
    pub fn freeze(&self) {
        self.shared.frozen.store(true, Ordering::SeqCst);
    }

    /// Look at the directory again (a kubelet that was stuck and is fixed).
    pub fn unfreeze(&self) {
        self.shared.frozen.store(false, Ordering::SeqCst);
    }

    /// Where the children's output goes.
    pub fn log_dir(&self) -> &Path {
        self.logs.path()
    }

    /// Everything the children wrote, for failure messages.
    pub fn all_logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.logs.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            out.push_str(&format!(
                "== {}\n{text}",
                entry.file_name().to_string_lossy()
            ));
        }
        out
    }

    /// Polls `cond` every 50 ms until it holds or `limit` passes; returns whether it held.
    /// `limit` only keeps a broken test from hanging; it is not a speed requirement.
    pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if cond() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for KubeletHarness {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker {
    dir: PathBuf,
    opts: HarnessOptions,
    shared: Arc<Shared>,
    log_dir: PathBuf,
    running: BTreeMap<String, Running>,
    /// Pods whose process exited by itself: (content hash, when) for the backoff.
    exited: BTreeMap<String, (u64, Instant)>,
    spawned: u32,
    /// The last listing, used while frozen.
    last: BTreeMap<String, (u64, Manifest)>,
}

impl Worker {
    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    fn run(&mut self) {
        while !self.stopping() {
            self.reap_exited();
            if !self.shared.frozen.load(Ordering::SeqCst) {
                self.last = self.list();
            }
            let desired = self.last.clone();
            let gone: Vec<String> = self
                .running
                .iter()
                .filter(|(f, r)| desired.get(*f).map(|d| d.0) != Some(r.hash))
                .map(|(f, _)| f.clone())
                .collect();
            let new: Vec<&String> = desired
                .iter()
                .filter(|(f, (hash, _))| {
                    !self.running.contains_key(*f) && !self.backing_off(f, *hash)
                })
                .map(|(f, _)| f)
                .collect();
            if !(gone.is_empty() && new.is_empty()) {
                self.sleep(self.opts.reaction_delay);
            }
            for file in gone {
                if let Some(r) = self.running.remove(&file) {
                    self.stop(&file, r, "manifest removed or changed");
                }
            }
            for file in new {
                if self.stopping() {
                    break;
                }
                // A pod that was running under another content was stopped above.
                if !self.running.contains_key(file) {
                    let (hash, m) = &desired[file];
                    self.start(file, *hash, m);
                }
            }
            self.sleep(self.opts.poll_period);
        }
        let all = std::mem::take(&mut self.running);
        for (file, r) in all {
            self.stop(&file, r, "harness dropped");
        }
    }

    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopping() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10).min(end - Instant::now()));
        }
    }

    /// file name -> (content hash, manifest) for every parsable non-dot regular file;
    /// the kubelet logs and skips files that do not parse.
    fn list(&self) -> BTreeMap<String, (u64, Manifest)> {
        let mut out = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out; // a missing directory means no static pods
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                continue;
            }
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            if let Ok(m) = parse_manifest(&bytes) {
                let mut h = DefaultHasher::new();
                bytes.hash(&mut h);
                out.insert(name, (h.finish(), m));
            }
        }
        out
    }

    fn backing_off(&self, file: &str, hash: u64) -> bool {
        matches!(self.exited.get(file), Some((h, at)) if *h == hash && at.elapsed() < self.opts.restart_backoff)
    }

    fn record(&self, kind: EventKind, file: &str, pod: &str, pid: i32, detail: String) {
        let e = Event {
            kind,
            file: file.to_owned(),
            pod: pod.to_owned(),
            pid,
            at: SystemTime::now(),
            detail,
        };
        self.shared.events.lock().expect("events lock").push(e);
    }

    fn start(&mut self, file: &str, hash: u64, m: &Manifest) {
        let Some((program, args)) = m.command.split_first() else {
            return;
        };
        self.spawned += 1;
        let log_path = self.log_dir.join(format!("{file}.{}.log", self.spawned));
        let spawn = || -> std::io::Result<Child> {
            let log = File::create(&log_path)?;
            let mut cmd = match &self.opts.node_root {
                None => Command::new(program),
                Some(root) => {
                    let mut c = Command::new("unshare");
                    c.args(["-m", "--propagation", "private", "sh", "-c"])
                        .arg(r#"mount --bind "$KUBELET_HARNESS_ETC" /etc && exec "$@""#)
                        .arg("sh")
                        .arg(program)
                        .env("KUBELET_HARNESS_ETC", root.join("etc"));
                    c
                }
            };
            cmd.args(args)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                // Own process group, so stopping reaches everything the command forks.
                .process_group(0);
            cmd.spawn()
        };
        match spawn() {
            Ok(child) => {
                let pid = child.id() as i32;
                self.record(
                    EventKind::Started,
                    file,
                    &m.name,
                    pid,
                    log_path.display().to_string(),
                );
                self.exited.remove(file);
                self.running.insert(
                    file.to_owned(),
                    Running {
                        hash,
                        pod: m.name.clone(),
                        child,
                    },
                );
            }
            Err(e) => {
                self.record(EventKind::SpawnFailed, file, &m.name, 0, e.to_string());
                self.exited.insert(file.to_owned(), (hash, Instant::now()));
            }
        }
    }

    fn reap_exited(&mut self) {
        let done: Vec<String> = self
            .running
            .iter_mut()
            .filter_map(|(f, r)| matches!(r.child.try_wait(), Ok(Some(_))).then(|| f.clone()))
            .collect();
        for file in done {
            if let Some(mut r) = self.running.remove(&file) {
                let status = r.child.wait().map(|s| s.to_string()).unwrap_or_default();
                let pid = r.child.id() as i32;
                // Whatever it forked goes with it, like a container.
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                self.record(
                    EventKind::Stopped,
                    &file,
                    &r.pod,
                    pid,
                    format!("exited: {status}"),
                );
                self.exited.insert(file, (r.hash, Instant::now()));
            }
        }
    }

    fn stop(&self, file: &str, mut r: Running, why: &str) {
        let pid = r.child.id() as i32;
        let group = Pid::from_raw(pid);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + self.opts.stop_grace;
        let mut status = None;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = r.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let status = match status {
            Some(s) => s.to_string(),
            None => r
                .child
                .wait()
                .map(|s| format!("{s} after SIGKILL"))
                .unwrap_or_default(),
        };
        self.record(
            EventKind::Stopped,
            file,
            &r.pod,
            pid,
            format!("{why}: {status}"),
        );
    }
}
