//! What scrapes write: agent events, read when the counters move and stored once across
//! agent restarts, and observations, written in batches rather than per scrape.

use std::time::Duration;

use crate::scrape::{rig, T0};
use crate::util::{agent_body, Reply, Stub};

#[test]
fn events_are_read_when_counters_move_and_stored_once_across_agent_restarts() {
    let r = rig(Duration::from_secs(2), 1 << 20, 10_000);
    let agent = Stub::start(Reply::text(&agent_body(8, 1)));
    let ev = |seq: u64, inst: &str| {
        format!(r#"{{"seq":{seq},"time":"2026-11-23T10:00:0{seq}Z","gpu":0,"uuid":"GPU-0","kind":"xid","code":79,"message":"XID 79 #{seq}","severity":"fatal","action":"reboot_node","source":"nvml"}}"#).replace("#", inst)
    };
    *agent.events.lock().unwrap() = format!(
        r#"{{"events":[{}],"next":1,"instance":"A","truncated":false}}"#,
        ev(1, "A")
    );
    r.add("n", &agent.url());
    r.scrape("n");
    assert_eq!(r.store.events("n", 0, 100).unwrap().len(), 1);
    r.scrape("n");
    let reads = |a: &Stub| {
        a.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.starts_with("/v1/events"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        reads(&agent),
        ["/v1/events?after=0&limit=1000"],
        "unchanged counters read no events"
    );

    // The counter grows: the page after the cursor is read; an event seen before is not stored twice.
    *agent.reply.lock().unwrap() = Reply::text(&agent_body(8, 2));
    *agent.events.lock().unwrap() = format!(
        r#"{{"events":[{},{}],"next":2,"instance":"A","truncated":false}}"#,
        ev(1, "A"),
        ev(2, "A")
    );
    r.scrape("n");
    assert_eq!(
        reads(&agent).last().unwrap(),
        "/v1/events?after=1&limit=1000"
    );
    assert_eq!(r.store.events("n", 0, 100).unwrap().len(), 2);

    // The agent restarts: a new instance numbering from 1; its events are new.
    *agent.reply.lock().unwrap() = Reply::text(&agent_body(8, 1));
    *agent.events.lock().unwrap() = format!(
        r#"{{"events":[{}],"next":1,"instance":"B","truncated":false}}"#,
        ev(1, "B")
    );
    r.scrape("n");
    assert_eq!(
        reads(&agent)[2..],
        [
            "/v1/events?after=2&limit=1000".to_string(),
            "/v1/events?after=0&limit=1000".into()
        ],
        "a new instance is read from the start"
    );
    let stored = r.store.events("n", 0, 100).unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(
        r.store.node("n").unwrap().agent_instance.as_deref(),
        Some("B")
    );

    // The events cannot be read once (the agent answers 503): the next scrape reads them
    // again although the counters no longer move, and nothing is lost.
    *agent.reply.lock().unwrap() = Reply::text(&agent_body(8, 3));
    agent.events.lock().unwrap().clear();
    r.scrape("n");
    assert_eq!(r.store.events("n", 0, 100).unwrap().len(), 3);
    *agent.events.lock().unwrap() = format!(
        r#"{{"events":[{}],"next":3,"instance":"B","truncated":false}}"#,
        ev(3, "B")
    );
    r.scrape("n");
    assert_eq!(
        r.store.events("n", 0, 100).unwrap().len(),
        4,
        "read again after the failure"
    );
    assert_eq!(
        reads(&agent).last().unwrap(),
        "/v1/events?after=1&limit=1000",
        "from the stored cursor"
    );

    // A ring that overflowed is counted, and what is there is stored.
    *agent.reply.lock().unwrap() = Reply::text(&agent_body(8, 9));
    *agent.events.lock().unwrap() = format!(
        r#"{{"events":[{}],"next":9,"instance":"B","truncated":true}}"#,
        ev(9, "B")
    );
    r.scrape("n");
    assert!(r
        .scraper
        .metrics
        .render()
        .contains("gpuwarden_cp_events_lost_total 1"));
    assert_eq!(r.store.events("n", 0, 100).unwrap().len(), 5);
}

#[test]
fn observations_are_written_in_batches_not_per_scrape() {
    let r = rig(Duration::from_secs(2), 1 << 20, 10_000);
    let a = Stub::start(Reply::text(&agent_body(8, 0)));
    let b = Stub::start(Reply::text(&agent_body(4, 0)));
    r.add("a", &a.url());
    r.add("b", &b.url());
    r.scrape("a");
    r.scrape("b");
    assert_eq!(
        r.store.count("observations").unwrap(),
        0,
        "nothing is written per scrape"
    );
    r.scraper.flush();
    assert_eq!(
        r.store.count("observations").unwrap(),
        9 + 5,
        "one row per GPU and one per node"
    );
    let rows = r.store.observations("a").unwrap();
    assert_eq!(rows[0].gpu, -1);
    let g3: serde_json::Value = serde_json::from_str(&rows[4].body).unwrap();
    assert_eq!(g3["values"]["temperature_celsius"], 43.0);
    assert_eq!(r.store.node("a").unwrap().last_seen, Some(T0));
    r.scraper.flush();
    assert_eq!(
        r.scraper.metrics.flushes.get(),
        1,
        "an unchanged fleet writes nothing"
    );
    assert_eq!(
        r.scraper.metrics.flush_seconds.get_sample_count(),
        1,
        "the flush that wrote is timed, the empty one is not"
    );
}
