//! Guard rails (issue 12) through the real binary on temp-dir nodes: configs that would make
//! a renewal due at once are refused (at start and on SIGHUP, which keeps the old config), a
//! CA near its end blocks renewals that gain nothing, backups are pruned but never what
//! recovery needs. The clock checks go through the `clock::now` and `clock::adjtimex`
//! failpoints, so they run with `--features failpoints` (scripts/test does).

mod common;

use common::*;
use kubeadm_certd::config::{Settings, TimeSync};
use kubeadm_certd::pki::inspect::KeyAlg;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const DAY: Duration = Duration::from_secs(86_400);
/// Bounds every wait; never a speed requirement.
const LIMIT: Duration = Duration::from_secs(60);

fn ec_node(f: impl FnOnce(&mut kubeadm_certd::testkit::nodebuilder::NodeSpec)) -> Node {
    Node::build(|s| {
        s.key = KeyAlg::EcP256;
        f(s)
    })
}

fn not_after(path: &Path) -> OffsetDateTime {
    let b = std::fs::read(path).unwrap();
    kubeadm_certd::pki::inspect::parse_cert_file(&b).unwrap()[0].not_after
}

const QUIET: &str = "restart:\n  enabled: false\nmetrics:\n  textfile: \"\"\n";

#[test]
fn a_config_that_makes_renewals_due_at_once_is_refused_at_start() {
    let n = ec_node(|_| {});
    let before = n.tree();
    for (cfg, gap) in [
        ("certificateValidity: 20d\nrenewBefore: 30d\n", false),
        ("certificateValidity: 30d\n", false),
        // Longer than renewBefore, but by less than one checkInterval (1h) + jitter + restart.
        ("certificateValidity: 30d 30m\nrenewBefore: 30d\n", true),
    ] {
        for cmd in [&["run", "--once"][..], &["run"][..], &["renew", "due"][..]] {
            let out = n.run_with_config(&format!("{QUIET}{cfg}"), cmd);
            out.assert_code(1);
            out.assert_one_error(&["certificateValidity", "renewBefore"]);
            if gap {
                out.assert_one_error(&["checkInterval", "jitter", "restart"]);
            }
        }
    }
    n.tree()
        .assert_same(&before, "refused configs change nothing");
}

fn days(n: u64) -> Duration {
    DAY * n as u32
}

#[test]
fn validity_not_longer_than_the_window_is_refused_naming_both_keys() {
    for text in [
        "certificateValidity: 20d\nrenewBefore: 30d\n",
        "certificateValidity: 30d\n",
        // 10 m apart, but a scan every hour: due again before the next scan.
        "certificateValidity: 30d 10m\nrenewBefore: 30d\n",
    ] {
        let e = format!("{:#}", Settings::parse(text).unwrap_err());
        assert!(
            e.contains("certificateValidity") && e.contains("renewBefore"),
            "{text}: {e}"
        );
    }
    let s = Settings::parse("certificateValidity: 31d\nrenewBefore: 30d\n").unwrap();
    assert_eq!(s.certificate_validity, days(31));
}

#[test]
fn guard_keys() {
    let s = Settings::parse("# defaults\n").unwrap();
    assert_eq!(s.restart.max_per_day, 3);
    assert_eq!(s.backups.keep, 10);
    assert_eq!(s.backups.max_age, days(400));
    assert_eq!(s.require_time_sync, TimeSync::Auto);
    let s = Settings::parse(
        "restart:\n  maxPerDay: 5\nbackups:\n  keep: 2\n  maxAge: 30d\nrequireTimeSync: false\n",
    )
    .unwrap();
    assert_eq!(s.restart.max_per_day, 5);
    assert_eq!(s.backups.keep, 2);
    assert_eq!(s.backups.max_age, days(30));
    assert_eq!(s.require_time_sync, TimeSync::Off);
    let s = Settings::parse("requireTimeSync: true\n").unwrap();
    assert_eq!(s.require_time_sync, TimeSync::Required);
    for (bad, key) in [
        ("requireTimeSync: sometimes\n", "requireTimeSync"),
        ("restart:\n  maxPerDay: 0\n", "restart.maxPerDay"),
        ("backups:\n  keep: 0\n", "backups.keep"),
        ("backups:\n  maxAge: soon\n", "backups.maxAge"),
    ] {
        let e = format!("{:#}", Settings::parse(bad).unwrap_err());
        assert!(e.contains(key), "{bad}: {e}");
    }
}

/// Wait until `f` holds, polling.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sighup_with_such_a_config_is_refused_and_the_old_config_kept() {
    let n = ec_node(|s| s.leaf_left = 300 * DAY);
    let old_prom = n.path("/old.prom");
    let new_prom = n.path("/new.prom");
    let cfg = n.outside("config.yaml");
    std::fs::write(
        &cfg,
        "restart:\n  enabled: false\nmetrics:\n  textfile: /old.prom\n",
    )
    .unwrap();
    let err = n.outside("stderr");
    let mut child = Command::new(BIN)
        .arg("--root")
        .arg(&n.root)
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .env_remove("JOURNAL_STREAM")
        .env("NO_COLOR", "1")
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    wait_for("the first cycle's metrics", || old_prom.exists());
    std::fs::write(
        &cfg,
        "restart:\n  enabled: false\nmetrics:\n  textfile: /new.prom\ncertificateValidity: 20d\nrenewBefore: 30d\n",
    )
    .unwrap();
    std::fs::remove_file(&old_prom).unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for("the rejection in the log", || {
        std::fs::read_to_string(&err).unwrap().contains("rejected")
    });
    // A change in a watched directory runs a cycle: with the old config, metrics go to the
    // old path.
    std::fs::write(n.pki("unrelated.txt"), "x").unwrap();
    wait_for("a cycle under the old config", || old_prom.exists());
    assert!(child.try_wait().unwrap().is_none(), "the daemon exited");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(&err).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("rejected"))
        .expect("a rejection line");
    assert!(
        line.contains("certificateValidity") && line.contains("renewBefore"),
        "{line}"
    );
    assert!(!new_prom.exists(), "the rejected config was applied");
}

/// A node whose CAs end in 20 days and whose leaves in 3.
fn near_expiry_ca_node() -> Node {
    ec_node(|s| s.ca_left = 20 * DAY)
}

#[test]
fn near_expiry_ca_blocks_renewals_that_gain_nothing() {
    let n = near_expiry_ca_node();
    let fp = n.pki("front-proxy-client.crt");
    let ca_end = not_after(&n.pki("front-proxy-ca.crt"));
    n.run_with_config(QUIET, &["renew", "due"]).ok();
    assert_eq!(not_after(&fp), ca_end, "clamped to the CA's NotAfter");
    assert_eq!(n.backups().len(), 1);
    let after_first = n.tree();

    // Still due (20 days < renewBefore), but renewing cannot move NotAfter: blocked.
    let dry = n.run_with_config(QUIET, &["renew", "due", "--dry-run"]);
    dry.ok();
    let line = dry
        .stdout
        .lines()
        .find(|l| l.contains("front-proxy-client"))
        .unwrap();
    assert!(
        line.contains("skip") && line.contains("blocked by CA runway"),
        "{line}"
    );
    assert!(line.contains("front-proxy-ca"), "{line}");
    assert!(!dry.stdout.contains("  renew "), "{}", dry.stdout);
    let again = n.run_with_config(QUIET, &["renew", "due"]);
    again.ok();
    assert!(
        again.stdout.contains("blocked by CA runway"),
        "{}",
        again.stdout
    );
    n.tree()
        .assert_same(&after_first, "renew due renewed again");
    assert_eq!(n.backups().len(), 1, "a second backup set");

    // check-expiration: status `blocked` in the JSON, a note on stderr.
    let j = n.run_with_config(QUIET, &["check-expiration", "-o", "json"]);
    j.ok();
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    let fpc = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "front-proxy-client")
        .unwrap();
    assert_eq!(fpc["status"], "blocked", "{fpc}");
    assert!(
        j.stderr
            .contains("front-proxy-client is due but blocked by CA runway"),
        "{}",
        j.stderr
    );

    // Named on the command line, it is still renewed, with a note saying why it gains nothing.
    let forced = n.run_with_config(QUIET, &["renew", "front-proxy-client"]);
    forced.ok();
    assert!(
        forced.stdout.contains(&format!(
            "renewing front-proxy-client gains nothing: its CA ends at {}, ",
            kubeadm_certd::plan::report::format::kubeadm_date(ca_end)
        )),
        "{}",
        forced.stdout
    );
    assert_eq!(n.backups().len(), 2);
}

/// `<stateDir>/backups/<stamp>` for `t`.
fn set_name(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[test]
fn pruning_fifteen_sets_keeps_ten_the_journals_and_the_current_keys() {
    let n = ec_node(|s| s.leaf_left = 300 * DAY);
    let backups = n.root.join(STATE).join("backups");
    let now = OffsetDateTime::now_utc();
    // 15 sets, one a day, newest first; each holds an unrelated old key for apiserver.
    let names: Vec<String> = (0..15u32).map(|i| set_name(now - DAY * (i + 1))).collect();
    let other = kubeadm_certd::pki::keys::generate(KeyAlg::EcP256).unwrap();
    for name in &names {
        let d = backups.join(name).join("etc/kubernetes/pki");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("apiserver.key"), other.serialize_pem()).unwrap();
    }
    // Set 12 is referenced by a journal; set 13 holds the key of the current apiserver.crt.
    let journal = serde_json::json!({
        "backup_dir": format!("/{STATE}/backups/{}", names[11]),
        "entries": [],
    });
    std::fs::write(n.root.join(STATE).join("journal.json"), journal.to_string()).unwrap();
    std::fs::copy(
        n.pki("apiserver.key"),
        backups
            .join(&names[12])
            .join("etc/kubernetes/pki/apiserver.key"),
    )
    .unwrap();
    let journal_path = n.root.join(STATE).join("journal.json");
    assert!(
        journal_path.exists(),
        "the journal file name is the one the store uses"
    );

    let show = n.run(&["backups"]);
    show.ok();
    assert!(show.stdout.contains("15 set(s)"), "{}", show.stdout);
    assert!(show.stdout.contains("3 to prune"), "{}", show.stdout);
    assert!(show.stdout.contains("KiB") || show.stdout.contains(" B"));
    let line = |name: &str| {
        show.stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{}", show.stdout))
            .to_string()
    };
    assert!(line(&names[11]).contains("journal"), "{}", line(&names[11]));
    assert!(
        line(&names[12]).contains("apiserver"),
        "{}",
        line(&names[12])
    );
    assert!(line(&names[10]).contains("to prune"));

    let p = n.run(&["backups", "--prune"]);
    p.ok();
    let left: Vec<String> = n
        .backups()
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut want: Vec<String> = names[..10].to_vec();
    want.push(names[11].clone());
    want.push(names[12].clone());
    want.sort();
    assert_eq!(left, want, "{}", p.stdout);
    assert!(journal_path.exists(), "pruning ran recovery");

    // maxAge: sets older than 5 days go, except what recovery needs.
    let out = n.run_with_config("backups:\n  maxAge: 5d\n", &["backups", "--prune"]);
    out.ok();
    assert_eq!(n.backups().len(), 4 + 2, "{}", out.stdout);
}

/// Run `run --once` with FAILPOINTS set.
#[cfg(feature = "failpoints")]
fn once_with(n: &Node, cfg: &str, failpoints: &str) -> Out {
    let c = n.outside("config.yaml");
    std::fs::write(&c, cfg).unwrap();
    let o = Command::new(BIN)
        .arg("--root")
        .arg(&n.root)
        .arg("--config")
        .arg(&c)
        .args(["run", "--once"])
        .env("FAILPOINTS", failpoints)
        .env("NO_COLOR", "1")
        .env_remove("JOURNAL_STREAM")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Out {
        args: vec![format!("run --once FAILPOINTS={failpoints}")],
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn renewal_refused_while_the_clock_is_behind_the_newest_not_before_then_done() {
    // CAs made long ago (valid an hour back too); admin.conf renewed just now, so the newest
    // NotBefore is now - 5 min. Nothing but the clock guard stops the other renewals.
    let n = ec_node(|s| s.ca_left = 3000 * DAY);
    n.run(&["renew", "admin.conf", "--no-restart"]).ok();
    let api = n.pki("apiserver.crt");
    let before = n.tree();
    // One hour back: earlier than every NotBefore (now - 5 min) minus 5 min.
    let out = once_with(&n, QUIET, "clock::now=return(-3600)");
    out.ok();
    assert!(
        out.stderr
            .contains(kubeadm_certd::logging::MSG_CLOCK_BEHIND),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("went backwards"), "{}", out.stderr);
    n.tree()
        .assert_same(&before, "renewed with the clock behind");
    assert_eq!(n.backups().len(), 1, "only the admin.conf renewal's set");
    // The clock is right again: the next cycle renews.
    let out = once_with(&n, QUIET, "clock::adjtimex=return(sync)");
    out.ok();
    assert!(
        not_after(&api) > OffsetDateTime::now_utc() + 300 * DAY,
        "{}",
        out.stderr
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn renewal_deferred_while_unsynchronised_then_done() {
    let n = ec_node(|_| {});
    let api = n.pki("apiserver.crt");
    let before = n.tree();
    let strict = format!("{QUIET}requireTimeSync: true\n");
    let out = once_with(&n, &strict, "clock::adjtimex=return(unsync)");
    out.ok();
    assert!(
        out.stderr
            .contains(kubeadm_certd::logging::MSG_CLOCK_UNSYNCED),
        "{}",
        out.stderr
    );
    n.tree()
        .assert_same(&before, "renewed on an unsynchronised clock");
    // auto: deferred within 10 minutes of boot, renewed after that with a warning.
    let auto = format!("{QUIET}requireTimeSync: auto\n");
    let out = once_with(
        &n,
        &auto,
        "clock::adjtimex=return(unsync);clock::since-boot=return(2m)",
    );
    out.ok();
    assert!(out.stderr.contains("waiting up to 10m"), "{}", out.stderr);
    n.tree().assert_same(&before, "renewed within auto's wait");
    // Synchronised: the next cycle renews.
    let out = once_with(&n, &strict, "clock::adjtimex=return(sync)");
    out.ok();
    assert!(
        not_after(&api) > OffsetDateTime::now_utc() + 300 * DAY,
        "{}",
        out.stderr
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn auto_goes_on_with_a_warning_ten_minutes_after_boot() {
    let n = ec_node(|_| {});
    let api = n.pki("apiserver.crt");
    let out = once_with(
        &n,
        QUIET,
        "clock::adjtimex=return(unsync);clock::since-boot=return(11m)",
    );
    out.ok();
    assert!(
        out.stderr
            .contains("renewing anyway (requireTimeSync: auto"),
        "{}",
        out.stderr
    );
    assert!(not_after(&api) > OffsetDateTime::now_utc() + 300 * DAY);
}

/// Right after a renewal, naming the certificate again gains nothing, and not because of the
/// CA: the note gives the certificate's own dates, never "its CA ends at" with the new
/// NotAfter (the CA ends years later).
#[test]
fn renewing_again_right_away_gains_nothing_and_the_note_says_why() {
    let n = ec_node(|s| s.leaf_left = 300 * DAY);
    n.run_with_config(QUIET, &["renew", "apiserver"]).ok();
    let ends = not_after(&n.pki("apiserver.crt"));
    let date = kubeadm_certd::plan::report::format::kubeadm_date(ends);
    for args in [
        &["renew", "apiserver"][..],
        &["renew", "all", "--dry-run"][..],
    ] {
        let out = n.run_with_config(QUIET, args);
        out.ok();
        let note = out
            .stdout
            .lines()
            .find(|l| l.starts_with("note: renewing apiserver gains nothing"))
            .unwrap_or_else(|| panic!("{args:?}: no note:\n{}", out.stdout));
        assert!(!note.contains("CA"), "{args:?}: {note}");
        assert!(note.contains(&format!("it ends at {date} ")), "{note}");
    }
}
