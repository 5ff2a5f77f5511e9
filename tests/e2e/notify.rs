//! Urgent events are pushed: with a 60 s scrape interval, a fatal XID, an uncorrectable ECC
//! error or a critical temperature on a real agent gets its node cordoned within 5 s, because
//! the agent notifies the control plane at once (`POST /v1/nodes/{id}/notify`) instead of
//! waiting for the next scrape.

use std::time::{Duration, Instant};

use gpuwarden_e2e::{wait_for, Api, Scratch};
use serde_json::json;

use crate::cp;

/// Gpu and node rules judge the scraped values, not the event: a notice also scrapes the
/// node at once, so an uncorrectable ECC error and a critical temperature are cordoned as
/// fast as an XID.
#[test]
fn ecc_and_temperature_faults_are_cordoned_within_five_seconds_at_a_sixty_second_interval() {
    let dir = Scratch::new("notify-state");
    let (_cp, api) = cp::start_every(
        &dir,
        "60s",
        "[remediation]\naction = \"cordon\"\n[commands]\npoll_interval = \"200ms\"\n",
    );
    let faults = [
        (
            "gpu-e1",
            json!({"gpu": 2, "fault": "ecc", "type": "double_bit"}),
        ),
        (
            "gpu-t1",
            json!({"gpu": 1, "fault": "temperature", "value": 97}),
        ),
    ];
    let agents: Vec<_> = faults
        .iter()
        .map(|(name, _)| cp::agent(&api.base, name, &dir))
        .collect();
    for a in &agents {
        wait_for("the agent joined", 30, || {
            a.log()
                .contains("registered with the control plane")
                .then_some(())
        });
    }
    std::thread::sleep(Duration::from_millis(200));
    for ((name, fault), agent) in faults.iter().zip(&agents) {
        let injected = Instant::now();
        let (st, v) =
            Api::new(&agent.base, "").call("POST", "/v1/fake/inject", Some(fault.clone()));
        assert_eq!(st, 200, "{v}");
        let node = wait_for(&format!("{name} cordoned"), 5, || {
            let v = api.get(&format!("/v1/nodes/{name}"));
            (v["status"] == "cordoned").then_some(v)
        });
        let took = injected.elapsed();
        assert!(took < Duration::from_secs(5), "{name}: {took:?}");
        assert_eq!(node["health"], "unhealthy", "{node}");
        eprintln!("{name}: {fault} -> cordoned in {} ms", took.as_millis());
    }
}

#[test]
fn a_fatal_xid_is_cordoned_within_five_seconds_at_a_sixty_second_scrape_interval() {
    let dir = Scratch::new("notify");
    let (_cp, api) = cp::start_every(
        &dir,
        "60s",
        "[remediation]\naction = \"cordon\"\n[commands]\npoll_interval = \"200ms\"\n",
    );
    let agent = cp::agent(&api.base, "gpu-n1", &dir);
    wait_for("the agent joined", 30, || {
        agent
            .log()
            .contains("registered with the control plane")
            .then_some(())
    });
    // The notifier takes the node token right after that line.
    std::thread::sleep(Duration::from_millis(200));
    let injected = Instant::now();
    let (st, v) = Api::new(&agent.base, "").call(
        "POST",
        "/v1/fake/inject",
        Some(json!({"gpu": 3, "fault": "xid", "code": 79})),
    );
    assert_eq!(st, 200, "{v}");
    let node = wait_for("the node cordoned", 5, || {
        let v = api.get("/v1/nodes/gpu-n1");
        (v["status"] == "cordoned").then_some(v)
    });
    let took = injected.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(node["health"], "unhealthy", "{node}");
    // The control plane read the events for the notice (not at a scrape).
    let (_, m) = api.call("GET", "/metrics", None);
    assert!(
        m.as_str()
            .unwrap_or_default()
            .contains("gpuwarden_cp_notice_reads_total 1"),
        "{m}"
    );
    // The agent's /metrics is rendered each collection (500 ms here).
    wait_for("the agent's notice counted as sent", 5, || {
        let (_, m) = Api::new(&agent.base, "").call("GET", "/metrics", None);
        m.as_str()?
            .contains("gpuwarden_agent_notices_total{result=\"sent\"} 1")
            .then_some(())
    });
    eprintln!("fault -> cordoned in {} ms", took.as_millis());
}
