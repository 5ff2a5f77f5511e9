//! The scraper against stub servers (malformed, huge, slow, truncated, non-UTF-8, wrong
//! content type, …), event reading, batched observation writes, and offline/online
//! transitions driven by a fake clock.

use std::sync::Arc;
use std::time::Duration;

use gpuwarden_controlplane::clock::FakeClock;
use gpuwarden_controlplane::fleet::{Fleet, FleetSettings, Job};
use gpuwarden_controlplane::metrics::Metrics;
use gpuwarden_controlplane::model::Connectivity;
use gpuwarden_controlplane::policy::Policy;
use gpuwarden_controlplane::scrape::{retained_body_capacity, HttpFetcher, Scraper};
use gpuwarden_controlplane::store::rows::NodeRow;
use gpuwarden_controlplane::store::Store;

use crate::util::{agent_body, Reply, Stub, TempDir};

pub(crate) const T0: i64 = 1_795_000_000_000;

fn row(id: &str, address: &str) -> NodeRow {
    NodeRow {
        id: id.into(),
        name: id.into(),
        pool: "default".into(),
        labels: "{}".into(),
        address: Some(address.into()),
        status: "active".into(),
        health: "unknown".into(),
        connectivity: "offline".into(),
        capabilities: "{}".into(),
        source: "static".into(),
        agent_instance: None,
        event_cursor: 0,
        deregistered: false,
        created_at: T0,
        updated_at: T0,
        last_seen: None,
    }
}

pub(crate) struct Rig {
    _dir: TempDir,
    pub(crate) store: Arc<Store>,
    pub(crate) fleet: Arc<Fleet>,
    pub(crate) clock: FakeClock,
    pub(crate) scraper: Scraper,
}

pub(crate) fn rig(timeout: Duration, body_limit: u64, sample_limit: usize) -> Rig {
    crate::util::logs();
    let dir = TempDir::new("scrape");
    // A short busy timeout, so a test can make the database refuse a write quickly.
    let store = Arc::new(
        Store::open(
            &format!("sqlite://{}", dir.path().join("gw.db").display()),
            &gpuwarden_controlplane::store::StoreOptions {
                busy_timeout: Duration::from_millis(200),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let fleet = Arc::new(Fleet::new(FleetSettings {
        interval: Duration::from_secs(15),
        offline_after: 3,
        replica: "test".into(),
        health: Default::default(),
    }));
    let clock = FakeClock::at(T0);
    let scraper = Scraper {
        fleet: fleet.clone(),
        store: store.clone(),
        fetch: Arc::new(HttpFetcher::new(
            timeout,
            body_limit,
            16,
            Duration::from_secs(30),
        )),
        clock: Arc::new(clock.clone()),
        metrics: Metrics::new(),
        sample_limit,
        body_retain_bytes: 64 * 1024,
        policy: Arc::new(std::sync::RwLock::new(Arc::new(Policy::default_policy()))),
        links: Default::default(),
        event_reads: Default::default(),
        urgent: Default::default(),
    };
    Rig {
        _dir: dir,
        store,
        fleet,
        clock,
        scraper,
    }
}

impl Rig {
    pub(crate) fn add(&self, id: &str, address: &str) {
        let r = row(id, address);
        self.store.upsert_static(&r).unwrap();
        self.fleet.sync(&r, self.clock.now());
    }
    pub(crate) fn scrape(&self, id: &str) {
        let t = self.fleet.get(id).unwrap();
        self.scraper.scrape_one(&Job {
            node_id: id.into(),
            address: t.address,
        });
    }
}

trait Now {
    fn now(&self) -> i64;
}
impl Now for FakeClock {
    fn now(&self) -> i64 {
        gpuwarden_controlplane::clock::Clock::now_ms(self)
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[test]
fn broken_targets_fail_with_their_reason_and_leave_the_others_alone() {
    let r = rig(Duration::from_millis(700), 64 * 1024, 500);
    let good = agent_body(8, 0);
    let text = |b: &[u8]| {
        Reply::Full(
            200,
            vec![("Content-Type".into(), "text/plain; version=0.0.4".into())],
            b.to_vec(),
        )
    };
    let mut huge = good.clone();
    while huge.len() < 100 * 1024 {
        huge.push_str("gpuwarden_padding_total 1\n");
    }
    let mut many = String::new();
    for i in 0..600 {
        many.push_str(&format!("gpuwarden_node_thing{{i=\"{i}\"}} 1\n"));
    }
    let cases: Vec<(&str, Reply, &str)> = vec![
        (
            "malformed",
            Reply::text("gpuwarden_gpu_up{gpu=\"0\" 1\n"),
            "line 1",
        ),
        ("huge", Reply::text(&huge), "body larger than 65536 bytes"),
        (
            "gzip-bomb",
            Reply::Full(
                200,
                vec![
                    ("Content-Type".into(), "text/plain".into()),
                    ("Content-Encoding".into(), "gzip".into()),
                ],
                gzip(huge.as_bytes()),
            ),
            "body larger than 65536 bytes",
        ),
        (
            "slow",
            Reply::Slow(Duration::from_secs(3), good.as_bytes().to_vec()),
            "timed out",
        ),
        (
            "truncated",
            Reply::Truncated(good.len() + 500, good.as_bytes()[..good.len() / 2].to_vec()),
            "reading the body",
        ),
        (
            "non-utf8",
            text(b"gpuwarden_gpu_up{gpu=\"0\",uuid=\"\xff\xfe\"} 1\n"),
            "not valid UTF-8",
        ),
        (
            "json",
            Reply::Full(
                200,
                vec![("Content-Type".into(), "application/json".into())],
                b"{}".to_vec(),
            ),
            "content type \"application/json\"",
        ),
        (
            "no-type",
            Reply::Full(200, vec![], good.as_bytes().to_vec()),
            "content type \"\"",
        ),
        (
            "status-500",
            Reply::Full(
                500,
                vec![("Content-Type".into(), "text/plain".into())],
                b"oops".to_vec(),
            ),
            "HTTP status 500",
        ),
        ("hangup", Reply::Hangup, "connection failed"),
        ("too-many", Reply::text(&many), "more than 500 samples"),
    ];
    let mut stubs = Vec::new();
    for (id, reply, _) in &cases {
        let s = Stub::start(reply.clone());
        r.add(id, &s.url());
        stubs.push(s);
    }
    let ok = Stub::start(Reply::text(&good));
    r.add("good", &ok.url());
    r.add("refused", "http://127.0.0.1:1");

    // All at once, as the worker pool would: the good target is not held up by the others.
    std::thread::scope(|s| {
        for id in cases.iter().map(|c| c.0).chain(["good", "refused"]) {
            let r = &r;
            s.spawn(move || r.scrape(id));
        }
    });
    for (id, _, want) in &cases {
        let t = r.fleet.get(id).unwrap();
        let err = t.scrape.last_error.clone().unwrap_or_default();
        assert!(!t.scrape.up, "{id} should fail");
        assert!(err.contains(want), "{id}: {err:?} should mention {want:?}");
        assert!(
            t.observation.is_none(),
            "{id}: a failed scrape keeps no partial observation"
        );
    }
    let g = r.fleet.get("good").unwrap();
    assert!(g.scrape.up, "{:?}", g.scrape.last_error);
    assert!(
        g.scrape.duration_seconds < 0.6,
        "the good target took {}s",
        g.scrape.duration_seconds
    );
    assert_eq!(g.observation.as_ref().unwrap().gpus.len(), 8);
    assert_eq!(g.connectivity, Connectivity::Online);
    assert!(r
        .fleet
        .get("refused")
        .unwrap()
        .scrape
        .last_error
        .unwrap()
        .contains("connection failed"));
    let m = r.scraper.metrics.render();
    for kind in [
        "success",
        "parse",
        "too_large",
        "timeout",
        "body",
        "content_type",
        "http_status",
        "connect",
        "sample_limit",
    ] {
        assert!(
            m.contains(&format!("gpuwarden_cp_scrapes_total{{result=\"{kind}\"}}")),
            "no {kind} in\n{m}"
        );
    }
}

#[test]
fn a_huge_body_does_not_keep_its_buffer_after_the_scrape() {
    // The issue: a gzip bomb refused at the limit left each worker's buffer at the largest
    // size it reached, for good. Here: limit 4 MiB, retained 64 KiB (the rig's).
    let r = rig(Duration::from_secs(5), 4 << 20, 5_000);
    let text = |b: Vec<u8>, gz: bool| {
        let mut h = vec![("Content-Type".into(), "text/plain; version=0.0.4".into())];
        if gz {
            h.push(("Content-Encoding".into(), "gzip".into()));
        }
        Reply::Full(200, h, b)
    };
    let bomb = gzip(&vec![b'#'; 64 << 20]);
    let mut big = agent_body(8, 0);
    while big.len() < 3 << 20 {
        big.push_str("# padding comment to make the body large but valid\n");
    }
    let targets = [
        ("bomb", Stub::start(text(bomb, true))),
        ("big", Stub::start(text(gzip(big.as_bytes()), true))),
    ];
    for (id, stub) in &targets {
        r.add(id, &stub.url());
        r.scrape(id);
        let cap = retained_body_capacity();
        assert!(
            cap <= 64 * 1024,
            "{id}: the worker's buffer keeps {cap} bytes after the scrape"
        );
    }
    let info = |id: &str| r.fleet.get(id).unwrap().scrape;
    assert!(
        info("bomb")
            .last_error
            .is_some_and(|e| e.contains("larger than")),
        "{:?}",
        info("bomb")
    );
    assert!(
        info("big").up,
        "a large valid body still scrapes: {:?}",
        info("big")
    );
}

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
}

#[test]
fn nodes_go_offline_after_the_grace_period_and_online_when_scrapes_succeed() {
    let r = rig(Duration::from_millis(500), 1 << 20, 10_000);
    let agent = Stub::start(Reply::text(&agent_body(2, 0)));
    r.add("n", &agent.url());
    // Never answered yet, and the grace period is not over: nothing changes.
    assert!(r.fleet.sweep(T0 + 40_000).is_empty());
    r.scrape("n");
    assert_eq!(r.store.node("n").unwrap().connectivity, "online");
    *agent.reply.lock().unwrap() = Reply::Full(503, vec![], vec![]);
    r.clock.advance(15_000);
    r.scrape("n");
    r.clock.advance(15_000);
    r.scrape("n");
    assert!(
        r.fleet.sweep(T0 + 45_000).is_empty(),
        "3 intervals are not over yet"
    );
    let changes = r.fleet.sweep(T0 + 45_001);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].to, Connectivity::Offline);
    assert!(
        changes[0].reason.contains("3 missed intervals")
            && changes[0].reason.contains("HTTP status 503"),
        "{}",
        changes[0].reason
    );
    assert!(
        r.fleet.sweep(T0 + 60_000).is_empty(),
        "a transition is reported once"
    );
    for c in &changes {
        // As the scheduler does.
        r.store
            .set_connectivity(&c.node_id, c.to, &c.reason, T0 + 45_001)
            .unwrap();
    }

    // Recovery: the next good scrape brings it online, stored with the reason.
    *agent.reply.lock().unwrap() = Reply::text(&agent_body(2, 0));
    r.clock.advance(30_000);
    r.scrape("n");
    let hist: Vec<(String, String)> = r
        .store
        .transitions("n", 10)
        .unwrap()
        .into_iter()
        .filter(|t| t.field == "connectivity")
        .map(|t| (t.to_state, t.reason))
        .collect();
    assert_eq!(hist.len(), 3, "online, offline, online: {hist:?}");
    assert_eq!(
        hist[0],
        ("online".to_string(), "scrape succeeded".to_string())
    );
}

#[test]
fn a_restarted_control_plane_gives_every_node_a_full_grace_period() {
    let fleet = Fleet::new(FleetSettings {
        interval: Duration::from_secs(15),
        offline_after: 3,
        replica: "r".into(),
        health: Default::default(),
    });
    let mut r = row("n", "http://127.0.0.1:1");
    r.connectivity = "online".into();
    r.last_seen = Some(T0 - 3_600_000);
    fleet.sync(&r, T0);
    assert!(fleet.sweep(T0 + 45_000).is_empty());
    assert_eq!(fleet.sweep(T0 + 45_001).len(), 1);
}

#[test]
fn targets_keep_their_phase_and_are_never_scraped_twice_at_once() {
    let fleet = Fleet::new(FleetSettings {
        interval: Duration::from_secs(15),
        offline_after: 3,
        replica: "r".into(),
        health: Default::default(),
    });
    for i in 0..50 {
        fleet.sync(
            &row(&format!("n{i}"), &format!("http://10.0.0.{i}:9410")),
            T0,
        );
    }
    // Over one interval every target is due exactly once, at its own phase.
    let mut seen = std::collections::HashMap::new();
    for ms in (0..15_000).step_by(100) {
        for j in fleet.due(T0 + ms) {
            assert!(
                seen.insert(j.node_id.clone(), ms).is_none(),
                "{} twice in one interval",
                j.node_id
            );
        }
    }
    assert_eq!(seen.len(), 50);
    let distinct: std::collections::HashSet<_> = seen.values().collect();
    assert!(
        distinct.len() > 20,
        "targets are spread over the interval: {} phases",
        distinct.len()
    );
    // Still in flight: not handed out again even when due.
    assert!(fleet.due(T0 + 40_000).is_empty());
    // A second control plane with the same replica name computes the same phases.
    let again = Fleet::new(FleetSettings {
        interval: Duration::from_secs(15),
        offline_after: 3,
        replica: "r".into(),
        health: Default::default(),
    });
    again.sync(&row("n7", "http://10.0.0.7:9410"), T0);
    let ms = (0..15_000)
        .step_by(100)
        .find(|ms| !again.due(T0 + ms).is_empty())
        .unwrap();
    assert_eq!(ms, seen["n7"]);
}

#[test]
fn the_policy_judges_observations_and_events_and_the_health_is_stored_with_its_reason() {
    let r = rig(Duration::from_secs(2), 1 << 20, 10_000);
    let agent = Stub::start(Reply::text(&agent_body(8, 0)));
    r.add("n", &agent.url());
    r.scrape("n");
    assert_eq!(r.store.node("n").unwrap().health, "healthy");

    // GPU 1 falls off the bus: unhealthy, with the rule and the GPU in the history.
    let lost = agent_body(8, 0).replace(
        "gpuwarden_gpu_up{gpu=\"1\",uuid=\"GPU-1\",model=\"NVIDIA H100 80GB HBM3\"} 1",
        "gpuwarden_gpu_up{gpu=\"1\",uuid=\"GPU-1\",model=\"NVIDIA H100 80GB HBM3\"} 0",
    );
    *agent.reply.lock().unwrap() = Reply::text(&lost);
    r.clock.advance(15_000);
    r.scrape("n");
    assert_eq!(r.store.node("n").unwrap().health, "unhealthy");
    let t = &r.store.transitions("n", 1).unwrap()[0];
    assert_eq!(
        (t.field.as_str(), t.actor.as_str()),
        ("health", "policy:gpu-lost")
    );
    assert!(
        t.reason.contains("GPU 1") && t.reason.contains("up = false"),
        "{}",
        t.reason
    );
    // It comes back: still unhealthy (sticky) until an operator clears it.
    *agent.reply.lock().unwrap() = Reply::text(&agent_body(8, 0));
    r.clock.advance(15_000);
    r.scrape("n");
    r.scraper
        .judge_idle(gpuwarden_controlplane::clock::Clock::now_ms(&r.clock) + 3_600_000);
    assert_eq!(r.store.node("n").unwrap().health, "unhealthy");
    assert!(r
        .scraper
        .metrics
        .render()
        .contains("gpuwarden_cp_health_changes_total{to=\"unhealthy\"} 1"));
}

#[test]
fn a_degrading_xid_event_degrades_the_node_until_the_clear_time_passes() {
    let r = rig(Duration::from_secs(2), 1 << 20, 10_000);
    let agent = Stub::start(Reply::text(&agent_body(8, 0)));
    r.add("n", &agent.url());
    r.scrape("n");
    *agent.reply.lock().unwrap() =
        Reply::text(&agent_body(8, 0).replace("xid=\"79\"} 0", "xid=\"13\"} 1"));
    let event_ms = T0 + 10_000;
    let stamp = gpuwarden_controlplane::clock::rfc3339(event_ms);
    *agent.events.lock().unwrap() = r#"{"events":[{"seq":1,"time":"STAMP","gpu":2,"uuid":"GPU-2","kind":"xid","code":13,"message":"XID 13: graphics engine exception","severity":"warning","action":"restart_app","source":"nvml"}],"next":1,"instance":"A","truncated":false}"#.replace("STAMP", &stamp);
    r.clock.advance(15_000);
    r.scrape("n");
    let node = r.store.node("n").unwrap();
    assert_eq!(node.health, "degraded");
    let t = &r.store.transitions("n", 1).unwrap()[0];
    assert_eq!(t.actor, "policy:xid");
    assert!(
        t.reason.contains("13") && t.reason.contains("GPU 2"),
        "{}",
        t.reason
    );
    // Five minutes after the event (default degraded_clear_after), healthy again.
    r.scraper.judge_idle(event_ms + 299_000);
    assert_eq!(r.store.node("n").unwrap().health, "degraded");
    r.scraper.judge_idle(event_ms + 300_000);
    assert_eq!(r.store.node("n").unwrap().health, "healthy");
}

#[test]
fn a_health_change_the_database_refused_is_written_once_it_can_be() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let r = rig(Duration::from_secs(2), 1 << 20, 10_000);
    let agent = Stub::start(Reply::text(&agent_body(8, 0)));
    r.add("n", &agent.url());
    r.scrape("n");
    // Another process holds SQLite's write lock while the node turns unhealthy (GPU lost).
    let mut other =
        diesel::sqlite::SqliteConnection::establish(r._dir.path().join("gw.db").to_str().unwrap())
            .unwrap();
    other.batch_execute("BEGIN IMMEDIATE").unwrap();
    *agent.reply.lock().unwrap() = Reply::text(&agent_body(8, 0).replace(
        "gpu=\"1\",uuid=\"GPU-1\",model=\"NVIDIA H100 80GB HBM3\"} 1",
        "gpu=\"1\",uuid=\"GPU-1\",model=\"NVIDIA H100 80GB HBM3\"} 0",
    ));
    r.clock.advance(15_000);
    r.scrape("n");
    assert_ne!(
        r.store.node("n").unwrap().health,
        "unhealthy",
        "the write was refused"
    );
    assert!(r
        .scraper
        .metrics
        .render()
        .contains("gpuwarden_cp_store_errors_total{op=\"transition\"}"));
    // Still locked: kept for later, not lost.
    r.scraper.retry_unsaved();
    other.batch_execute("COMMIT").unwrap();
    r.scraper.retry_unsaved();
    assert_eq!(r.store.node("n").unwrap().health, "unhealthy");
    let t = &r.store.transitions("n", 1).unwrap()[0];
    assert_eq!(t.actor, "policy:gpu-lost");
    r.scraper.retry_unsaved();
    assert_eq!(
        r.store
            .transitions("n", 10)
            .unwrap()
            .iter()
            .filter(|t| t.to_state == "unhealthy")
            .count(),
        1,
        "written once"
    );
}
