//! Restarts: of the control plane on the same database, and of an agent.

use gpuwarden_e2e::{wait_for, Api, Scratch};
use serde_json::json;

use crate::cp;

fn xids(api: &Api, node: &str) -> usize {
    api.get(&format!("/v1/nodes/{node}/events?limit=1000"))["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "xid")
        .count()
}

#[test]
fn a_restarted_control_plane_keeps_everything_and_duplicates_nothing() {
    let dir = Scratch::new("cprestart");
    let (mut cp1, api) = cp::start(&dir, "");
    let agent = cp::agent(&api.base, "gpu-01", &dir);
    let node = cp::online(&api, "gpu-01");
    let inject = Api::new(&agent.base, "");
    inject.call(
        "POST",
        "/v1/fake/inject",
        Some(json!({"gpu": 0, "fault": "xid", "code": 79})),
    );
    inject.call(
        "POST",
        "/v1/fake/inject",
        Some(json!({"gpu": 1, "fault": "xid", "code": 13})),
    );
    wait_for("two XIDs stored", 20, || {
        (xids(&api, "gpu-01") == 2).then_some(())
    });
    let (st, v) = api.call(
        "POST",
        "/v1/nodes/gpu-01/cordon",
        Some(json!({"reason": "before restart"})),
    );
    assert_eq!(st, 202, "{v}");
    let token = std::fs::read_to_string(dir.path().join("gpu-01.token")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500)); // one observation flush

    assert!(
        cp1.stop().is_some_and(|s| s.success()),
        "graceful stop:\n{}",
        cp1.log()
    );
    // The agent keeps running and counting; the control plane comes back on the same file
    // (a new port: the agent's address is what the control plane scrapes, not the other way).
    let (_cp2, api2) = cp::start(&dir, "");
    let again = cp::online(&api2, "gpu-01");
    assert_eq!(again["id"], node["id"]);
    assert_eq!(again["status"], "cordoned");
    let cmds = api2.get("/v1/nodes/gpu-01/commands");
    assert_eq!(cmds["commands"][0]["kind"], "cordon");
    let obs = api2.get("/v1/nodes/gpu-01/observation");
    assert_eq!(obs["observation"].as_array().unwrap().len(), 9);
    // The agent's node token still works: tokens survived.
    let as_node = Api::new(&api2.base, token.trim());
    let (st, _) = as_node.call(
        "GET",
        &format!("/v1/nodes/{}", node["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(st, 200);
    // Scraping resumed without storing the old events again.
    let seen = api2.get("/v1/nodes/gpu-01")["scrape"]["last_scrape"].clone();
    wait_for("another scrape", 10, || {
        (api2.get("/v1/nodes/gpu-01")["scrape"]["last_scrape"] != seen).then_some(())
    });
    assert_eq!(xids(&api2, "gpu-01"), 2, "no event stored twice");
    // A new fault after the restart is stored once.
    inject.call(
        "POST",
        "/v1/fake/inject",
        Some(json!({"gpu": 2, "fault": "xid", "code": 48})),
    );
    wait_for("the third XID", 20, || {
        (xids(&api2, "gpu-01") == 3).then_some(())
    });
    let audit = api2.get("/v1/audit");
    assert!(audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "node.cordon"));
}

#[test]
fn an_agent_restart_neither_loses_nor_duplicates_events() {
    let dir = Scratch::new("agentrestart");
    let (_cp, api) = cp::start(&dir, "");
    let mut agent = cp::agent(&api.base, "gpu-03", &dir);
    cp::online(&api, "gpu-03");
    Api::new(&agent.base, "").call(
        "POST",
        "/v1/fake/inject",
        Some(json!({"gpu": 0, "fault": "xid", "code": 79})),
    );
    wait_for("first XID", 20, || {
        (xids(&api, "gpu-03") == 1).then_some(())
    });
    agent.kill(); // a crash: no deregistration
    let agent = cp::agent(&api.base, "gpu-03", &dir);
    cp::online(&api, "gpu-03");
    Api::new(&agent.base, "").call(
        "POST",
        "/v1/fake/inject",
        Some(json!({"gpu": 0, "fault": "xid", "code": 79})),
    );
    wait_for("second XID", 20, || {
        (xids(&api, "gpu-03") == 2).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(2000));
    assert_eq!(xids(&api, "gpu-03"), 2);
}
