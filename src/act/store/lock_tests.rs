//! The node lock: waiting, its bound, cancellation, and how the holder is named. flock locks
//! belong to open file descriptions, so two opens in one process exclude each other as two
//! processes would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::sync::Mutex;

fn lock_path() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("state/lock");
    (d, p)
}

/// Wait with a recorder for `on_wait`.
fn wait_for(
    path: &Path,
    bound: Option<Duration>,
    cancel: &Cancel,
) -> (Result<Lock, LockError>, Vec<Holder>, Duration) {
    let seen = Mutex::new(Vec::new());
    let record = |h: &Holder| seen.lock().unwrap().push(h.clone());
    let start = Instant::now();
    let r = acquire_waiting(
        path,
        &Wait {
            what: "renew",
            bound,
            cancel,
            on_wait: &record,
        },
    );
    (r, seen.into_inner().unwrap(), start.elapsed())
}

#[test]
fn the_holder_writes_its_pid_and_what_it_does_and_clears_them_on_release() {
    let (_d, p) = lock_path();
    let l = acquire(&p, "daemon cycle").unwrap();
    let me = std::process::id();
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        format!("{me} daemon cycle\n")
    );
    assert!(is_held(&p));
    let h = holder(&p).unwrap();
    assert_eq!(h.to_string(), format!("pid {me} (daemon cycle)"));
    drop(l);
    assert!(!is_held(&p));
    assert_eq!(holder(&p), None);
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
}

#[test]
fn holder_lines_parse_old_and_new_forms() {
    let h = Holder::parse("4242 kubelet-client revive\n");
    assert_eq!(h.pid, Some(4242));
    assert_eq!(h.to_string(), "pid 4242 (kubelet-client revive)");
    // Versions before the wait wrote the pid alone.
    assert_eq!(Holder::parse("17\n").to_string(), "pid 17");
    assert_eq!(
        Holder::parse("").to_string(),
        "another kubeadm-certd process"
    );
    assert_eq!(
        Holder::parse("garbage").to_string(),
        "another kubeadm-certd process"
    );
}

#[test]
fn no_wait_fails_at_once_naming_the_holder() {
    let (_d, p) = lock_path();
    let _held = acquire(&p, "daemon cycle").unwrap();
    let (r, seen, took) = wait_for(&p, Some(Duration::ZERO), &Cancel::new());
    let e = r.unwrap_err();
    assert!(matches!(e, LockError::Held { .. }), "{e}");
    let me = std::process::id();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: pid {me} (daemon cycle) holds the lock; not waiting (--wait 0): try again when it has finished",
            p.display()
        )
    );
    assert!(seen.is_empty(), "a wait was announced: {seen:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    // The holder's line is untouched by the one that gave up.
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        format!("{me} daemon cycle\n")
    );
}

#[test]
fn a_bounded_wait_says_once_whom_it_waits_for_and_gives_up_after_the_bound() {
    let (_d, p) = lock_path();
    let _held = acquire(&p, "daemon cycle").unwrap();
    let (r, seen, took) = wait_for(&p, Some(Duration::from_millis(700)), &Cancel::new());
    let e = r.unwrap_err();
    let me = std::process::id();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: pid {me} (daemon cycle) still holds the lock after 700ms; try again when it has finished, or wait longer with --wait",
            p.display()
        )
    );
    assert_eq!(
        seen,
        vec![Holder {
            pid: Some(me),
            what: Some("daemon cycle".into())
        }]
    );
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn a_wait_ends_when_the_holder_releases_and_the_waiter_then_names_itself() {
    let (_d, p) = lock_path();
    let held = acquire(&p, "daemon cycle").unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        drop(held);
    });
    let cancel = Cancel::new();
    let before = cancel.progress();
    let (r, seen, took) = wait_for(&p, None, &cancel);
    t.join().unwrap();
    let l = r.unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(took >= Duration::from_millis(400), "{took:?}");
    // Each look is progress: the daemon's watchdog stays fed during a long wait.
    assert!(cancel.progress() > before);
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        format!("{} renew\n", std::process::id())
    );
    drop(l);
}

#[test]
fn cancelling_ends_the_wait_promptly_and_takes_nothing() {
    let (_d, p) = lock_path();
    let _held = acquire(&p, "restart").unwrap();
    let cancel = Cancel::new();
    let c = cancel.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        c.cancel();
    });
    let (r, seen, took) = wait_for(&p, None, &cancel);
    t.join().unwrap();
    let e = r.unwrap_err();
    assert!(matches!(e, LockError::Cancelled { .. }), "{e}");
    assert!(
        e.to_string().contains("interrupted while waiting for pid")
            && e.to_string().contains("(restart)"),
        "{e}"
    );
    assert_eq!(seen.len(), 1);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        format!("{} restart\n", std::process::id())
    );
}

#[test]
fn a_free_lock_is_taken_without_announcing_a_wait() {
    let (_d, p) = lock_path();
    let (r, seen, _) = wait_for(&p, Some(Duration::from_secs(5)), &Cancel::new());
    assert!(r.is_ok());
    assert!(seen.is_empty());
    let mode = std::fs::metadata(&p).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}

#[test]
fn an_unknown_holder_is_named_as_such() {
    let (_d, p) = lock_path();
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    // Someone holds it without writing a line (a foreign tool, or a holder that just began).
    let f = std::fs::File::create(&p).unwrap();
    f.try_lock().unwrap();
    let (r, seen, _) = wait_for(&p, Some(Duration::from_millis(200)), &Cancel::new());
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("another kubeadm-certd process still holds the lock after 200ms"),
        "{e}"
    );
    assert_eq!(seen, vec![Holder::default()]);
    drop(f);
}
