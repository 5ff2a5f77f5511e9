//! Urgent-event notices (`POST /v1/nodes/{id}/notify`) on a control plane started in
//! process (`serve::start`) with a 60 s scrape interval and a frozen clock, so no scrape
//! happens unless the test moves the clock: a notice alone gets the node's events read and
//! a cordon command stored; 100 notices are one read; bad callers are refused; a notice
//! whose read fails leaves the event to the scrape.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gpuwarden_controlplane::clock::{rfc3339, FakeClock};
use gpuwarden_controlplane::config::{ControlPlaneConfig, Plan};
use gpuwarden_controlplane::serve::{self, EnvTokens, Running};
use serde_json::{json, Value};

use crate::util::{agent_body, Reply, Stub, TempDir};

const T0: i64 = 1_800_000_000_000;
const ADMIN: &str = "admin-token-for-notify-tests-0001";
const BOOT: &str = "bootstrap-token-for-notify-tests-01";

/// A running control plane, one stub agent registered with it.
struct Cp {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    base: String,
    http: ureq::Agent,
    clock: FakeClock,
    agent: Stub,
    node: String,
    token: String,
    _dir: TempDir,
}

impl Drop for Cp {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.stop());
        }
    }
}

/// A page of the stub agent's events: one fatal XID 79 (seq 1) of run `i1`.
fn xid_page() -> String {
    json!({"events": [{"seq": 1, "time": rfc3339(T0), "gpu": 0, "uuid": "GPU-0", "kind": "xid",
        "code": 79, "message": "GPU has fallen off the bus", "severity": "fatal",
        "action": "reboot_node", "source": "nvml"}],
        "next": 1, "instance": "i1", "truncated": false, "more": false})
    .to_string()
}

fn start() -> Cp {
    crate::util::logs();
    let dir = TempDir::new("notify");
    let mut cfg = ControlPlaneConfig::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.database.url = format!("sqlite://{}", dir.path().join("gw.db").display());
    cfg.scrape.interval = Duration::from_secs(60);
    cfg.remediation.action = Plan::Cordon;
    let clock = FakeClock::at(T0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let env = EnvTokens {
        admin: Some(ADMIN.into()),
        bootstrap: Some(BOOT.into()),
    };
    let running = rt
        .block_on(serve::start(cfg, env, Arc::new(clock.clone())))
        .unwrap();
    let base = format!("http://{}", running.addr);
    let agent = Stub::start(Reply::text(&agent_body(8, 0)));
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut cp = Cp {
        rt,
        running: Some(running),
        base,
        http,
        clock,
        agent,
        node: String::new(),
        token: String::new(),
        _dir: dir,
    };
    let (s, reg) = cp.call(
        "POST",
        "/v1/nodes/register",
        BOOT,
        Some(json!({"name": "gpu-1", "address": cp.agent.url()})),
    );
    assert_eq!(s, 200, "{reg}");
    cp.node = reg["node_id"].as_str().unwrap().to_string();
    cp.token = reg["node_token"].as_str().unwrap().to_string();
    cp
}

impl Cp {
    fn call(&self, method: &str, path: &str, bearer: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {bearer}");
        let r = match (method, body) {
            ("POST", Some(b)) => self
                .http
                .post(&url)
                .header("authorization", &auth)
                .send_json(&b),
            _ => self.http.get(&url).header("authorization", &auth).call(),
        };
        let mut r = r.unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn notify(&self, bearer: &str, node: &str, seq: u64) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/v1/nodes/{node}/notify"),
            bearer,
            Some(json!({"instance": "i1", "seq": seq})),
        )
    }

    fn event_reads(&self) -> usize {
        let q = self.agent.requests.lock().unwrap();
        q.iter().filter(|p| p.starts_with("/v1/events")).count()
    }

    fn metric(&self, series: &str) -> f64 {
        let url = format!("{}/metrics", self.base);
        let text = self
            .http
            .get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(-1.0)
    }

    /// Waits until the node has a cordon command; how long that took.
    fn wait_cordon(&self, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < within {
            let (_, c) = self.call(
                "GET",
                &format!("/v1/nodes/{}/commands", self.node),
                ADMIN,
                None,
            );
            let list = c.get("commands").unwrap_or(&c);
            if list
                .as_array()
                .is_some_and(|a| a.iter().any(|c| c["kind"] == "cordon"))
            {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

#[test]
fn a_notice_alone_gets_the_events_read_and_the_node_cordoned_within_two_seconds() {
    let cp = start();
    *cp.agent.events.lock().unwrap() = xid_page();
    assert_eq!(cp.event_reads(), 0, "no scrape with the clock frozen");
    let (s, body) = cp.notify(&cp.token, &cp.node, 1);
    assert_eq!((s, body), (202, json!({"accepted": true})));
    let took = cp.wait_cordon(Duration::from_secs(2));
    assert!(took.is_some(), "no cordon within 2 s of the notice");
    assert_eq!(cp.event_reads(), 1);
    assert_eq!(cp.metric("gpuwarden_cp_notice_reads_total"), 1.0);
    assert_eq!(
        cp.metric("gpuwarden_cp_notices_total{result=\"accepted\"}"),
        1.0
    );
    // The same seq again: stored already, nothing read.
    assert_eq!(cp.notify(&cp.token, &cp.node, 1).0, 202);
    assert_eq!(
        cp.metric("gpuwarden_cp_notices_total{result=\"stale\"}"),
        1.0
    );
    assert_eq!(cp.event_reads(), 1);
}

#[test]
fn a_hundred_notices_for_one_node_are_one_read() {
    let cp = Arc::new(start());
    *cp.agent.events.lock().unwrap() = xid_page();
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let cp = cp.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    assert_eq!(cp.notify(&cp.token, &cp.node, 1).0, 202);
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    assert!(cp.wait_cordon(Duration::from_secs(2)).is_some());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        cp.event_reads(),
        1,
        "{:?}",
        cp.agent.requests.lock().unwrap()
    );
    let by = |r: &str| cp.metric(&format!("gpuwarden_cp_notices_total{{result=\"{r}\"}}"));
    assert_eq!(by("accepted") + by("coalesced") + by("stale"), 100.0);
    assert_eq!(cp.metric("gpuwarden_cp_notice_reads_total"), 1.0);
}

#[test]
fn notices_from_the_wrong_caller_or_with_a_bad_body_are_refused() {
    let cp = start();
    assert_eq!(cp.notify(ADMIN, "no-such-node", 1).0, 404);
    // A node created by an operator has no agent address yet: nothing to read, 409.
    let (s, created) = cp.call(
        "POST",
        "/v1/nodes",
        ADMIN,
        Some(json!({"name": "pending-1"})),
    );
    assert_eq!(s, 201, "{created}");
    let (s, e) = cp.notify(ADMIN, created["id"].as_str().unwrap(), 1);
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["error"]["code"], "not_scraped", "{e}");
    assert_eq!(cp.notify("not-a-token-at-all-0000", &cp.node, 1).0, 401);
    assert_eq!(cp.notify(&cp.token, "other-node", 1).0, 403);
    let path = format!("/v1/nodes/{}/notify", cp.node);
    let (s, e) = cp.call(
        "POST",
        &path,
        &cp.token,
        Some(json!({"instance": "", "seq": 1})),
    );
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["error"]["code"], "invalid");
    let (s, e) = cp.call(
        "POST",
        &path,
        &cp.token,
        Some(json!({"instance": "i1", "seq": 1u64 << 63})),
    );
    assert_eq!(s, 422, "{e}");
    // The token is checked before the body: a stranger gets 401 whatever it sends.
    let (s, e) = cp.call(
        "POST",
        &path,
        "not-a-token-at-all-0000",
        Some(json!({"x": 1})),
    );
    assert_eq!(s, 401, "{e}");
    let (s, e) = cp.call("POST", &path, &cp.token, Some(json!({"seq": 1})));
    assert_eq!(s, 400, "{e}");
    assert_eq!(
        cp.metric("gpuwarden_cp_notices_total{result=\"refused\"}"),
        8.0
    );
    assert_eq!(cp.event_reads(), 0);
    // An admin may name the node; its events are then due like the agent's own notice.
    let name = cp
        .call("GET", &format!("/v1/nodes/{}", cp.node), ADMIN, None)
        .1["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(name, cp.node);
    assert_eq!(cp.notify(ADMIN, &name, 1).0, 202);
    let end = Instant::now() + Duration::from_secs(2);
    while cp.event_reads() == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cp.event_reads(), 1, "the named node's events were read");
}

#[test]
fn a_notice_whose_read_fails_leaves_the_event_to_the_next_scrape() {
    let cp = start();
    // The agent cannot serve its events (503) when the notice comes.
    *cp.agent.events.lock().unwrap() = String::new();
    assert_eq!(cp.notify(&cp.token, &cp.node, 1).0, 202);
    let end = Instant::now() + Duration::from_secs(2);
    while cp.event_reads() == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cp.event_reads(), 1);
    assert!(cp.wait_cordon(Duration::from_millis(300)).is_none());
    // Back; the next scrape (one interval later) reads the event.
    *cp.agent.events.lock().unwrap() = xid_page();
    cp.clock.advance(61_000);
    assert!(
        cp.wait_cordon(Duration::from_secs(5)).is_some(),
        "the scrape read the event the notice could not"
    );
}

/// A node that cannot be scraped when its notice comes (down, hung, answering errors) costs a
/// notice worker one attempt, not a second one at its events: its next scrape reads them.
#[test]
fn a_notice_for_an_agent_that_does_not_answer_its_scrape_skips_the_event_read() {
    let cp = start();
    *cp.agent.events.lock().unwrap() = xid_page();
    *cp.agent.reply.lock().unwrap() = Reply::Full(500, vec![], b"down".to_vec());
    assert_eq!(cp.notify(&cp.token, &cp.node, 1).0, 202);
    let scrapes = || {
        cp.agent
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.starts_with("/metrics"))
            .count()
    };
    let end = Instant::now() + Duration::from_secs(2);
    while scrapes() == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(scrapes(), 1, "{:?}", cp.agent.requests.lock().unwrap());
    assert_eq!(
        cp.event_reads(),
        0,
        "{:?}",
        cp.agent.requests.lock().unwrap()
    );
    assert_eq!(cp.metric("gpuwarden_cp_notice_reads_total"), 1.0);
}
