//! Hostile plugins through the real agent: plugins that spin, grow memory, trap, recurse,
//! flood the log, build huge reports or reach for files and the network are contained and
//! reported while the agent keeps serving.

use std::time::{Duration, Instant};

use crate::util::{plugin_entry, Agent, Scratch};

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
