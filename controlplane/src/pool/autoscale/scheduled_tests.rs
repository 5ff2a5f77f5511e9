use super::*;
use crate::model::pool::{AutoscalerSpec, QueueSpec, WindowSpec};

fn at(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<Timestamp>()
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .as_millisecond()
}

fn window(days: &[&str], start: &str, end: &str, min: u32, max: u32) -> WindowSpec {
    WindowSpec {
        days: days.iter().map(|d| d.to_string()).collect(),
        start: start.into(),
        end: end.into(),
        min_nodes: min,
        max_nodes: max,
    }
}

fn sched(tz: &str, windows: Vec<WindowSpec>, fallback: Option<AutoscalerSpec>) -> Scheduled {
    let fallback = fallback.map(|f| crate::pool::autoscale::build(&f, "fallback").expect("valid"));
    let spec = ScheduledSpec {
        timezone: tz.into(),
        windows,
        fallback: None,
    };
    Scheduled::new(&spec, "autoscaler", fallback).expect("valid")
}

fn nodes(s: &Scheduled, current: u32, when: &str) -> Option<u32> {
    let m = Metrics {
        capacity: current,
        ..Metrics::default()
    };
    let r = s.recommend(&m, at(when));
    assert!(r.reason.starts_with("scheduled:"), "{}", r.reason);
    r.nodes
}

#[test]
fn window_boundaries_start_inclusive_end_exclusive_on_listed_days() {
    // 2026-11-30 is a Monday; New York is UTC-5 in winter.
    let s = sched(
        "America/New_York",
        vec![window(
            &["mon", "tue", "wed", "thu", "fri"],
            "09:00",
            "17:00",
            4,
            8,
        )],
        None,
    );
    for (when, want) in [
        ("2026-11-30T13:59:59Z", 0), // 08:59:59 local: before
        ("2026-11-30T14:00:00Z", 4), // 09:00: opens
        ("2026-11-30T21:59:00Z", 4), // 16:59: still open
        ("2026-11-30T22:00:00Z", 0), // 17:00: closed
        ("2026-11-29T15:00:00Z", 0), // Sunday 10:00: not a listed day
    ] {
        assert_eq!(nodes(&s, 2, when), Some(want), "{when}");
    }
    assert_eq!(
        nodes(&s, 6, "2026-11-30T15:00:00Z"),
        Some(6),
        "within bounds: kept"
    );
    assert_eq!(
        nodes(&s, 12, "2026-11-30T15:00:00Z"),
        Some(8),
        "above: the window's max"
    );
}

#[test]
fn a_window_across_midnight_belongs_to_the_day_it_starts() {
    // Friday 22:00 → Saturday 06:00, UTC.
    let s = sched("UTC", vec![window(&["fri"], "22:00", "06:00", 3, 3)], None);
    for (when, want) in [
        ("2026-12-04T21:59:00Z", 0), // Fri 21:59
        ("2026-12-04T22:00:00Z", 3), // Fri 22:00
        ("2026-12-04T23:59:59Z", 3),
        ("2026-12-05T00:00:00Z", 3), // Sat 00:00, carried over from Friday
        ("2026-12-05T05:59:00Z", 3),
        ("2026-12-05T06:00:00Z", 0),
        ("2026-12-04T03:00:00Z", 0), // Fri 03:00: Thursday is not listed
        ("2026-12-05T22:30:00Z", 0), // Sat 22:30: Saturday is not listed
    ] {
        assert_eq!(nodes(&s, 1, when), Some(want), "{when}");
    }
}

#[test]
fn windows_follow_the_wall_clock_across_a_dst_change() {
    // Europe/Berlin goes from UTC+1 to UTC+2 at 01:00 UTC on Sunday 2026-03-29.
    let s = sched(
        "Europe/Berlin",
        vec![window(&[], "08:00", "09:00", 5, 5)],
        None,
    );
    for (when, want) in [
        ("2026-03-28T06:59:00Z", 0), // Sat 07:59 CET
        ("2026-03-28T07:00:00Z", 5), // Sat 08:00 CET
        ("2026-03-28T07:59:00Z", 5),
        ("2026-03-29T06:00:00Z", 5), // Sun 08:00 CEST: an hour earlier in UTC
        ("2026-03-29T07:00:00Z", 0), // Sun 09:00 CEST
    ] {
        assert_eq!(nodes(&s, 1, when), Some(want), "{when}");
    }
    // A window in the skipped hour does not occur that night.
    let skipped = sched(
        "Europe/Berlin",
        vec![window(&["sun"], "02:00", "03:00", 5, 5)],
        None,
    );
    for when in [
        "2026-03-29T00:59:00Z",
        "2026-03-29T01:00:00Z",
        "2026-03-29T01:30:00Z",
    ] {
        assert_eq!(nodes(&skipped, 1, when), Some(0), "{when}");
    }
    assert_eq!(
        nodes(&skipped, 1, "2026-03-22T01:30:00Z"),
        Some(5),
        "a week before: 02:30 CET"
    );
}

#[test]
fn the_first_matching_window_wins_and_the_fallback_decides_outside_and_within() {
    let queue = AutoscalerSpec::Queue(QueueSpec { jobs_per_node: 1.0 });
    let s = sched(
        "UTC",
        vec![
            window(&[], "08:00", "18:00", 4, 10),
            window(&[], "06:00", "20:00", 1, 2),
        ],
        Some(queue),
    );
    let m = |busy| Metrics {
        capacity: 3,
        slots_busy: Some(busy),
        ..Metrics::default()
    };
    let r = |busy, when| s.recommend(&m(busy), at(when)).nodes;
    assert_eq!(
        r(7, "2026-11-30T12:00:00Z"),
        Some(7),
        "the first window: the queue's 7"
    );
    assert_eq!(
        r(20, "2026-11-30T12:00:00Z"),
        Some(10),
        "held to the window's max"
    );
    assert_eq!(
        r(1, "2026-11-30T12:00:00Z"),
        Some(4),
        "held to the window's min"
    );
    assert_eq!(
        r(7, "2026-11-30T07:00:00Z"),
        Some(2),
        "only the second window"
    );
    assert_eq!(
        r(7, "2026-11-30T22:00:00Z"),
        Some(7),
        "outside: the fallback"
    );
}

/// A fresh machine without /usr/share/zoneinfo still knows the zones: the tz database is
/// bundled into the binary (jiff's `tzdb-bundle-always`).
#[test]
fn time_zones_resolve_from_the_bundled_database() {
    let db = jiff::tz::TimeZoneDatabase::bundled();
    for tz in ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"] {
        assert!(db.get(tz).is_ok(), "{tz}");
    }
    assert!(db.get("Mars/Olympus").is_err());
}
