//! A minimal kubelet for `demo`: polls the manifests directory like the kubelet's file source
//! (non-dot files, no recursion), runs each manifest's command as a process, and stops it when
//! its manifest leaves or changes.

use crate::node::manifests::parse_manifest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The running stand-in kubelet; stops every pod when dropped.
#[derive(Debug)]
pub struct DemoKubelet {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn stop_child(c: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    for _ in 0..20 {
        if matches!(c.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
}

fn sync(dir: &PathBuf, pods: &mut HashMap<String, (Vec<u8>, Child)>) {
    let mut seen = HashMap::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !e.path().is_file() {
                continue;
            }
            if let Ok(bytes) = std::fs::read(e.path()) {
                seen.insert(name, bytes);
            }
        }
    }
    pods.retain(|name, (bytes, child)| {
        let keep = seen.get(name) == Some(bytes);
        if !keep {
            stop_child(child);
        }
        keep
    });
    for (name, bytes) in seen {
        if pods.contains_key(&name) {
            continue;
        }
        let Ok(m) = parse_manifest(&bytes) else {
            continue;
        };
        let Some((exe, args)) = m.command.split_first() else {
            continue;
        };
        if let Ok(child) = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            pods.insert(name, (bytes, child));
        }
    }
}

impl DemoKubelet {
    /// Start watching `manifests`.
    pub fn start(manifests: PathBuf) -> DemoKubelet {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut pods = HashMap::new();
            while !flag.load(Ordering::SeqCst) {
                sync(&manifests, &mut pods);
                std::thread::sleep(Duration::from_millis(200));
            }
            for (_, (_, mut c)) in pods {
                stop_child(&mut c);
            }
        });
        DemoKubelet {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DemoKubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
