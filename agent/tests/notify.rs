//! Urgent events are pushed: an agent joined to a (fake) control plane sends
//! `POST /v1/nodes/{id}/notify` at once for a fatal event, one notice for a burst, retries a
//! 5xx, does not retry a 401, and sends nothing for a warning.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::Agent;

const NODE: &str = "node-7";
const TOKEN: &str = "node-token-of-node-7-0123456789";

/// A notice the fake control plane received.
#[derive(Debug, Clone)]
struct Notice {
    bearer: String,
    instance: String,
    seq: u64,
    at: Instant,
}

#[derive(Default)]
struct Shared {
    notices: Mutex<Vec<Notice>>,
    /// Status of the next notice answers (202 once empty).
    answers: Mutex<VecDeque<u16>>,
    /// How long a notice's answer takes.
    delay: Mutex<Duration>,
}

/// A control plane on 127.0.0.1 that registers every agent as [`NODE`] and records notices;
/// stopped on drop.
struct FakeCp {
    url: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeCp {
    fn start() -> FakeCp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let sh = sh.clone();
                        std::thread::spawn(move || serve(conn, &sh));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeCp {
            url,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    fn notices(&self) -> Vec<Notice> {
        self.shared.notices.lock().unwrap().clone()
    }

    /// Waits until `n` notices came (at most `within`), then returns them all.
    fn wait_notices(&self, n: usize, within: Duration) -> Vec<Notice> {
        let end = Instant::now() + within;
        while Instant::now() < end && self.notices().len() < n {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.notices()
    }
}

impl Drop for FakeCp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, sh: &Shared) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let (mut length, mut bearer) = (0usize, String::new());
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse().unwrap_or(0),
            "authorization" => bearer = v.trim().trim_start_matches("Bearer ").to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let notify = format!("/v1/nodes/{NODE}/notify");
    let (status, answer) = match (method.as_str(), path.as_str()) {
        ("POST", "/v1/nodes/register") => (
            200,
            format!(
                r#"{{"node_id":"{NODE}","node_token":"{TOKEN}","scrape_interval_seconds":15,"check_interval_seconds":3600}}"#
            ),
        ),
        ("POST", p) if p == notify => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            sh.notices.lock().unwrap().push(Notice {
                bearer,
                instance: v["instance"].as_str().unwrap().to_string(),
                seq: v["seq"].as_u64().unwrap(),
                at: Instant::now(),
            });
            std::thread::sleep(*sh.delay.lock().unwrap());
            let s = sh.answers.lock().unwrap().pop_front().unwrap_or(202);
            (s, r#"{"accepted":true}"#.to_string())
        }
        ("DELETE", _) => (204, String::new()),
        _ => (200, "{}".to_string()),
    };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

/// An agent with 8 fake GPUs joined to `cp` (returns once it has joined).
fn joined_agent(cp: &FakeCp, extra_env: &[(&str, &str)]) -> Agent {
    let mut env = vec![("GPUWARDEN_BOOTSTRAP_TOKEN", "bootstrap-token-0123456789")];
    env.extend_from_slice(extra_env);
    let agent = Agent::start(&["--fake-gpus", "8", "--control-plane", &cp.url], &env);
    let end = Instant::now() + Duration::from_secs(20);
    while !agent
        .logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("registered with the control plane"))
    {
        assert!(Instant::now() < end, "the agent did not join");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The notifier learns the node token right after the line is logged.
    std::thread::sleep(Duration::from_millis(100));
    agent
}

fn xid(agent: &Agent, gpu: u32) {
    let (s, b) = agent.post(
        "/v1/fake/inject",
        &format!(r#"{{"gpu":{gpu},"fault":"xid","code":79}}"#),
    );
    assert_eq!(s, 200, "{b}");
}

/// Waits until `gpuwarden_agent_notices_total{result}` is `n` (the fake control plane records
/// a notice before it answers, the agent counts it after).
fn wait_count(agent: &Agent, result: &str, n: f64) {
    agent.wait_metrics(&format!("notices {result} = {n}"), |m| {
        m.value("gpuwarden_agent_notices_total", &[("result", result)]) == Some(n)
    });
}

#[test]
fn a_fatal_xid_is_notified_at_once_with_its_seq_instance_and_token() {
    let cp = FakeCp::start();
    let agent = joined_agent(&cp, &[]);
    let injected = Instant::now();
    xid(&agent, 3);
    let got = cp.wait_notices(1, Duration::from_secs(2));
    assert_eq!(got.len(), 1, "{got:?}");
    let page = agent.events_after(0);
    let n = &got[0];
    assert!(
        n.at - injected < Duration::from_secs(1),
        "{:?}",
        n.at - injected
    );
    assert_eq!(n.bearer, TOKEN);
    assert_eq!(n.instance, page["instance"].as_str().unwrap());
    let last = page["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["code"], 79);
    assert_eq!(n.seq, last["seq"].as_u64().unwrap());
    wait_count(&agent, "sent", 1.0);
}

#[test]
fn a_burst_of_twenty_events_is_at_most_two_notices_the_last_with_the_newest_seq() {
    let cp = FakeCp::start();
    *cp.shared.delay.lock().unwrap() = Duration::from_millis(500);
    let agent = Arc::new(joined_agent(&cp, &[]));
    let burst: Vec<_> = (0..20)
        .map(|i| {
            let a = agent.clone();
            std::thread::spawn(move || xid(&a, i % 8))
        })
        .collect();
    for t in burst {
        t.join().unwrap();
    }
    let newest = agent.events_after(0)["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    // Wait for the last notice to carry the newest seq, then a little for any straggler.
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end && cp.notices().last().map(|n| n.seq) != Some(newest) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(700));
    let got = cp.notices();
    assert!(!got.is_empty() && got.len() <= 2, "{got:?}");
    assert_eq!(got.last().unwrap().seq, newest, "{got:?}");
}

#[test]
fn a_server_error_is_retried_and_a_refusal_is_not() {
    let cp = FakeCp::start();
    cp.shared.answers.lock().unwrap().push_back(500);
    let agent = joined_agent(&cp, &[]);
    xid(&agent, 0);
    let got = cp.wait_notices(2, Duration::from_secs(3));
    assert_eq!(got.len(), 2, "500 then retried: {got:?}");
    assert_eq!(got[0].seq, got[1].seq);
    wait_count(&agent, "retried", 1.0);
    wait_count(&agent, "sent", 1.0);

    cp.shared.answers.lock().unwrap().push_back(401);
    xid(&agent, 1);
    let got = cp.wait_notices(3, Duration::from_secs(2));
    assert_eq!(got.len(), 3);
    // No retry of the 401 (the first retry would come within 200 ms).
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(cp.notices().len(), 3, "a 401 is not retried");
    wait_count(&agent, "failed", 1.0);
    let refusals = agent
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("refused an urgent-event notice"))
        .count();
    assert_eq!(refusals, 1);
}

#[test]
fn a_warning_sends_no_notice_and_the_switch_turns_notices_off() {
    let cp = FakeCp::start();
    let agent = joined_agent(&cp, &[]);
    let (s, b) = agent.post("/v1/fake/inject", r#"{"gpu":5,"fault":"pcie_degraded"}"#);
    assert_eq!(s, 200, "{b}");
    assert_eq!(agent.events_after(0)["events"][0]["severity"], "warning");
    std::thread::sleep(Duration::from_millis(500));
    assert!(cp.notices().is_empty(), "{:?}", cp.notices());
    drop(agent);

    let off = joined_agent(&cp, &[("GPUWARDEN_CONTROL_PLANE__NOTIFY_URGENT", "false")]);
    xid(&off, 0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(cp.notices().is_empty(), "{:?}", cp.notices());
    assert!(off
        .metrics()
        .series("gpuwarden_agent_notices_total", &[])
        .next()
        .is_none());
}
