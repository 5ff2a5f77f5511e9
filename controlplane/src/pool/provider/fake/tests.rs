use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::pool::provider::{build, ProviderEnv};

fn req(instance: &str) -> ProvisionRequest {
    ProvisionRequest {
        instance_id: instance.into(),
        pool: "train".into(),
        node_name: format!("node-{instance}"),
        instance_type: "gpu_1x_a100".into(),
        region: "us-east-1".into(),
        zone: None,
        labels: BTreeMap::new(),
        join_token: "gwj_0123456789abcdef".into(),
        control_plane_url: "http://127.0.0.1:8410".into(),
    }
}

fn states(f: &FakeProvider) -> Vec<(String, Option<String>, ListedState)> {
    f.list()
        .unwrap()
        .into_iter()
        .map(|l| (l.provider_id, l.instance_id, l.state))
        .collect()
}

#[test]
fn ids_are_deterministic_and_list_follows_provision_and_terminate() {
    let f = FakeProvider::new();
    let a = f.provision(&req("i-1")).unwrap();
    let b = f.provision(&req("i-2")).unwrap();
    assert_eq!(
        (a.provider_id.as_str(), b.provider_id.as_str()),
        ("fake-0001", "fake-0002")
    );
    assert_eq!(
        states(&f),
        vec![
            ("fake-0001".into(), Some("i-1".into()), ListedState::Running),
            ("fake-0002".into(), Some("i-2".into()), ListedState::Running),
        ]
    );
    f.terminate("fake-0001").unwrap();
    assert_eq!(states(&f)[0].2, ListedState::Gone);
    // Already gone, and never there: both fine.
    f.terminate("fake-0001").unwrap();
    f.terminate("fake-9999").unwrap();
    assert_eq!(
        f.machines()["fake-0002"].request.join_token,
        "gwj_0123456789abcdef"
    );
}

#[test]
fn the_same_instance_twice_is_one_machine() {
    let f = FakeProvider::new();
    let a = f.provision(&req("i-1")).unwrap();
    let again = f.provision(&req("i-1")).unwrap();
    assert_eq!(a, again);
    assert_eq!(f.machines().len(), 1);
    // Once gone, the instance may be provisioned anew.
    f.terminate(&a.provider_id).unwrap();
    assert_ne!(f.provision(&req("i-1")).unwrap(), a);
}

#[test]
fn capacity_counts_live_machines_only() {
    let f = FakeProvider::new();
    f.set_capacity(Some(2));
    f.provision(&req("i-1")).unwrap();
    f.provision(&req("i-2")).unwrap();
    let e = f.provision(&req("i-3")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Capacity);
    assert!(e.retryable());
    assert_eq!(e.message, "no capacity: 2 of 2 machines in use");
    f.terminate("fake-0001").unwrap();
    assert_eq!(f.provision(&req("i-3")).unwrap().provider_id, "fake-0003");
}

#[test]
fn failures_are_injected_per_call_once_or_always() {
    let f = FakeProvider::new();
    f.fail_next(
        Call::Provision,
        ProviderError::new(ErrorKind::Quota, "quota"),
    );
    f.fail_next(
        Call::Provision,
        ProviderError::new(ErrorKind::Timeout, "slow"),
    );
    assert_eq!(f.provision(&req("i-1")).unwrap_err().kind, ErrorKind::Quota);
    assert_eq!(
        f.provision(&req("i-1")).unwrap_err().kind,
        ErrorKind::Timeout
    );
    assert!(f.provision(&req("i-1")).is_ok());
    f.fail_always(
        Call::List,
        ProviderError::new(ErrorKind::Unavailable, "down"),
    );
    for _ in 0..3 {
        assert_eq!(f.list().unwrap_err().kind, ErrorKind::Unavailable);
    }
    assert!(f.terminate("fake-0001").is_ok(), "other calls unaffected");
    f.clear_failures();
    assert!(f.list().is_ok());
    assert_eq!(f.count(Call::Provision), 3);
    assert_eq!(f.count(Call::List), 4);
    assert_eq!(f.machines().len(), 1, "failed provisions made nothing");
}

#[test]
fn set_state_simulates_booting_and_crashes() {
    let f = FakeProvider::new();
    let a = f.provision(&req("i-1")).unwrap();
    assert!(f.set_state(&a.provider_id, ListedState::Pending));
    assert_eq!(states(&f)[0].2, ListedState::Pending);
    assert!(f.set_state(&a.provider_id, ListedState::Gone));
    assert_eq!(states(&f)[0].2, ListedState::Gone);
    assert!(!f.set_state("fake-0042", ListedState::Running));
}

#[test]
fn gone_machines_and_the_call_record_are_bounded() {
    let f = FakeProvider::new();
    for i in 0..MAX_CALLS {
        let p = f.provision(&req(&format!("i-{i}"))).unwrap();
        f.terminate(&p.provider_id).unwrap();
    }
    assert_eq!(f.machines().len(), MAX_GONE);
    assert!(!f.machines().contains_key("fake-0001"));
    // The record of calls is bounded too; the counts are not lost.
    assert_eq!(f.calls().len(), MAX_CALLS);
    assert_eq!(f.count(Call::Provision), MAX_CALLS);
    assert_eq!(f.count(Call::Terminate), MAX_CALLS);
}

#[test]
fn built_from_params_with_capacity_prefix_failures_and_offerings() {
    let env = ProviderEnv::new("http://127.0.0.1:8410", "/nonexistent");
    let params = json!({
        "capacity": 1,
        "prefix": "sim",
        "fail": {"terminate": "unavailable"},
        "offerings": [{"instance_type": "gpu_1x_a10", "price_cents_per_hour": 75, "regions_with_capacity": ["us-west-1"]}],
    });
    let p = build("fake", params.as_object().unwrap(), &env).unwrap();
    assert_eq!(p.kind(), "fake");
    assert_eq!(p.provision(&req("i-1")).unwrap().provider_id, "sim-0001");
    assert_eq!(
        p.provision(&req("i-2")).unwrap_err().kind,
        ErrorKind::Capacity
    );
    assert_eq!(
        p.terminate("sim-0001").unwrap_err().kind,
        ErrorKind::Unavailable
    );
    assert_eq!(p.offerings().unwrap()[0].price_cents_per_hour, Some(75));

    let bad = json!({"capacity": "two", "prefix": "no spaces", "fail": {"launch": "capacity", "list": "boom"}, "colour": "red"});
    let e = build("fake", bad.as_object().unwrap(), &env).unwrap_err();
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(e.iter().any(|m| m.contains("\"capacity\"")));
    assert!(e.iter().any(|m| m.contains("\"prefix\"")));
    assert!(e.iter().any(|m| m.contains("\"launch\"")));
    assert!(e.iter().any(|m| m.contains("\"boom\"")));
    assert!(e.iter().any(|m| m.contains("\"colour\": unknown")));
}

/// A stand-in for a fleet's control API: answers each request with the next status in
/// `answers` and records `METHOD PATH BODY`.
fn fleet_stub(answers: Vec<(u16, &'static str)>) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (status, answer) in answers {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut r = BufReader::new(stream);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let mut len = 0;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let mut parts = line.split_whitespace();
            let (m, p) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            tx.send(format!("{m} {p} {}", String::from_utf8_lossy(&body)))
                .unwrap();
            let _ = write!(
                r.get_mut(),
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, rx)
}

/// With `fleet`, a provision adds a node to the fleet (its name, pool, join token, GPUs and
/// a rack and zone by machine number) and a terminate removes it; a full fleet is a
/// capacity error and a fleet that does not answer a retryable one; bad params are named.
#[test]
fn with_a_fleet_machines_become_simulated_agents() {
    let env = ProviderEnv::new("http://127.0.0.1:8410", "/nonexistent");
    let made_ = r#"{"name":"n","address":"http://127.3.0.7:41000"}"#;
    let (url, seen) = fleet_stub(vec![
        (201, made_),
        (201, made_),
        (503, r#"{"error":"no spare address"}"#),
        (204, ""),
        (
            200,
            r#"{"nodes":[{"name":"node-i-2","address":"http://127.3.0.8:1","up":true}]}"#,
        ),
        (200, r#"{"nodes":[]}"#),
    ]);
    let params =
        json!({"fleet": url, "gpus": 2, "model": "NVIDIA A100-SXM4-80GB", "racks": 2, "zones": 2});
    let p = build("fake", params.as_object().unwrap(), &env).unwrap();
    let mut r1 = req("i-1");
    r1.labels.insert("team".into(), "ml".into());
    let made = p.provision(&r1).unwrap();
    assert_eq!(made.address.as_deref(), Some("http://127.3.0.7:41000"));
    let first: serde_json::Value = {
        let s = seen.recv().unwrap();
        assert!(s.starts_with("POST /v1/fleet/nodes "), "{s}");
        serde_json::from_str(s.splitn(3, ' ').nth(2).unwrap()).unwrap()
    };
    assert_eq!(first["name"], "node-i-1");
    assert_eq!(first["pool"], "train");
    assert_eq!(first["gpus"], 2);
    assert_eq!(
        first["token"], "gwj_0123456789abcdef",
        "joins with its own token"
    );
    assert_eq!(
        first["labels"],
        json!({"team": "ml", "rack": "r0", "zone": "z0"})
    );
    p.provision(&req("i-2")).unwrap();
    let second: serde_json::Value =
        serde_json::from_str(seen.recv().unwrap().splitn(3, ' ').nth(2).unwrap()).unwrap();
    assert_eq!(
        second["labels"],
        json!({"rack": "r1", "zone": "z1"}),
        "round robin"
    );
    let e = p.provision(&req("i-3")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Capacity, "{e}");
    assert!(e.message.contains("no spare address"), "{e}");
    seen.recv().unwrap();
    p.terminate(&made.provider_id).unwrap();
    assert_eq!(
        seen.recv().unwrap().trim(),
        "DELETE /v1/fleet/nodes/node-i-1"
    );
    let listed = p.list().unwrap();
    assert_eq!(listed.len(), 2, "i-3 was never made");
    let states: Vec<(String, ListedState)> = listed
        .iter()
        .map(|l| (l.instance_id.clone().unwrap_or_default(), l.state))
        .collect();
    assert_eq!(
        states,
        [
            ("i-1".to_string(), ListedState::Gone),
            ("i-2".to_string(), ListedState::Running)
        ],
        "terminated, and still in the fleet"
    );
    assert!(seen.recv().unwrap().starts_with("GET /v1/fleet/nodes"));
    // The fleet lost node-i-2 (restarted): its machine is gone, for the reconciler.
    let listed = p.list().unwrap();
    assert!(
        listed.iter().all(|l| l.state == ListedState::Gone),
        "{listed:?}"
    );
    // The fleet is gone: a retryable error, and nothing recorded.
    let e = p.provision(&req("i-4")).unwrap_err();
    assert!(e.retryable(), "{e}");

    for url in [
        "http://10.0.0.1:80",
        "http://user:pw@127.0.0.1:1",
        "http://127.0.0.1:1/x?y",
        "https://127.0.0.1:1",
        "http://127.0.0.1",
    ] {
        let p = json!({"fleet": url});
        let e = build("fake", p.as_object().unwrap(), &env).unwrap_err();
        assert!(e[0].contains("on loopback"), "{url}: {e:?}");
    }
    for url in [
        "http://127.0.0.1:9000",
        "http://localhost:9000/",
        "http://[::1]:9000",
    ] {
        let p = json!({"fleet": url});
        assert!(build("fake", p.as_object().unwrap(), &env).is_ok(), "{url}");
    }
    let bad = json!({"fleet": "127.0.0.1:1", "gpus": 65, "racks": 1, "zones": 2});
    let e = build("fake", bad.as_object().unwrap(), &env).unwrap_err();
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(e.iter().any(|m| m.contains("\"fleet\"")));
    assert!(e.iter().any(|m| m.contains("\"gpus\"")));
    assert!(e.iter().any(|m| m.contains("\"zones\"")));
}
