//! Remediation end to end: a fault injected on a real agent turns its node unhealthy, and
//! the control plane cordons, drains and terminates it through the agent's hooks; every
//! step is visible in the API, the CLI, the audit log and the webhooks. Then the hard
//! cases: the agent unreachable when a command is due, and the control plane killed in the
//! middle of a drain.

use std::path::Path;
use std::time::Duration;

use gpuwarden_e2e::{cli, wait_for, Api, Capture, Scratch};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::cp::{self, ADMIN};

/// A hook that appends `what`, the node and the reason to `log`, as one line.
fn hook(what: &str, log: &Path) -> String {
    format!(
        "['/bin/sh', '-c', 'echo {what} \"$1\" \"$2\" >> {}', 'hook', '{{node}}', '{{reason}}']",
        log.display()
    )
}

fn lines(log: &Path, what: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(&format!("{what} ")))
        .map(str::to_string)
        .collect()
}

fn commands(api: &Api, node: &str) -> Vec<Value> {
    api.get(&format!("/v1/nodes/{node}/commands"))["commands"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn command<'a>(cmds: &'a [Value], kind: &str) -> Option<&'a Value> {
    cmds.iter().find(|c| c["kind"] == kind)
}

fn inject(agent: &str, body: Value) {
    let (st, v) = Api::new(agent, "").call("POST", "/v1/fake/inject", Some(body));
    assert_eq!(st, 200, "{v}");
}

#[test]
fn a_fatal_xid_is_cordoned_drained_and_terminated_through_the_hooks() {
    let dir = Scratch::new("remediate");
    let log = dir.path().join("hooks.log");
    let receiver = Capture::start();
    let (_cp, api) = cp::start(
        &dir,
        &format!(
            "[remediation]\naction = \"cordon_drain_terminate\"\ndrain_timeout = \"60s\"\n\
             [commands]\npoll_interval = \"200ms\"\n\
             [[webhooks]]\nurl = \"{}\"\nsecret = \"whsec-e2e\"\n",
            receiver.url
        ),
    );
    let agent = cp::agent_with(
        &api.base,
        "gpu-r1",
        &dir,
        &format!(
            "[commands]\ncordon = {}\nterminate = {}\ndrain_poll = \"100ms\"\n",
            hook("cordon", &log),
            hook("terminate", &log)
        ),
    );
    cp::online(&api, "gpu-r1");
    // Work on GPU 0 keeps the drain waiting until it stops.
    inject(
        &agent.base,
        json!({"gpu": 0, "fault": "processes", "count": 2}),
    );
    inject(&agent.base, json!({"gpu": 3, "fault": "xid", "code": 79}));

    let node = wait_for("cordoned, then draining", 30, || {
        let n = api.get("/v1/nodes/gpu-r1");
        (n["status"] == "draining").then_some(n)
    });
    assert_eq!(node["health"], "unhealthy");
    let cordon = lines(&log, "cordon");
    assert_eq!(cordon.len(), 1, "{cordon:?}");
    assert!(
        cordon[0].starts_with("cordon gpu-r1 cordon_drain_terminate: "),
        "{}",
        cordon[0]
    );
    assert!(
        cordon[0].contains("79"),
        "the reason names the XID: {}",
        cordon[0]
    );
    let drain = wait_for("the agent draining", 10, || {
        let c = commands(&api, "gpu-r1");
        command(&c, "drain")
            .filter(|d| d["state"] == "running")
            .cloned()
    });
    assert_eq!(drain["requested_by"], "remediation");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        api.get("/v1/nodes/gpu-r1")["status"],
        "draining",
        "work still runs"
    );
    assert!(lines(&log, "terminate").is_empty());

    // The work ends: the drain completes, then the terminate hook runs.
    inject(
        &agent.base,
        json!({"gpu": 0, "fault": "processes", "count": 0}),
    );
    wait_for("terminated", 30, || {
        (api.get("/v1/nodes/gpu-r1")["status"] == "terminated").then_some(())
    });
    assert_eq!(lines(&log, "terminate").len(), 1);
    assert_eq!(lines(&log, "cordon").len(), 1, "no step ran twice");
    let cmds = commands(&api, "gpu-r1");
    for kind in ["cordon", "drain", "terminate"] {
        let c = command(&cmds, kind).unwrap_or_else(|| panic!("no {kind} in {cmds:?}"));
        assert_eq!(c["state"], "succeeded", "{c}");
    }
    assert_eq!(
        command(&cmds, "drain").unwrap()["result"]["result"]["completed_by"],
        "idle"
    );

    // The CLI shows the commands, the history and the audit log.
    let (code, out, err) = cli(&["nodes", "commands", "gpu-r1"], &api.base, ADMIN);
    assert_eq!(code, 0, "{err}");
    for want in [
        "cordon",
        "drain",
        "terminate",
        "succeeded",
        "remediation",
        "drained: no compute process",
    ] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }
    let (_, out, _) = cli(&["nodes", "history", "gpu-r1"], &api.base, ADMIN);
    for want in [
        "cordoned",
        "draining",
        "terminating",
        "terminated",
        "policy:fatal-xid",
    ] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }
    let (_, out, _) = cli(&["audit"], &api.base, ADMIN);
    for want in [
        "node.cordon",
        "node.drain",
        "node.terminate",
        "command.succeeded",
    ] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }

    // The webhook heard every step, signed.
    let bodies = wait_for("the webhooks", 10, || {
        let b = receiver.bodies();
        let terminate = b
            .iter()
            .any(|v| v["kind"] == "command" && v["command"]["kind"] == "terminate");
        terminate.then_some(b)
    });
    assert!(bodies.iter().any(|v| v["kind"] == "health"
        && v["health"]["to"] == "unhealthy"
        && v["health"]["rule"] == "fatal-xid"));
    let steps: Vec<&str> = bodies
        .iter()
        .filter(|v| v["kind"] == "remediation")
        .filter_map(|v| v["remediation"]["step"].as_str())
        .collect();
    assert_eq!(steps, ["cordon", "drain", "terminate"]);
    for c in receiver.seen.lock().unwrap().iter() {
        let ts = c.header("X-Gpuwarden-Timestamp").expect("timestamp");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec-e2e").unwrap();
        mac.update(format!("{ts}.{}", c.body).as_bytes());
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            c.header("X-Gpuwarden-Signature"),
            Some(format!("sha256={want}").as_str())
        );
        assert!(c.header("X-Gpuwarden-Event").is_some());
    }
}

#[test]
fn commands_reach_an_agent_that_was_away_once_and_a_killed_control_plane_carries_on() {
    let dir = Scratch::new("remediate-hard");
    let log = dir.path().join("hooks.log");
    // node-offline after 1 s instead of 10 min, so the outage itself is the fault.
    let policy = std::fs::read_to_string(gpuwarden_e2e::repo().join("config/policies.toml"))
        .unwrap()
        .replace("for = \"10m\"", "for = \"1s\"");
    let policy_file = dir.write("policies.toml", &policy);
    let cp_extra = format!(
        "[health]\npolicy_file = \"{}\"\n\
         [remediation]\naction = \"cordon_drain_terminate\"\n\
         [commands]\npoll_interval = \"200ms\"\nretry_max = \"2s\"\n",
        policy_file.display()
    );
    let (mut cp1, api) = cp::start(&dir, &cp_extra);
    let agent_cfg = format!(
        "[commands]\ncordon = {}\nterminate = {}\n\
         drain = ['/bin/sh', '-c', 'echo drain \"$1\" >> {}; sleep 3', 'hook', '{{node}}']\n\
         drain_until = \"hook\"\n",
        hook("cordon", &log),
        hook("terminate", &log),
        log.display()
    );
    let mut agent = cp::agent_with(&api.base, "gpu-r2", &dir, &agent_cfg);
    cp::online(&api, "gpu-r2");

    // The agent dies: the node goes offline, then unhealthy, and the cordon cannot be
    // delivered; the control plane keeps trying with backoff.
    agent.kill();
    let cordon = wait_for("a cordon retried while the agent is away", 40, || {
        let c = commands(&api, "gpu-r2");
        command(&c, "cordon")
            .filter(|c| c["state"] == "pending" && c["attempts"].as_i64() >= Some(2))
            .cloned()
    });
    assert!(
        cordon["message"]
            .as_str()
            .unwrap()
            .contains("delivery failed"),
        "{cordon}"
    );
    assert_eq!(api.get("/v1/nodes/gpu-r2")["health"], "unhealthy");
    assert!(lines(&log, "cordon").is_empty());

    // It comes back (same token file and command record): the cordon arrives, once.
    let _agent = cp::agent_with(&api.base, "gpu-r2", &dir, &agent_cfg);
    wait_for("the drain running", 30, || {
        let c = commands(&api, "gpu-r2");
        command(&c, "drain")
            .filter(|d| d["state"] == "running")
            .map(|_| ())
    });
    assert_eq!(lines(&log, "cordon").len(), 1);

    // The control plane is killed mid-drain, and started again on the same database.
    cp1.kill();
    std::thread::sleep(Duration::from_secs(4));
    let (_cp2, api2) = cp::start(&dir, &cp_extra);
    wait_for("terminated after the restart", 40, || {
        (api2.get("/v1/nodes/gpu-r2")["status"] == "terminated").then_some(())
    });
    assert_eq!(lines(&log, "cordon").len(), 1, "cordon ran once");
    assert_eq!(lines(&log, "drain").len(), 1, "drain ran once");
    assert_eq!(lines(&log, "terminate").len(), 1, "terminate ran once");
    let cmds = commands(&api2, "gpu-r2");
    assert_eq!(cmds.len(), 3, "{cmds:?}");
    assert!(command(&cmds, "cordon").unwrap()["attempts"].as_i64() > Some(2));
}
