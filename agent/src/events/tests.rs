//! The event log (ring, cursor, truncation, byte budget) and XID de-duplication.

use super::*;

fn ev(code: u64) -> NewEvent {
    NewEvent {
        gpu: Some(0),
        uuid: None,
        kind: EventKind::Xid,
        code: Some(code),
        message: String::new(),
        severity: Severity::Fatal,
        action: None,
        source: "test".into(),
    }
}

#[test]
fn page_returns_events_after_the_cursor_and_the_next_cursor() {
    let mut log = EventLog::new(10, "run".into());
    for c in 1..=5 {
        log.push(ev(c), SystemTime::UNIX_EPOCH);
    }
    let p = log.page(2, 100);
    assert_eq!(
        p.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert_eq!(p.next, 5);
    assert!(!p.truncated);
    let p = log.page(5, 100);
    assert!(p.events.is_empty());
    assert_eq!(p.next, 5);
    let p = log.page(0, 2);
    assert_eq!(
        p.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(p.next, 2);
    assert_eq!(p.events[0].time, "1970-01-01T00:00:00.000Z");
}

/// Regression (hardening follow-up): a 50 MB message made `/v1/events` a 52 MB page
/// that took 5.5 s, and the control plane's read timed out on every scrape.
#[test]
fn messages_are_capped_whatever_their_source() {
    let mut log = EventLog::new(10, "run".into());
    for (source, message) in [
        ("kmsg", "é".repeat(3_000_000)),
        ("plugin:p", "x".repeat(MAX_MESSAGE_BYTES + 1)),
        ("nvml", "x".repeat(MAX_MESSAGE_BYTES)),
    ] {
        let mut e = ev(1);
        e.source = source.into();
        e.message = message;
        log.push(e, SystemTime::UNIX_EPOCH);
    }
    let mut e = ev(1);
    e.source = "s".repeat(100_000);
    log.push(e, SystemTime::UNIX_EPOCH);
    let p = log.page(0, 100);
    for e in &p.events[..2] {
        assert!(e.message.len() <= MAX_MESSAGE_BYTES, "{}", e.message.len());
        assert!(e.message.ends_with(CUT_MARKER), "{}", e.source);
    }
    assert_eq!(
        p.events[2].message,
        "x".repeat(MAX_MESSAGE_BYTES),
        "at the cap: whole"
    );
    assert!(p.events[3].source.len() <= MAX_LABEL_BYTES);
}

#[test]
fn a_page_has_a_byte_budget_and_says_there_is_more() {
    let mut log = EventLog::new(100, "run".into());
    for c in 1..=50 {
        let mut e = ev(c);
        e.message = "m".repeat(MAX_MESSAGE_BYTES);
        log.push(e, SystemTime::UNIX_EPOCH);
    }
    let per_event = json_size(&log.page(0, 1).events[0]);
    let (mut after, mut seen) = (0, Vec::new());
    loop {
        let p = log.page_within(after, 1000, 10 * per_event);
        assert!(p.events.len() <= 10, "{}", p.events.len());
        seen.extend(p.events.iter().map(|e| e.seq));
        after = p.next;
        if !p.more {
            break;
        }
    }
    assert_eq!(
        seen,
        (1..=50).collect::<Vec<_>>(),
        "every event, once, in order"
    );
    // One event larger than the budget still comes, alone.
    let p = log.page_within(0, 1000, 1);
    assert_eq!(p.events.len(), 1);
    assert!(p.more);
    // The serialized page stays within the budget (the estimate is not too low).
    let full = log.page(0, 10_000);
    assert!(serde_json::to_vec(&full).unwrap().len() <= PAGE_BUDGET_BYTES + per_event);
}

#[test]
fn a_full_ring_evicts_the_oldest_and_says_the_reader_missed_some() {
    let mut log = EventLog::new(3, "run".into());
    for c in 1..=5 {
        log.push(ev(c), SystemTime::UNIX_EPOCH);
    }
    let p = log.page(0, 100);
    assert_eq!(
        p.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert!(p.truncated);
    assert!(!log.page(2, 100).truncated);
    assert_eq!(log.counts()[&("xid", "fatal")], 5);
}

#[test]
fn a_cursor_from_an_earlier_agent_run_starts_over_so_nothing_is_lost() {
    let mut log = EventLog::new(3, "run".into());
    log.push(ev(1), SystemTime::UNIX_EPOCH);
    let p = log.page(500, 100);
    assert_eq!(p.events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1]);
    assert_eq!(p.next, 1);
}

#[test]
fn the_same_xid_from_both_sources_counts_once() {
    let t0 = Instant::now();
    let mut d = XidDedup::new(Duration::from_secs(10));
    assert!(d.admit(t0, Some(0), 79, XidSource::Nvml));
    assert!(!d.admit(t0 + Duration::from_secs(1), Some(0), 79, XidSource::Kmsg));
    // A second XID 79 is new again, from either source.
    assert!(d.admit(t0 + Duration::from_secs(2), Some(0), 79, XidSource::Kmsg));
    assert!(d.admit(t0 + Duration::from_secs(2), Some(0), 79, XidSource::Kmsg));
    // Other GPU or other code: new.
    assert!(d.admit(t0 + Duration::from_secs(3), Some(1), 79, XidSource::Nvml));
    assert!(d.admit(t0 + Duration::from_secs(3), Some(0), 13, XidSource::Nvml));
}

#[test]
fn reports_further_apart_than_the_window_are_two_xids() {
    let t0 = Instant::now();
    let mut d = XidDedup::new(Duration::from_secs(10));
    assert!(d.admit(t0, Some(0), 79, XidSource::Kmsg));
    assert!(d.admit(t0 + Duration::from_secs(11), Some(0), 79, XidSource::Nvml));
}
