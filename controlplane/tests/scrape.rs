//! The scraper's test rig (a SQLite store, a fleet, a fake clock; shared by the other
//! `scrape_*` modules) and the scraper against stub servers: malformed, huge, gzip bomb,
//! slow, truncated, non-UTF-8, wrong content type, 500, hang-up, too many samples.

use std::sync::Arc;
use std::time::Duration;

use gpuwarden_controlplane::clock::FakeClock;
use gpuwarden_controlplane::judge::policy::Policy;
use gpuwarden_controlplane::metrics::Metrics;
use gpuwarden_controlplane::model::Connectivity;
use gpuwarden_controlplane::scrape::fleet::{Fleet, FleetSettings, Job};
use gpuwarden_controlplane::scrape::{retained_body_capacity, HttpFetcher, Scraper};
use gpuwarden_controlplane::store::rows::NodeRow;
use gpuwarden_controlplane::store::Store;

use crate::util::{agent_body, Reply, Stub, TempDir};

pub(crate) const T0: i64 = 1_795_000_000_000;

pub(crate) fn row(id: &str, address: &str) -> NodeRow {
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
        instance_id: None,
    }
}

pub(crate) struct Rig {
    pub(crate) _dir: TempDir,
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
        fetch: Arc::new(HttpFetcher::new(timeout, body_limit)),
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
            due_at: None,
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
