//! WebAssembly plugins through the real agent: example plugins against injected faults and
//! a plugin's report through a run-diagnostic command. Hostile plugins are in
//! `plugin_hostile`, the authoring commands in `plugin_authoring`, bad files refused at load
//! in `plugin_load`, hot reload and the compile cache in `plugin_lifecycle`, deadlines and
//! the bounds of runs in `plugin_runs`.

use std::time::Duration;

use crate::plugin_runs::node_token;
use crate::util::{plugin_entry, Agent, Scratch};

fn status(agent: &Agent, check: &str) -> Option<f64> {
    agent
        .metrics()
        .value("gpuwarden_health_check_status", &[("check", check)])
}

pub(crate) fn wait_status(agent: &Agent, check: &str, want: f64) {
    agent.wait_metrics(&format!("{check} status {want}"), |m| {
        m.value("gpuwarden_health_check_status", &[("check", check)]) == Some(want)
    });
}

/// Waits (bounded) for a health event from plugin `source` on `gpu` with `severity`.
fn wait_plugin_event(agent: &Agent, source: &str, gpu: u64, severity: &str) {
    gpuwarden_testkit::poll(Duration::from_secs(60), || {
        let events = agent.events_after(0);
        events["events"]
            .as_array()?
            .iter()
            .any(|e| {
                e["source"] == source && e["gpu"].as_u64() == Some(gpu) && e["severity"] == severity
            })
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!("timed out waiting for a {severity} event from {source} on GPU {gpu}")
    });
}

#[test]
fn example_plugins_flag_injected_faults_through_the_agent() {
    let dir = Scratch::new("examples");
    let (token, bearer) = node_token(&dir);
    let fast = "interval = \"200ms\"";
    let cfg = format!(
        "[gpu]\nbackend = \"fake\"\nfake_count = 8\n{token}{}{}{}{}{}{}",
        plugin_entry("xid", "xid.wasm", fast),
        plugin_entry("thermal", "thermal.wasm", fast),
        plugin_entry("ecc", "ecc.wasm", fast),
        plugin_entry("pcie", "pcie.wasm", fast),
        plugin_entry("nvlink", "nvlink.wasm", fast),
        plugin_entry(
            "gpu-sanity",
            "gpu_sanity.wasm",
            "kind = \"diagnostic\"\n[plugins.config]\nexpect_gpus = 8"
        ),
    );
    let agent = Agent::start(
        &["--config", dir.write("agent.toml", &cfg).to_str().unwrap()],
        &[],
    );
    for check in ["xid", "thermal", "ecc", "pcie", "nvlink"] {
        wait_status(&agent, check, 0.0);
    }
    // The diagnostic compiles beside the checks (seconds in a debug build on a busy machine):
    // ask for it once it is loaded.
    agent.wait_plugins("gpu-sanity loaded", |p| {
        p["plugins"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|x| x["name"] == "gpu-sanity" && x["loaded"] == true)
        })
    });
    let (s, body) = agent.post_as("/v1/plugins/gpu-sanity/run", &bearer, "");
    assert_eq!(s, 200, "{body}");
    let healthy: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(healthy["report"]["status"], "healthy", "{body}");

    for fault in [
        r#"{"gpu":0,"fault":"xid","code":79}"#,
        r#"{"gpu":1,"fault":"temperature","value":97}"#,
        r#"{"gpu":2,"fault":"ecc","type":"double_bit"}"#,
        r#"{"gpu":5,"fault":"pcie_degraded"}"#,
        r#"{"gpu":4,"fault":"nvlink_down","link":3}"#,
    ] {
        assert_eq!(agent.post("/v1/fake/inject", fault).0, 200, "{fault}");
    }
    wait_status(&agent, "xid", 2.0);
    wait_status(&agent, "thermal", 2.0);
    wait_status(&agent, "ecc", 2.0);
    wait_status(&agent, "pcie", 1.0);
    wait_status(&agent, "nvlink", 2.0);

    // Findings name the GPU and carry the XID table's action.
    let xid = agent.plugin("xid").unwrap();
    let f = &xid["last_result"]["report"]["findings"][0];
    assert_eq!(
        (
            f["gpu"].as_u64(),
            f["status"].as_str(),
            f["action"].as_str()
        ),
        (Some(0), Some("unhealthy"), Some("reboot_node")),
        "{xid:#}"
    );
    let nv = agent.plugin("nvlink").unwrap();
    assert!(
        nv["last_result"]["report"]["message"]
            .as_str()
            .unwrap()
            .contains("GPU 4: NVLink(s) down: 3"),
        "{nv:#}"
    );

    // Degraded and unhealthy findings became health events, once each.
    std::thread::sleep(Duration::from_millis(600));
    let events = agent.events_after(0);
    let plugin_events: Vec<(String, Option<u64>, String)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "plugin")
        .map(|e| {
            (
                e["source"].as_str().unwrap().to_string(),
                e["gpu"].as_u64(),
                e["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (source, gpu, sev) in [
        ("plugin:xid", 0, "fatal"),
        ("plugin:thermal", 1, "fatal"),
        ("plugin:ecc", 2, "fatal"),
        ("plugin:pcie", 5, "warning"),
        ("plugin:nvlink", 4, "fatal"),
    ] {
        let n = plugin_events
            .iter()
            .filter(|(s, g, v)| s == source && *g == Some(gpu) && v == sev)
            .count();
        assert_eq!(n, 1, "{source} GPU {gpu} {sev}: {plugin_events:?}");
    }

    // Growth checks compare with the previous run.
    assert_eq!(agent.post("/v1/fake/clear", "").0, 200);
    wait_status(&agent, "pcie", 0.0);
    wait_status(&agent, "nvlink", 0.0);
    wait_status(&agent, "thermal", 0.0);
    assert_eq!(
        agent
            .post(
                "/v1/fake/inject",
                r#"{"gpu":6,"fault":"pcie_replays","count":50}"#
            )
            .0,
        200
    );
    assert_eq!(
        agent
            .post(
                "/v1/fake/inject",
                r#"{"gpu":7,"fault":"nvlink_errors","link":2,"count":9}"#
            )
            .0,
        200
    );
    // A degraded verdict lasts one run (200 ms) while the counters grow, too short to catch
    // reliably on /metrics on a busy machine; the health event it leaves is kept.
    wait_plugin_event(&agent, "plugin:pcie", 6, "warning");
    wait_plugin_event(&agent, "plugin:nvlink", 7, "warning");
    // …and clear once the counters stop growing.
    wait_status(&agent, "pcie", 0.0);
    wait_status(&agent, "nvlink", 0.0);
    // The uncorrectable ECC count and the XID window persist after the faults clear.
    assert_eq!(status(&agent, "ecc"), Some(2.0));
    assert_eq!(status(&agent, "xid"), Some(2.0));

    // The diagnostic takes parameters.
    let (s, body) = agent.post_as(
        "/v1/plugins/gpu-sanity/run",
        &bearer,
        r#"{"checks":"inventory,lost","expect_gpus":9}"#,
    );
    assert_eq!(s, 200, "{body}");
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["report"]["status"], "unhealthy", "{body}");
    assert!(
        d["report"]["message"]
            .as_str()
            .unwrap()
            .contains("8 GPUs, expected 9"),
        "{body}"
    );
    assert_eq!(
        agent.plugin("gpu-sanity").unwrap()["last_result"]["report"]["status"],
        "unhealthy"
    );
    let (s, body) = agent.post_as(
        "/v1/plugins/gpu-sanity/run",
        &bearer,
        r#"{"checks": ["a"]}"#,
    );
    assert_eq!(s, 400, "{body}");
    assert_eq!(agent.post_as("/v1/plugins/nope/run", &bearer, "").0, 404);
    // Without the credential, nothing runs.
    assert_eq!(agent.post("/v1/plugins/gpu-sanity/run", "").0, 401);
}

#[test]
fn a_run_diagnostic_command_returns_the_plugins_report() {
    use sha2::Digest;
    let dir = Scratch::new("diag-cmd");
    // A node token kept from an earlier registration: commands are taken for it.
    let token_file = dir.write_secret("node-token", "gwn_kept_node_token\n");
    let cfg = format!(
        "[gpu]\nbackend = \"fake\"\nfake_count = 8\n[control_plane]\ntoken_file = \"{}\"\n\
         [commands]\ndiagnostic = \"gpu-sanity\"\n{}",
        token_file.display(),
        plugin_entry(
            "gpu-sanity",
            "gpu_sanity.wasm",
            "kind = \"diagnostic\"\n[plugins.config]\nexpect_gpus = 8"
        ),
    );
    let agent = Agent::start(
        &["--config", dir.write("agent.toml", &cfg).to_str().unwrap()],
        &[],
    );
    let digest: String = sha2::Sha256::digest(b"gwn_kept_node_token")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    agent.wait_plugins("gpu-sanity loaded", |p| {
        p["plugins"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["name"] == "gpu-sanity" && x["loaded"] == true)
        })
    });
    let body = r#"{"id":"cmd-diag-1","kind":"run-diagnostic"}"#;
    assert_eq!(agent.post_as("/v1/commands", "wrong", body).0, 401);
    let start = std::time::Instant::now();
    let done = loop {
        let (s, b) = agent.post_as("/v1/commands", &digest, body);
        assert_eq!(s, 200, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        if v["state"] != "running" {
            break v;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "{v}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(done["kind"], "run_diagnostic");
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["report"]["status"], "healthy", "{done}");
    assert!(
        done["message"].as_str().unwrap().contains("gpu-sanity"),
        "{done}"
    );
    // A plugin that does not exist fails the command with the reason.
    let (_, b) = agent.post_as(
        "/v1/commands",
        &digest,
        r#"{"id":"cmd-diag-2","kind":"run_diagnostic","params":{"plugin":"nope"}}"#,
    );
    let mut v: serde_json::Value = serde_json::from_str(&b).unwrap();
    while v["state"] == "running" {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (_, b) = agent.post_as(
            "/v1/commands",
            &digest,
            r#"{"id":"cmd-diag-2","kind":"run_diagnostic","params":{"plugin":"nope"}}"#,
        );
        v = serde_json::from_str(&b).unwrap();
    }
    assert_eq!(v["state"], "failed");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("no plugin named \"nope\""),
        "{v}"
    );
}
