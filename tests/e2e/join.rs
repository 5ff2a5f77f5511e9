//! Joining, scraping, events and the CLI with real processes.

use gpuwarden_e2e::{cli, start_bin, wait_for, Api, Scratch};
use serde_json::json;

use crate::cp::{self, ADMIN};

#[test]
fn agents_self_register_are_scraped_and_their_events_are_stored_once() {
    let dir = Scratch::new("join");
    let (_cp, api) = cp::start(&dir, "");
    let a1 = cp::agent(&api.base, "gpu-01", &dir);
    let mut a2 = cp::agent(&api.base, "gpu-02", &dir);
    let n1 = cp::online(&api, "gpu-01");
    cp::online(&api, "gpu-02");
    assert_eq!(n1["status"], "active");
    assert_eq!(
        n1["gpus"].as_array().unwrap().len(),
        8,
        "capabilities carry the GPUs"
    );
    assert_eq!(n1["capabilities"]["backend"], "fake");
    assert_eq!(n1["address"].as_str().unwrap(), a1.base);

    // A fatal XID on the agent becomes one stored event with its details.
    let inject = Api::new(&a1.base, "");
    let (st, _) = inject.call(
        "POST",
        "/v1/fake/inject",
        Some(json!({"gpu": 3, "fault": "xid", "code": 79})),
    );
    assert_eq!(st, 200);
    let events = wait_for("the XID 79 event", 20, || {
        let v = api.get("/v1/nodes/gpu-01/events");
        let e = v["events"].as_array().unwrap().clone();
        e.iter()
            .any(|e| e["kind"] == "xid" && e["code"] == 79)
            .then_some(e)
    });
    let x: Vec<_> = events.iter().filter(|e| e["kind"] == "xid").collect();
    assert_eq!(x.len(), 1, "{events:?}");
    assert_eq!(
        (
            x[0]["gpu"].as_i64(),
            x[0]["severity"].as_str(),
            x[0]["action"].as_str()
        ),
        (Some(3), Some("fatal"), Some("reboot_node"))
    );
    // Several scrapes later, still once.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let v = api.get("/v1/nodes/gpu-01/events");
    assert_eq!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "xid")
            .count(),
        1
    );
    let obs = api.get("/v1/nodes/gpu-01/observation");
    assert_eq!(
        obs["observation"].as_array().unwrap().len(),
        9,
        "8 GPUs and the node"
    );

    // The CLI shows the same, as tables and as JSON.
    let (code, out, err) = cli(&["nodes", "list"], &api.base, ADMIN);
    assert_eq!(code, 0, "{err}");
    let header = out.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("CONNECTIVITY"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("gpu-01 ") && l.contains(" online ") && l.contains(" 8 ")),
        "{out}"
    );
    assert!(out.contains("2 of 2 nodes"));
    let (code, out, _) = cli(
        &["nodes", "events", "gpu-01", "--since", "10m"],
        &api.base,
        ADMIN,
    );
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.contains(" xid ") && l.contains(" 79 ") && l.contains("fatal")),
        "{out}"
    );
    let (code, out, _) = cli(&["nodes", "get", "gpu-01", "-o", "json"], &api.base, ADMIN);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "gpu-01");
    let (code, _, err) = cli(&["nodes", "get", "gpu-77"], &api.base, ADMIN);
    assert_eq!(code, 1);
    assert!(
        err.contains("not found") && err.contains("HTTP 404"),
        "{err}"
    );
    let (code, _, err) = cli(&["nodes", "list"], &api.base, "wrong-token-0000000000");
    assert_eq!(code, 1);
    assert!(err.contains("invalid admin token"), "{err}");
    let (code, _, err) = cli(&["nodes", "list"], "http://127.0.0.1:1", ADMIN);
    assert_eq!(code, 3, "unreachable is its own exit code: {err}");
    // Server and token from the CLI config file, no flags.
    let cli_cfg = dir.write(
        "cli.toml",
        &format!("server = \"{}\"\ntoken = \"{ADMIN}\"\n", api.base),
    );
    let out = std::process::Command::new(gpuwarden_e2e::bins().join("gpuwarden"))
        .args(["nodes", "list", "-o", "json"])
        .env("GPUWARDEN_CLI_CONFIG", &cli_cfg)
        .env_remove("GPUWARDEN_SERVER")
        .env_remove("GPUWARDEN_ADMIN_TOKEN")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total"], 2);

    // Prometheus service discovery lists both agents.
    let sd = api.get("/v1/sd");
    let mut targets: Vec<String> = sd
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["targets"][0].as_str().unwrap().to_string())
        .collect();
    targets.sort();
    assert_eq!(targets.len(), 2);

    // A graceful agent shutdown deregisters its node: offline at once, with the reason.
    a2.stop();
    let n2 = wait_for("gpu-02 deregistered", 10, || {
        let v = api.get("/v1/nodes/gpu-02");
        (v["deregistered"] == true).then_some(v)
    });
    assert_eq!(n2["connectivity"], "offline");
    let h = api.get("/v1/nodes/gpu-02/transitions");
    assert_eq!(
        h["transitions"][0]["reason"],
        "agent deregistered (graceful shutdown)"
    );
    drop(a1);
}

#[test]
fn a_pre_created_node_joins_with_its_join_token_and_rejoins_after_a_restart() {
    let dir = Scratch::new("precreated");
    let (_cp, api) = cp::start(&dir, "");
    let (code, _, err) = cli(
        &[
            "nodes", "create", "gpu-07", "--pool", "train", "--label", "rack=r7",
        ],
        &api.base,
        ADMIN,
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(
        &["nodes", "token", "gpu-07", "-o", "json"],
        &api.base,
        ADMIN,
    );
    assert_eq!(code, 0, "{err}");
    let issued: serde_json::Value = serde_json::from_str(&out).unwrap();
    let token = issued["token"].as_str().unwrap();
    assert!(issued["agent_config"].as_str().unwrap().contains(token));

    let token_file = dir.path().join("node-token");
    let cfg = dir.write(
        "agent.toml",
        &format!(
            "[node]\nid = \"gpu-07\"\n[gpu]\nbackend = \"fake\"\n[control_plane]\nurl = \"{}\"\ntoken = \"{token}\"\ntoken_file = \"{}\"\n",
            api.base,
            token_file.display()
        ),
    );
    let start = || {
        start_bin(
            "gpuwarden-agent",
            &["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"],
            &[],
            dir.path(),
        )
    };
    let mut agent = start();
    let n = cp::online(&api, "gpu-07");
    assert_eq!(
        (
            n["status"].as_str(),
            n["pool"].as_str(),
            n["labels"]["rack"].as_str()
        ),
        (Some("active"), Some("train"), Some("r7"))
    );
    let kept = std::fs::read_to_string(&token_file).unwrap();
    assert!(
        kept.trim().starts_with("gwn_") && kept.trim() != token,
        "the node token is kept, not the join token"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The join token is spent; the agent comes back with the node token it kept.
    agent.stop();
    wait_for("deregistered", 10, || {
        (api.get("/v1/nodes/gpu-07")["deregistered"] == true).then_some(())
    });
    let _agent = start();
    let again = cp::online(&api, "gpu-07");
    assert_eq!(again["id"], n["id"], "the same node");
    assert_eq!(again["deregistered"], false);

    // The control plane forgets the node: the agent registers again on its own (its kept
    // node token is gone with the node, so this needs the bootstrap token: without one the
    // agent keeps retrying and says why).
    let (st, _) = api.call("DELETE", "/v1/nodes/gpu-07", None);
    assert_eq!(st, 204);
    std::thread::sleep(std::time::Duration::from_secs(6));
    let (st, _) = api.call("GET", "/v1/nodes/gpu-07", None);
    assert_eq!(st, 404, "no credential left: the node stays gone");
    assert!(
        _agent.log().contains("does not know this node any more"),
        "{}",
        _agent.log()
    );
    assert!(_agent
        .log()
        .contains("registration failed; retrying with backoff"));
}

#[test]
fn a_forgotten_node_registers_again_with_the_bootstrap_token() {
    let dir = Scratch::new("forgotten");
    let (_cp, api) = cp::start(&dir, "");
    let agent = cp::agent(&api.base, "gpu-05", &dir);
    let first = cp::online(&api, "gpu-05");
    let (st, _) = api.call(
        "DELETE",
        &format!("/v1/nodes/{}", first["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(st, 204);
    let back = cp::online(&api, "gpu-05");
    assert_ne!(back["id"], first["id"], "a new node record");
    assert!(agent.log().contains("registering again"));
}

#[test]
fn a_fatal_xid_makes_the_node_unhealthy_until_cleared_and_a_minor_one_degrades_it_briefly() {
    let dir = Scratch::new("health");
    let (_cp, api) = cp::start(&dir, "[health]\ndegraded_clear_after = \"3s\"\n");
    let agent = cp::agent(&api.base, "gpu-01", &dir);
    cp::online(&api, "gpu-01");
    wait_for("healthy", 10, || {
        (api.get("/v1/nodes/gpu-01")["health"] == "healthy").then_some(())
    });
    let inject = Api::new(&agent.base, "");

    // XID 13: degraded, then healthy again once nothing has matched for 3 s.
    inject.call(
        "POST",
        "/v1/fake/inject",
        Some(json!({"gpu": 2, "fault": "xid", "code": 13})),
    );
    wait_for("degraded", 15, || {
        (api.get("/v1/nodes/gpu-01")["health"] == "degraded").then_some(())
    });
    wait_for("healthy again", 15, || {
        (api.get("/v1/nodes/gpu-01")["health"] == "healthy").then_some(())
    });

    // XID 79: unhealthy, and it sticks.
    inject.call(
        "POST",
        "/v1/fake/inject",
        Some(json!({"gpu": 3, "fault": "xid", "code": 79})),
    );
    wait_for("unhealthy", 15, || {
        (api.get("/v1/nodes/gpu-01")["health"] == "unhealthy").then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(
        api.get("/v1/nodes/gpu-01")["health"],
        "unhealthy",
        "unhealthy sticks"
    );
    let h = api.get("/v1/nodes/gpu-01/transitions");
    let t = h["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["to"] == "unhealthy")
        .unwrap()
        .clone();
    assert_eq!(t["actor"], "policy:fatal-xid");
    assert!(t["reason"].as_str().unwrap().contains("79"), "{t}");

    // The operator clears it: nothing holds any more (an XID is an event), so healthy.
    let (code, out, err) = cli(&["nodes", "clear-health", "gpu-01"], &api.base, ADMIN);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "node gpu-01 is healthy");
    assert_eq!(api.get("/v1/nodes/gpu-01")["health"], "healthy");
    let audit = api.get("/v1/audit");
    assert!(audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "node.clear_health"));
}
