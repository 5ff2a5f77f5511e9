//! The fleet's scrape bookkeeping.

use super::*;
use crate::model::Source;

/// A notice's scrape never runs beside another scrape of the same node, and leaves the
/// node's phase where it was.
#[test]
fn a_claimed_node_is_not_scraped_twice_at_once_and_keeps_its_phase() {
    let fleet = fleet_every(60);
    let row = NodeRow::fresh(
        "node-1".into(),
        "n1",
        "default",
        &Default::default(),
        Some("http://127.0.0.1:9".into()),
        Status::Active,
        Source::Static,
        0,
    );
    fleet.sync(&row, 0);
    let next_at = fleet.get("node-1").unwrap().next_at;
    let job = fleet.claim("node-1").expect("idle node");
    assert_eq!(job.address, "http://127.0.0.1:9");
    assert!(fleet.claim("node-1").is_none(), "a scrape is in flight");
    assert!(
        fleet.due(i64::MAX / 2).is_empty(),
        "nor scheduled beside it"
    );
    fleet.failed("node-1", "refused".into(), Duration::ZERO, 1);
    assert_eq!(fleet.get("node-1").unwrap().next_at, next_at);
    assert!(
        fleet.claim("node-1").is_some(),
        "free again after its outcome"
    );
    assert!(fleet.claim("node-2").is_none(), "unknown node");
}

/// A fleet scraped every `secs` seconds, offline after 3 missed scrapes.
fn fleet_every(secs: u64) -> Fleet {
    Fleet::new(FleetSettings {
        interval: Duration::from_secs(secs),
        offline_after: 3,
        replica: "r".into(),
        health: HealthSettings::default(),
    })
}

fn row(id: &str, address: &str) -> NodeRow {
    NodeRow::fresh(
        id.into(),
        id,
        "default",
        &Default::default(),
        Some(address.into()),
        Status::Active,
        Source::Static,
        0,
    )
}

/// The schedule hands out each target once per interval in due order, skips a target still
/// in flight until it is free, follows an address change at once and forgets removed ones.
#[test]
fn the_schedule_hands_out_each_due_target_once_per_interval() {
    let fleet = fleet_every(10);
    for i in 0..50 {
        fleet.sync(
            &row(&format!("node-{i}"), &format!("http://10.0.0.{i}:9410")),
            0,
        );
    }
    assert!(
        fleet.idle_for(0, 60_000) <= 10_000,
        "the first is due within an interval"
    );
    // Over three intervals, millisecond by millisecond in 7 ms ticks: each target three times.
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    let mut now = 0;
    while now < 30_000 {
        for job in fleet.due(now) {
            seen.entry(job.node_id.clone()).or_default().push(now);
            fleet.failed(&job.node_id, "refused".into(), Duration::ZERO, now);
        }
        now += 7;
    }
    assert_eq!(seen.len(), 50);
    for (id, times) in &seen {
        assert_eq!(times.len(), 3, "{id}: {times:?}");
        assert!(
            times.windows(2).all(|w| (w[1] - w[0] - 10_000).abs() <= 7),
            "{id}: {times:?}"
        );
    }
    // A target in flight when it is due again waits for its outcome, then goes at once.
    let t = fleet.get("node-0").unwrap().next_at;
    let first = fleet.due(t);
    assert!(first.iter().any(|j| j.node_id == "node-0"));
    for j in first.iter().filter(|j| j.node_id != "node-0") {
        fleet.failed(&j.node_id, "refused".into(), Duration::ZERO, t);
    }
    let t2 = fleet.get("node-0").unwrap().next_at;
    let others = fleet.due(t2);
    assert!(
        others.iter().all(|j| j.node_id != "node-0"),
        "still in flight"
    );
    for j in others {
        fleet.failed(&j.node_id, "refused".into(), Duration::ZERO, t2);
    }
    assert_eq!(
        fleet.idle_for(t2, 60_000),
        0,
        "an overdue target keeps the ticks short"
    );
    fleet.failed("node-0", "timeout".into(), Duration::ZERO, t2);
    let again = fleet.due(t2 + 1);
    assert!(
        again.iter().any(|j| j.node_id == "node-0"),
        "free: due at once"
    );
    for j in again {
        fleet.failed(&j.node_id, "refused".into(), Duration::ZERO, t2 + 1);
    }
    // A new address is scraped at once, once.
    fleet.sync(&row("node-1", "http://10.0.9.9:9410"), t2);
    let jobs: Vec<_> = fleet
        .due(t2 + 2)
        .into_iter()
        .filter(|j| j.node_id == "node-1")
        .collect();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].address, "http://10.0.9.9:9410");
    // A removed target never comes up again.
    fleet.remove("node-2");
    let mut now = t2;
    while now < t2 + 20_000 {
        for job in fleet.due(now) {
            assert_ne!(job.node_id, "node-2");
            fleet.failed(&job.node_id, "refused".into(), Duration::ZERO, now);
        }
        now += 50;
    }
}

/// An observation of `gpus` GPUs (indices 0..gpus) with one value each.
fn observation(gpus: u32, temperature: f64) -> NodeObservation {
    let mut body = String::new();
    for g in 0..gpus {
        body.push_str(&format!(
            "gpuwarden_gpu_temperature_celsius{{gpu=\"{g}\",uuid=\"GPU-{g}\",model=\"H100\"}} {temperature}\n"
        ));
    }
    crate::model::observation::observe(body.as_bytes(), 1000).expect("a valid body")
}

/// Every flush writes a changed node's `last_seen`; its rows only when they are due (never
/// written, `every` since the last, or its GPUs changed), and all of them at a stop.
#[test]
fn rows_are_written_when_due_and_last_seen_every_flush() {
    let fleet = fleet_every(15);
    fleet.sync(&row("n", "http://127.0.0.1:9"), 0);
    let every = 300_000;
    let take = |now: i64, rows_due: Option<(i64, i64)>| {
        let w = fleet.take_dirty(100, rows_due.map(|(_, e)| (now, e)));
        assert!(w.len() <= 1);
        w.into_iter().next()
    };
    fleet.succeeded("n", observation(2, 50.0), Duration::ZERO, 1_000);
    let first = take(1_000, Some((0, every))).expect("changed");
    assert_eq!(
        (first.rows.len(), first.replace, first.last_seen),
        (3, true, 1_000)
    );
    assert!(take(2_000, Some((0, every))).is_none(), "nothing new");

    fleet.succeeded("n", observation(2, 51.0), Duration::ZERO, 16_000);
    let w = take(30_000, Some((0, every))).expect("changed");
    assert_eq!((w.rows.len(), w.replace, w.last_seen), (0, false, 16_000));

    fleet.succeeded("n", observation(2, 52.0), Duration::ZERO, 301_000);
    let w = take(301_000, Some((0, every))).expect("changed");
    assert_eq!(w.rows.len(), 3, "due: 300 s since the rows were written");
    assert!(w.rows.iter().any(|r| r.body.contains("52")), "{:?}", w.rows);

    fleet.succeeded("n", observation(3, 52.0), Duration::ZERO, 316_000);
    let w = take(316_000, Some((0, every))).expect("changed");
    assert_eq!(
        (w.rows.len(), w.replace),
        (4, true),
        "a GPU more: written at once"
    );

    fleet.succeeded("n", observation(3, 53.0), Duration::ZERO, 331_000);
    let w = take(331_000, None).expect("changed");
    assert_eq!(
        (w.rows.len(), w.replace),
        (4, false),
        "a stop writes the rows"
    );
}

/// A node scraped after its rows were last written keeps them stale until they are written:
/// when due though nothing new came (it went offline), and at a stop whatever the interval
/// says. A batch the store refused is written again at the next flush, its GPU set replaced.
#[test]
fn stale_rows_are_written_at_the_stop_and_a_refused_batch_again() {
    let fleet = fleet_every(15);
    fleet.sync(&row("n", "http://127.0.0.1:9"), 0);
    let every = 300_000;
    let take = |now: i64| fleet.take_dirty(100, Some((now, every)));
    fleet.succeeded("n", observation(2, 50.0), Duration::ZERO, 1_000);
    assert_eq!(take(1_000)[0].rows.len(), 3);
    fleet.succeeded("n", observation(2, 51.0), Duration::ZERO, 16_000);
    assert_eq!(take(30_000)[0].rows.len(), 0, "not due: last_seen only");
    assert!(take(60_000).is_empty(), "nothing new, not due");
    let due = take(301_000);
    assert_eq!(due.len(), 1, "stale rows, due, though nothing new came");
    assert!(due[0].rows[1].body.contains("51"), "{:?}", due[0].rows);
    assert!(take(305_000).is_empty(), "written: nothing stale");

    fleet.succeeded("n", observation(2, 52.0), Duration::ZERO, 310_000);
    assert_eq!(take(320_000)[0].rows.len(), 0);
    let stop = fleet.take_dirty(100, None);
    assert_eq!(
        stop.len(),
        1,
        "the stop writes what the last flush left stale"
    );
    assert!(stop[0].rows.iter().any(|r| r.body.contains("52")));

    fleet.succeeded("n", observation(1, 53.0), Duration::ZERO, 330_000);
    let refused = take(331_000);
    assert_eq!((refused[0].rows.len(), refused[0].replace), (2, true));
    fleet.write_failed(refused);
    let again = take(332_000);
    assert_eq!(
        (again.len(), again[0].rows.len(), again[0].replace),
        (1, 2, true),
        "written again at the next flush, the GPU set replaced"
    );
    fleet.remove("n");
    fleet.write_failed(again);
    assert_eq!(
        take(333_000).len(),
        1,
        "a removed node's refused write is kept"
    );
}
