//! The daemon under a fake systemd boundary: sd_notify messages on a NOTIFY_SOCKET datagram
//! socket, reaction to a changed certificate, SIGTERM during a restart hold, and journald
//! fields read back from a real systemd-journald (started in a private mount namespace).

mod support;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::daemon_node::{config, node, not_after};
use time::OffsetDateTime;

const BIN: &str = env!("CARGO_BIN_EXE_kubeadm-certd");

fn signal(c: &Child, s: Signal) {
    kill(Pid::from_raw(c.id() as i32), s).unwrap();
}

/// Collect datagrams until `want` has been seen or the deadline passes.
fn recv_until(sock: &UnixDatagram, got: &mut Vec<String>, want: &str, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = msg.lines().any(|l| l == want);
            got.push(msg);
            if hit {
                return true;
            }
        }
    }
    false
}

#[test]
fn sd_notify_ready_status_watchdog_reload_stopping() {
    let d = node(300);
    let sock_path = d.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let cfg = config(
        d.path(),
        "restart:\n  enabled: false\nmetrics:\n  textfile: \"\"\n",
    );
    let mut child = Command::new(BIN)
        .args([
            "--root",
            d.path().to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "run",
        ])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    assert!(
        recv_until(&sock, &mut got, "READY=1", Duration::from_secs(20)),
        "no READY=1: {got:?}"
    );
    let ready = got.iter().find(|m| m.contains("READY=1")).unwrap();
    let status = ready
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_default();
    assert!(
        status.contains("certificates ok") && status.contains("next:"),
        "STATUS={status}"
    );
    got.clear();
    assert!(
        recv_until(&sock, &mut got, "WATCHDOG=1", Duration::from_secs(3)),
        "no WATCHDOG=1: {got:?}"
    );
    got.clear();
    signal(&child, Signal::SIGHUP);
    assert!(
        recv_until(&sock, &mut got, "RELOADING=1", Duration::from_secs(5)),
        "no RELOADING=1: {got:?}"
    );
    assert!(
        recv_until(&sock, &mut got, "READY=1", Duration::from_secs(5)),
        "no READY=1 after reload: {got:?}"
    );
    // A bad new config is rejected and the old one kept: the daemon stays up.
    std::fs::write(&cfg, "renewBefore: 1h\n").unwrap();
    got.clear();
    signal(&child, Signal::SIGHUP);
    assert!(
        recv_until(&sock, &mut got, "READY=1", Duration::from_secs(5)),
        "no READY=1 after a bad reload: {got:?}"
    );
    let after_bad = got.join("\n");
    assert!(
        after_bad.contains("STATUS=new configuration rejected, keeping the old one")
            && after_bad.contains("renewBefore"),
        "the bad reload was not reported as rejected: {got:?}"
    );
    assert!(
        !after_bad.contains("configuration reloaded"),
        "a rejected reload claimed success: {got:?}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon exited on a bad reload"
    );
    got.clear();
    signal(&child, Signal::SIGTERM);
    assert!(
        recv_until(&sock, &mut got, "STOPPING=1", Duration::from_secs(5)),
        "no STOPPING=1: {got:?}"
    );
    assert!(child.wait().unwrap().success());
}

#[test]
fn reacts_to_a_replaced_certificate_within_three_seconds() {
    let d = node(3);
    let root = d.path().to_str().unwrap();
    let cfg = config(
        d.path(),
        "restart:\n  enabled: false\nmetrics:\n  textfile: \"\"\n",
    );
    // Renew once so that a 3-day certificate sits in the backup, ready to be put back.
    let st = Command::new(BIN)
        .args(["--root", root, "renew", "all", "--no-restart"])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let backups = d.path().join("var/lib/kubeadm-certd/backups");
    let b = std::fs::read_dir(&backups)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut child = Command::new(BIN)
        .args(["--root", root, "--config", cfg.to_str().unwrap(), "run"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3)); // first cycle and watches in place
    let pki = d.path().join("etc/kubernetes/pki");
    let soon = OffsetDateTime::now_utc() + Duration::from_secs(4 * 86_400);
    for f in ["apiserver.key", "apiserver.crt"] {
        std::fs::copy(b.join("etc/kubernetes/pki").join(f), pki.join(f)).unwrap();
    }
    assert!(not_after(&pki.join("apiserver.crt")) < soon);
    let start = Instant::now();
    let mut renewed = false;
    while start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(b) = std::fs::read(pki.join("apiserver.crt")) {
            if kubeadm_certd::pki::inspect::parse_cert_file(&b)
                .map(|c| c[0].not_after > soon)
                .unwrap_or(false)
            {
                renewed = true;
                break;
            }
        }
    }
    signal(&child, Signal::SIGTERM);
    assert!(child.wait().unwrap().success());
    assert!(renewed, "apiserver.crt was not renewed within 3 s");
}

#[test]
fn sigterm_during_a_restart_hold_leaves_nothing_parked() {
    let d = node(3);
    let root = d.path().to_str().unwrap();
    let cfg = config(
        d.path(),
        "restart:\n  minHold: 60s\n  timeout: 2m\nmetrics:\n  textfile: \"\"\n",
    );
    let manifests = d.path().join("etc/kubernetes/manifests");
    let before: Vec<(String, Vec<u8>)> = std::fs::read_dir(&manifests)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    let log = d.path().join("daemon.log");
    let mut child = Command::new(BIN)
        .args(["--root", root, "--config", cfg.to_str().unwrap(), "run"])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let parking = d.path().join("etc/kubernetes/tmp/kubeadm-certd-parked");
    let start = Instant::now();
    while std::fs::read_dir(&parking).map(|r| r.count()).unwrap_or(0) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing was parked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, Signal::SIGTERM);
    let st = child.wait().unwrap();
    assert!(st.success(), "{st:?}");
    assert_eq!(
        std::fs::read_dir(&parking).unwrap().count(),
        0,
        "a manifest was left parked"
    );
    // A stop request is not a failed restart: nothing is rolled back, the restarts stay owed.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        !log.contains(kubeadm_certd::logging::MSG_RESTART_FAILED) && !log.contains("ERROR"),
        "{log}"
    );
    assert!(log.contains("its restart stays owed"), "{log}");
    assert!(d
        .path()
        .join("var/lib/kubeadm-certd/restarts-owed.json")
        .exists());
    for (name, bytes) in before {
        assert_eq!(
            std::fs::read(manifests.join(&name)).unwrap(),
            bytes,
            "{name} changed"
        );
    }
}

#[test]
fn journald_receives_structured_fields() {
    if !Path::new("/lib/systemd/systemd-journald").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-journald is missing (scripts/test installs it)"
        );
        eprintln!("skipping: /lib/systemd/systemd-journald is missing");
        return;
    }
    let d = node(3);
    let cfg = config(
        d.path(),
        "restart:\n  enabled: false\nmetrics:\n  textfile: \"\"\n",
    );
    let script = d.path().join("j.sh");
    std::fs::write(
        &script,
        r#"set -e
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/log
[ -d /var/log/journal ] && mount -t tmpfs tmpfs /var/log/journal
mkdir -p /run/systemd/journal
/lib/systemd/systemd-journald &
JP=$!
for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
JOURNAL_STREAM=8:12345 "$BIN" --root "$ROOT" --config "$CFG" run --once
sleep 0.5
journalctl -o json --no-pager SYSLOG_IDENTIFIER=kubeadm-certd
kill $JP
"#,
    )
    .unwrap();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh"])
        .arg(&script)
        .env("BIN", BIN)
        .env("ROOT", d.path())
        .env("CFG", &cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let renewed: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["MESSAGE_ID"] == kubeadm_certd::logging::MSG_RENEWED)
        .collect();
    assert_eq!(renewed.len(), 11, "renewed entries: {entries:#?}");
    let api = renewed
        .iter()
        .find(|e| e["CERT_NAME"] == "apiserver")
        .expect("apiserver entry");
    assert_eq!(api["SYSLOG_IDENTIFIER"], "kubeadm-certd");
    assert_eq!(api["ACTION"], "renew");
    assert_eq!(api["RESULT"], "ok");
    assert!(api["CERT_PATH"]
        .as_str()
        .unwrap()
        .contains("/etc/kubernetes/pki/apiserver.crt"));
    // Every instant a person reads in the journal is RFC 3339 UTC, to the second.
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    for e in &entries {
        for (k, v) in e.as_object().unwrap() {
            let Some(v) = v.as_str() else { continue };
            if k.starts_with("NOT_") {
                assert!(
                    OffsetDateTime::parse(v, rfc3339).is_ok() && v.ends_with('Z') && v.len() == 20,
                    "{k}={v} is not RFC 3339 UTC"
                );
            }
            if k == "MESSAGE" {
                assert!(
                    !v.contains("+00:00:00") && !v.contains("Some(") && !v.contains("None"),
                    "MESSAGE shows a Rust default format: {v}"
                );
            }
        }
    }
    assert!(api["NOT_AFTER"].as_str().is_some());
    // Key material never reaches the journal.
    let all = String::from_utf8_lossy(&out.stdout);
    assert!(
        !all.contains("PRIVATE KEY") && !all.contains("client-key-data"),
        "key material logged"
    );
}
