//! The fleet host: many agents in one process, each its own server and fake GPUs.

use super::node::node_seed;
use super::*;

fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    match agent.get(url).call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => (0, e.to_string()),
    }
}

fn nodes(n: usize, gpus: u32) -> Vec<FleetNode> {
    (0..n)
        .map(|i| FleetNode {
            name: format!("sim-{i}"),
            listen: format!("127.1.222.{}:0", i + 1).parse().unwrap(),
            gpus,
            model: "NVIDIA A100-SXM4-80GB".into(),
            labels: [("rack".to_string(), format!("r{}", i % 2))].into(),
            pool: String::new(),
        })
        .collect()
}

/// Every node serves its own GPUs under its own name; a fault injected into one shows in its
/// events only; after the stop nothing answers.
#[test]
fn each_node_serves_its_own_gpus_and_takes_its_own_faults() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = FleetOptions {
        interval: Duration::from_millis(500),
        join: None,
        seed: 42,
        spare: None,
    };
    let fleet = rt.block_on(async { start(&nodes(3, 2), &opts) }).unwrap();
    assert_eq!(fleet.nodes().len(), 3);
    let urls: Vec<String> = fleet
        .nodes()
        .iter()
        .map(|(_, a)| format!("http://{a}"))
        .collect();
    for (i, u) in urls.iter().enumerate() {
        let (status, body) = get(&format!("{u}/metrics"));
        assert_eq!(status, 200, "{body}");
        let up = body
            .lines()
            .filter(|l| l.starts_with("gpuwarden_gpu_up{"))
            .count();
        assert_eq!(up, 2, "two GPUs on node {i}");
        assert!(body.contains("model=\"NVIDIA A100-SXM4-80GB\""), "{body}");
        assert!(body.contains(&format!("rack=\"r{}\"", i % 2)), "labels");
    }
    // Fake GPUs differ from node to node, seed or no seed (mixed with the name).
    let uuid = |u: &str| {
        let (_, b) = get(&format!("{u}/metrics"));
        b.lines()
            .find(|l| l.starts_with("gpuwarden_gpu_up{"))
            .and_then(|l| l.split("uuid=\"").nth(1))
            .map(|r| r.split('"').next().unwrap_or("").to_string())
            .unwrap()
    };
    assert_ne!(uuid(&urls[0]), uuid(&urls[1]));

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent
        .post(&format!("{}/v1/fake/inject", urls[1]))
        .send_json(serde_json::json!({"gpu": 1, "fault": "xid", "code": 79}))
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    let has_xid = |u: &str| {
        let page: serde_json::Value =
            serde_json::from_str(&get(&format!("{u}/v1/events")).1).unwrap_or_default();
        page["events"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "xid" && e["code"] == 79 && e["gpu"] == 1)
    };
    while !has_xid(&urls[1]) {
        assert!(
            Instant::now() < deadline,
            "the XID never reached node 1's events"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !has_xid(&urls[0]) && !has_xid(&urls[2]),
        "only node 1 has it"
    );
    let (_, body) = get(&format!("{}/metrics", urls[1]));
    assert!(
        body.lines()
            .any(|l| l.starts_with("gpuwarden_gpu_xid_errors_total{") && l.contains("xid=\"79\"")),
        "the XID counter is in node 1's metrics"
    );

    rt.block_on(fleet.stop());
    for u in &urls {
        assert_eq!(get(&format!("{u}/metrics")).0, 0, "{u} still answers");
    }
}

/// Node lists are checked whole: every problem named with its node.
#[test]
fn a_bad_node_list_names_every_problem() {
    let mut list = nodes(3, 8);
    list[1].name = "sim-0".into();
    list[2].listen = list[0].listen;
    list[2].gpus = 0;
    let p = check(&list);
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[0].contains("nodes[1] (sim-0): name given twice"), "{p:?}");
    assert!(p
        .iter()
        .any(|e| e.contains("nodes[2]") && e.contains("given twice")));
    assert!(p.iter().any(|e| e.contains("gpus must be 1 to 64, not 0")));
    assert!(check(&[]).iter().any(|e| e.contains("not 0")));
    let u = uniform(3, "n-", "127.1.0.254".parse().unwrap(), 9410, 8, "m").unwrap();
    assert_eq!(u[2].listen.to_string(), "127.1.1.0:9410");
    assert_eq!(u[0].name, "n-00000");
    assert!(uniform(0, "n-", "127.1.0.1".parse().unwrap(), 1, 8, "m").is_err());
}

/// With a seed, each node still has GPUs of its own, and the same seed gives the same GPUs.
#[test]
fn a_seed_gives_every_node_its_own_gpus_and_the_same_again() {
    let mut seen = std::collections::HashSet::new();
    for name in ["sim-0", "sim-1", "sim-2"] {
        assert!(seen.insert(node_seed(7, name)), "{name}");
        assert_eq!(node_seed(7, name), node_seed(7, name));
        assert_ne!(node_seed(7, name), node_seed(8, name));
    }
    assert_eq!(node_seed(0, "sim-0"), 0, "0: the agent seeds by name");
}

fn call(method: &str, url: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let r = match (method, body) {
        ("POST", Some(b)) => agent.post(url).send_json(b),
        ("POST", None) => agent.post(url).send_empty(),
        ("DELETE", _) => agent.delete(url).call(),
        _ => agent.get(url).call(),
    };
    match r {
        Ok(mut r) => {
            let text = r.body_mut().read_to_string().unwrap_or_default();
            (
                r.status().as_u16(),
                serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
            )
        }
        Err(e) => (0, serde_json::Value::String(e.to_string())),
    }
}

/// Through the control API a node is added on the next spare address (and serves its own
/// GPUs), taken down (connections refused) and up again with its state, and removed; bad
/// requests are refused with the reason and change nothing.
#[test]
fn the_control_api_adds_takes_down_brings_up_and_removes_nodes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = FleetOptions {
        interval: Duration::from_millis(200),
        join: None,
        seed: 3,
        spare: Some("127.1.223.1:0".parse().unwrap()),
    };
    let (fleet, control) = rt
        .block_on(async {
            let fleet = start(&[], &opts)?;
            let b = crate::http::serve::bind("127.0.0.1:0")?;
            let addr = b.addrs()[0];
            let server = b.serve(control::router(fleet.clone()));
            anyhow::Ok((fleet, (server, addr)))
        })
        .unwrap();
    let api = format!("http://{}/v1/fleet/nodes", control.1);
    assert_eq!(call("GET", &api, None).1["nodes"], serde_json::json!([]));
    let add = |name: &str, gpus: u32| {
        call(
            "POST",
            &api,
            Some(serde_json::json!({"name": name, "gpus": gpus, "pool": "p",
                                     "labels": {"rack": "r1"}})),
        )
    };
    let (status, a) = add("dyn-0", 2);
    assert_eq!(status, 201, "{a}");
    let (status, b) = add("dyn-1", 4);
    assert_eq!(status, 201, "{b}");
    let url0 = a["address"].as_str().unwrap().to_string();
    let url1 = b["address"].as_str().unwrap().to_string();
    assert!(url0.starts_with("http://127.1.223.1:"), "{url0}");
    assert!(
        url1.starts_with("http://127.1.223.2:"),
        "the next address: {url1}"
    );
    let (_, m) = get(&format!("{url1}/metrics"));
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with("gpuwarden_gpu_up{") && l.contains("rack=\"r1\""))
            .count(),
        4,
        "{m}"
    );
    // Refused, with the reason: a name twice, a bad name, bad GPUs, an unknown field.
    assert_eq!(add("dyn-0", 2).0, 409);
    let (s, e) = add("bad name", 2);
    assert_eq!(s, 400);
    assert!(e["error"].as_str().unwrap().contains("a name is"), "{e}");
    assert_eq!(add("dyn-9", 0).0, 400);
    let (s, e) = call(
        "POST",
        &api,
        Some(serde_json::json!({"name": "x", "cpus": 1})),
    );
    assert_eq!(s, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("cpus"), "{e}");
    assert_eq!(
        call("GET", &api, None).1["nodes"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        call("GET", &api, None).1["nodes"][0]["address"],
        url0.as_str()
    );
    // JSON without a JSON content type (as `curl -d` sends it) is taken too; an error
    // names the problem, not a list entry.
    let plain: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = plain
        .post(&api)
        .content_type("application/x-www-form-urlencoded")
        .send(r#"{"name": "dyn-2", "gpus": 1}"#)
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(call("DELETE", &format!("{api}/dyn-2"), None).0, 204);
    let (_, e) = add("bad name", 2);
    assert!(!e["error"].as_str().unwrap().contains("nodes[0]"), "{e}");
    // What the control plane would refuse, or what would break /metrics, is refused here.
    for body in [
        serde_json::json!({"name": "-x"}),
        serde_json::json!({"name": "x".repeat(64)}),
        serde_json::json!({"name": "ok", "pool": "../x"}),
        serde_json::json!({"name": "ok", "labels": {"a b": "v"}}),
        serde_json::json!({"name": "ok", "labels": {"rack": "a\u{0}b"}}),
        serde_json::json!({"name": "ok", "model": "m".repeat(300)}),
    ] {
        let (s, e) = call("POST", &api, Some(body.clone()));
        assert_eq!(s, 400, "{body}: {e}");
    }

    // Down: refused connections; its fault state kept; up: serves again on its address.
    let (s, _) = call(
        "POST",
        &format!("{url0}/v1/fake/inject"),
        Some(serde_json::json!({"gpu": 0, "fault": "temperature", "value": 97.0})),
    );
    assert_eq!(s, 200);
    assert_eq!(call("POST", &format!("{api}/dyn-0/down"), None).0, 204);
    assert_eq!(
        get(&format!("{url0}/metrics")).0,
        0,
        "down refuses connections"
    );
    assert_eq!(call("GET", &api, None).1["nodes"][0]["up"], false);
    assert_eq!(
        get(&format!("{url1}/metrics")).0,
        200,
        "the other node serves"
    );
    assert_eq!(call("POST", &format!("{api}/dyn-0/up"), None).0, 204);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, m) = get(&format!("{url0}/metrics"));
        if s == 200 && m.contains("gpuwarden_gpu_temperature_celsius{") && m.contains(" 97") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "up again with its state: {s} {m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(call("POST", &format!("{api}/nope/down"), None).0, 404);
    let (s, e) = call("GET", &format!("{api}/dyn-0/sideways"), None);
    assert_eq!(s, 404);
    assert!(
        e["error"].as_str().unwrap().contains("no such route"),
        "{e}"
    );
    let (s, e) = call("DELETE", &api, None);
    assert_eq!(s, 405);
    assert!(e["error"].is_string(), "{e}");

    // Removed: gone from the list, its address refuses, its name can come again.
    assert_eq!(call("DELETE", &format!("{api}/dyn-1"), None).0, 204);
    assert_eq!(call("DELETE", &format!("{api}/dyn-1"), None).0, 404);
    assert_eq!(get(&format!("{url1}/metrics")).0, 0);
    let names: Vec<String> = fleet.nodes().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["dyn-0"]);
    assert_eq!(add("dyn-1", 1).0, 201);

    rt.block_on(async {
        control.0.stop().await;
        fleet.stop().await;
    });
    assert_eq!(get(&format!("{url0}/metrics")).0, 0);
}

/// A fleet without spare addresses takes no nodes, and says so.
#[test]
fn a_fleet_without_spare_addresses_takes_no_nodes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = FleetOptions {
        interval: Duration::from_millis(500),
        join: None,
        seed: 1,
        spare: None,
    };
    let fleet = rt.block_on(async { start(&nodes(1, 1), &opts) }).unwrap();
    let mut n = nodes(2, 1).remove(1);
    n.name = "extra".into();
    let e = rt.block_on(async { fleet.add(&n, None) }).unwrap_err();
    assert!(matches!(e, FleetError::Full(_)), "{e}");
    assert!(
        start(&[], &opts).is_err(),
        "an empty fleet needs spare addresses"
    );
    rt.block_on(fleet.stop());
}
