//! WebAssembly plugins through the real agent: example plugins against injected faults,
//! hostile plugins contained, and the authoring commands. Bad files refused at load are in
//! `plugin_load`, hot reload and the compile cache in `plugin_lifecycle`, deadlines and the
//! bounds of runs in `plugin_runs`.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::plugin_runs::node_token;
use crate::util::{plugin_entry, plugins, sha256, Agent, Scratch, BIN};

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
    wait_status(&agent, "pcie", 1.0);
    wait_status(&agent, "nvlink", 1.0);
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
fn hostile_plugins_are_contained_and_the_agent_keeps_serving() {
    let dir = Scratch::new("hostile");
    let fast = "interval = \"300ms\"\ntimeout = \"300ms\"";
    let mut cfg = String::from("[gpu]\nbackend = \"fake\"\nfake_count = 2\n");
    for (name, file) in [
        ("spin", "spin.wasm"),
        ("grow", "grow.wasm"),
        ("trap", "trap.wasm"),
        ("recurse", "recurse.wasm"),
        ("huge", "huge_report.wasm"),
        ("flood", "log_flood.wasm"),
        ("escape", "fs_net.wasm"),
        ("dups", "huge_report.wasm"),
        ("thermal", "thermal.wasm"),
    ] {
        // The flood must reach its output limit before any deadline, even on a loaded
        // machine (100,000 host log calls come first), and the huge report must be built
        // (20 MiB of findings) while the spinning plugins share the plugin threads: they
        // get more time than the rest.
        let limits = if name == "flood" || name == "huge" {
            "interval = \"1s\"\ntimeout = \"5s\""
        } else {
            fast
        };
        cfg.push_str(&plugin_entry(name, file, limits));
        if name == "dups" {
            cfg.push_str("[plugins.config]\nshape = \"repeated-metric\"\n");
        }
    }
    let agent = Agent::start(
        &["--config", dir.write("agent.toml", &cfg).to_str().unwrap()],
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut scrapes = 0;
    let listing = loop {
        // /metrics keeps answering quickly while the plugins misbehave.
        let t = Instant::now();
        let (s, _) = agent.get("/metrics");
        assert_eq!(s, 200);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "scrape took {:?}",
            t.elapsed()
        );
        scrapes += 1;
        let p = agent.plugins();
        let list = p["plugins"].as_array().unwrap();
        let done = list.len() == 9
            && list.iter().all(|p| {
                p["runs"]
                    .as_object()
                    .is_some_and(|r| r.values().map(|v| v.as_u64().unwrap()).sum::<u64>() >= 2)
            });
        // Keep scraping for a while even when the runs were quick: the point is that
        // /metrics answers while spinning, growing and trapping plugins run.
        if done && scrapes >= 10 {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "plugins did not all run twice: {p:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let get = |name: &str| {
        listing["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    };
    for (name, reason) in [
        ("spin", "deadline exceeded"),
        ("grow", "memory limit exceeded (64 MiB)"),
        ("trap", "deliberate failure after seeing 2 GPUs"),
        ("recurse", "stack overflow"),
        ("huge", "report too large"),
        ("flood", "output limit exceeded"),
        ("dups", "metric same_name is reported 128 times"),
    ] {
        let p = get(name);
        let r = &p["last_result"];
        assert_eq!(r["report"]["status"], "unknown", "{name}: {p:#}");
        assert!(
            r["failure"].as_str().unwrap().contains(reason),
            "{name}: {p:#}"
        );
        assert!(p["failures"].as_u64().unwrap() >= 2, "{name}: {p:#}");
        assert!(
            p["loaded"].as_bool().unwrap(),
            "{name} unloaded after failing"
        );
    }
    // The sandbox: no files, no sockets, no environment, no clock of its own.
    let escape = get("escape");
    let msg = escape["last_result"]["report"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        escape["last_result"]["report"]["status"], "healthy",
        "{msg}"
    );
    for part in [
        "file denied",
        "dir denied",
        "socket denied",
        "env vars 0",
        "clock 0s",
    ] {
        assert!(msg.contains(part), "{part} missing: {msg}");
    }
    // The well-behaved plugin is unaffected.
    let thermal = get("thermal");
    assert_eq!(thermal["last_result"]["report"]["status"], "healthy");
    assert_eq!(thermal["failures"], 0);
    let m = agent.metrics();
    assert_eq!(
        m.value("gpuwarden_health_check_status", &[("check", "spin")]),
        Some(3.0)
    );
    assert!(
        m.value(
            "gpuwarden_health_check_runs_total",
            &[("check", "grow"), ("result", "unknown")]
        )
        .unwrap()
            >= 2.0
    );
    assert_eq!(
        m.value("gpuwarden_health_check_status", &[("check", "thermal")]),
        Some(0.0)
    );
    // Whatever the plugins reported, /metrics has no series twice.
    let (_, body) = agent.get("/metrics");
    let mut seen = std::collections::BTreeSet::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let series = line.rsplit_once(' ').map_or(line, |(s, _)| s);
        assert!(
            seen.insert(series.to_string()),
            "{series} twice in /metrics"
        );
    }
}

#[test]
fn authoring_commands_digest_test_and_new() {
    let xid = plugins().join("xid.wasm");
    let out = Command::new(BIN)
        .args(["plugin", "digest"])
        .arg(&xid)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&sha256(&xid)));

    let out = Command::new(BIN)
        .args(["plugin", "test"])
        .arg(&xid)
        .args(["--inject", "xid:48@3", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(o["report"]["status"], "unhealthy");
    assert_eq!(o["report"]["findings"][0]["gpu"], 3);
    assert_eq!(o["report"]["findings"][0]["action"], "reset_gpu");

    let out = Command::new(BIN)
        .args(["plugin", "test"])
        .arg(plugins().join("thermal.wasm"))
        .args([
            "--inject",
            "temperature:88@1",
            "--set",
            "warning_celsius=80",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("DEGRADED") && text.contains("88°C"),
        "{text}"
    );

    let out = Command::new(BIN)
        .args(["plugin", "test"])
        .arg(plugins().join("spin.wasm"))
        .args(["--timeout", "100ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("deadline exceeded"));
    let out = Command::new(BIN)
        .args(["plugin", "test", "/nonexistent.wasm"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["plugin", "test"])
        .arg(&xid)
        .args(["--inject", "xid@0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs the field \"code\""));

    // `plugin new` makes a crate that builds as it is and passes `plugin test`.
    let dir = Scratch::new("new");
    let sdk = crate::util::repo().join("plugins/sdk");
    let out = Command::new(BIN)
        .args(["plugin", "new", "my-check", "--dir"])
        .arg(&dir.0)
        .arg("--sdk")
        .arg(&sdk)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let krate = dir.0.join("my-check");
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(crate::util::repo().join("plugins/target/new-plugin"))
        .current_dir(&krate)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm =
        crate::util::repo().join("plugins/target/new-plugin/wasm32-wasip2/release/my_check.wasm");
    let out = Command::new(BIN)
        .args(["plugin", "test"])
        .arg(&wasm)
        .args(["--inject", "temperature:90@2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("DEGRADED"), "{text}");
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
