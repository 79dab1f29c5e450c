use super::*;

fn proc(pid: i32, start_ticks: u64, start_time: SystemTime) -> ProcInfo {
    ProcInfo {
        pid,
        start_time,
        start_ticks,
    }
}

/// Which processes count as the new one after an unpark at `since`.
#[test]
fn only_a_process_started_after_the_unpark_and_not_an_old_one_is_new() {
    let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let secs = |s: u64| Duration::from_secs(s);
    let old = [proc(10, 500, since - secs(3600))];
    // Started after the unpark, another pid: new.
    let new = proc(11, 900, since + secs(2));
    assert_eq!(first_new(vec![new], &old, since), Some(new));
    // Within btime's one second of slack before it: still new.
    let early = proc(12, 880, since - Duration::from_millis(500));
    assert_eq!(first_new(vec![early], &old, since), Some(early));
    // Started well before the unpark (a pod the kubelet restarted during the hold): not new.
    let during_hold = proc(13, 700, since - secs(5));
    assert_eq!(first_new(vec![during_hold], &old, since), None);
    // An old process (same pid and start ticks) is never new, even when its wall-clock start
    // time reads later than the unpark (the clock was stepped back meanwhile).
    let stepped = proc(10, 500, since + secs(5));
    assert_eq!(first_new(vec![stepped], &old, since), None);
    // Its pid reused by a later process (other start ticks): new.
    let reused = proc(10, 950, since + secs(5));
    assert_eq!(first_new(vec![reused], &old, since), Some(reused));
    // The first new one in the list is taken, skipping the rest.
    assert_eq!(
        first_new(vec![during_hold, stepped, new, reused], &old, since),
        Some(new)
    );
}
