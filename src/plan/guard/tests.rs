use super::*;
use time::macros::datetime;

const H: Duration = Duration::from_secs(3600);
const D: Duration = Duration::from_secs(86_400);

#[test]
fn no_gain_needs_one_check_interval() {
    let old = datetime!(2026-12-19 00:00 UTC);
    let ca = CaId::FrontProxyCa;
    // Clamped to the same NotAfter: nothing gained.
    assert_eq!(
        no_gain(old, old, ca, old, H),
        Some(Hold::NoGain {
            ca,
            ca_not_after: old
        })
    );
    assert!(no_gain(old, old + H - Duration::from_secs(1), ca, old, H).is_some());
    assert_eq!(no_gain(old, old + H, ca, old + H, H), None);
}

#[test]
fn renewal_memory_holds_for_a_day() {
    let now = datetime!(2026-11-29 12:00 UTC);
    assert_eq!(recently_renewed(None, now), None);
    let at = now - 23 * H;
    assert_eq!(
        recently_renewed(Some(at), now),
        Some(Hold::RecentlyRenewed { at })
    );
    assert_eq!(recently_renewed(Some(now - D), now), None);
    // Renewed "in the future": the clock went back; hold.
    assert!(recently_renewed(Some(now + H), now).is_some());
}

#[test]
fn budget_counts_the_last_24_hours() {
    let now = datetime!(2026-11-29 12:00 UTC);
    let mut hist = BTreeMap::new();
    hist.insert(
        "kube-apiserver".to_string(),
        vec![now - 25 * H, now - 3 * H, now - 2 * H, now - H],
    );
    hist.insert("etcd".to_string(), vec![now - 25 * H, now - 30 * H]);
    let comps = vec![
        "etcd".to_string(),
        "kube-apiserver".to_string(),
        "kube-scheduler".to_string(),
    ];
    let (ok, over) = split_budget(&comps, &hist, 3, now);
    assert_eq!(ok, vec!["etcd".to_string(), "kube-scheduler".to_string()]);
    assert_eq!(over, vec![("kube-apiserver".to_string(), 3)]);
    let (ok, over) = split_budget(&comps, &hist, 4, now);
    assert_eq!(ok.len(), 3);
    assert!(over.is_empty());
}

#[test]
fn clock_behind_newest_not_before_is_refused_whatever_the_sync() {
    let nb = datetime!(2026-11-29 12:00 UTC);
    let newest = Some(("apiserver".to_string(), nb));
    let v = clock_verdict(
        &SyncStatus::Synced,
        None,
        TimeSync::Off,
        nb - CLOCK_SKEW - Duration::from_secs(1),
        newest.clone(),
    );
    assert_eq!(
        v,
        ClockVerdict::Behind {
            name: "apiserver".into(),
            not_before: nb
        }
    );
    // Within kubeadm's 5 minutes of backdating: fine.
    let v = clock_verdict(
        &SyncStatus::Synced,
        None,
        TimeSync::Off,
        nb - CLOCK_SKEW,
        newest,
    );
    assert_eq!(v, ClockVerdict::Go);
}

#[test]
fn unsynchronised_clock_by_mode() {
    let now = datetime!(2026-11-29 12:00 UTC);
    let un = SyncStatus::Unsynced;
    let early = Some(Duration::from_secs(60));
    let late = Some(Duration::from_secs(3600));
    assert!(matches!(
        clock_verdict(&un, late, TimeSync::Required, now, None),
        ClockVerdict::Defer { .. }
    ));
    assert_eq!(
        clock_verdict(&un, early, TimeSync::Off, now, None),
        ClockVerdict::Go
    );
    match clock_verdict(&un, early, TimeSync::Auto, now, None) {
        ClockVerdict::Defer { why } => assert!(why.contains("1m after boot"), "{why}"),
        v => panic!("{v:?}"),
    }
    assert_eq!(
        clock_verdict(&un, late, TimeSync::Auto, now, None),
        ClockVerdict::GoUnsynced
    );
    assert_eq!(
        clock_verdict(&SyncStatus::Synced, early, TimeSync::Required, now, None),
        ClockVerdict::Go
    );
    assert!(matches!(
        clock_verdict(
            &SyncStatus::Unknown("EPERM".into()),
            late,
            TimeSync::Required,
            now,
            None
        ),
        ClockVerdict::Defer { .. }
    ));
}

fn set(name: &str) -> BackupSet {
    BackupSet {
        name: name.into(),
        made: backup_time(name),
    }
}

#[test]
fn backup_names_parse() {
    assert_eq!(
        backup_time("20261129T104237Z"),
        Some(datetime!(2026-11-29 10:42:37 UTC))
    );
    assert_eq!(
        backup_time("20261129T104237Z-3"),
        Some(datetime!(2026-11-29 10:42:37 UTC))
    );
    assert_eq!(backup_time("my-copy"), None);
}

#[test]
fn retention_keeps_newest_count_age_and_needed() {
    let now = datetime!(2026-11-29 12:00 UTC);
    // 15 sets, one a day, newest first.
    let mut sets: Vec<BackupSet> = (0..15)
        .map(|i| {
            let t = now - D * i;
            let n = format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            set(&n)
        })
        .collect();
    sets.push(set("hand-made"));
    let mut needed = BTreeMap::new();
    needed.insert(sets[12].name.clone(), "the journal names it".to_string());
    let r = retention(&sets, 10, 400 * D, now, &needed);
    assert_eq!(r[0], Some(Keep::Newest));
    assert!(r[1..10].iter().all(|k| k == &Some(Keep::Retained)));
    assert_eq!(r[10], None);
    assert_eq!(r[11], None);
    assert_eq!(r[12], Some(Keep::Needed("the journal names it".into())));
    assert_eq!(r[13], None);
    assert_eq!(r[15], Some(Keep::Foreign));
    // maxAge: only sets younger than 3 days (and the newest, whatever its age).
    let r = retention(&sets, 10, 3 * D, now, &BTreeMap::new());
    assert_eq!(r.iter().filter(|k| k == &&Some(Keep::Retained)).count(), 3);
    let r = retention(&sets[5..6], 10, D, now, &BTreeMap::new());
    assert_eq!(r, vec![Some(Keep::Newest)]);
}

#[test]
fn the_loop_breaker_holds_a_renewed_certificate_unless_it_would_expire_while_held() {
    use crate::pki::table::HANDLERS;
    use crate::plan::Item;
    let now = datetime!(2026-11-29 12:00 UTC);
    let at = now - 2 * H;
    let item = |name: &str, not_after| Item {
        handler: HANDLERS.iter().find(|h| h.name == name).unwrap(),
        old_not_after: Some(not_after),
        decision: Decision::Renew {
            new_not_after: now + 365 * D,
            clamped: false,
        },
    };
    let mut plan = Plan {
        items: vec![
            // Due again two hours after the daemon renewed it, 20 days left: a loop; hold.
            item("apiserver", now + 20 * D),
            // Put back by hand, ending in 10 hours: expires before the hold ends; renew.
            item("front-proxy-client", now + 10 * H),
            // Never renewed by the daemon: untouched.
            item("admin.conf", now + 20 * D),
        ],
        unknown: Vec::new(),
    };
    let mut memory = BTreeMap::new();
    memory.insert("apiserver".to_string(), at);
    memory.insert("front-proxy-client".to_string(), at);
    let r = hold_recent(&mut plan, &memory, now, H);
    assert_eq!(
        r.iter().map(|r| (r.name, r.held)).collect::<Vec<_>>(),
        [("apiserver", true), ("front-proxy-client", false)]
    );
    assert_eq!(
        plan.items[0].decision,
        Decision::Skip(Skip::Held(Hold::RecentlyRenewed { at }))
    );
    assert!(matches!(plan.items[1].decision, Decision::Renew { .. }));
    assert!(matches!(plan.items[2].decision, Decision::Renew { .. }));
    // The margin counts: ending just after the hold plus one interval is still held.
    let mut plan = Plan {
        items: vec![item(
            "apiserver",
            at + RENEWAL_MEMORY + H + Duration::from_secs(1),
        )],
        unknown: Vec::new(),
    };
    assert!(hold_recent(&mut plan, &memory, now, H)[0].held);
}
