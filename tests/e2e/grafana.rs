//! The shipped Prometheus rules and Grafana dashboard (`config/prometheus/`,
//! `config/grafana/`) against real tools: `promtool` checks and unit-tests the rules, and
//! every PromQL expression of the dashboard (panels and template variables) is run against a
//! real Prometheus that scrapes real agents, found through the control plane's `/v1/sd`, and
//! the control plane itself. Each must return data. Needs `prometheus` and `promtool`
//! (Debian package `prometheus`; `.ci/run` installs it): outside CI the tests are skipped
//! without them.

use std::path::{Path, PathBuf};
use std::process::Command;

use gpuwarden_e2e::{repo, wait_for, Api, Scratch};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::cp::{self, ADMIN};

/// Whether `tool` runs; outside CI a missing tool skips the test, in CI it fails it.
fn have(tool: &str) -> bool {
    if Command::new(tool).arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI installs {tool} (.ci/run: apt-get install -y prometheus)"
    );
    eprintln!("skipping: {tool} is not installed (apt-get install -y prometheus)");
    false
}

fn config_dir(sub: &str) -> PathBuf {
    repo().join("config").join(sub)
}

/// Runs `promtool ARGS` in `dir`; panics with its output when it fails.
fn promtool(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_shipped_rules_and_prometheus_config_pass_promtool() {
    if !have("promtool") {
        return;
    }
    let dir = config_dir("prometheus");
    let checked = promtool(&dir, &["check", "rules", "gpuwarden.rules.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&dir, &["test", "rules", "gpuwarden.rules.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // The example configuration, with its placeholder filled in, loads the rules.
    let scratch = Scratch::new("promtool");
    let cfg = std::fs::read_to_string(dir.join("prometheus.yml"))
        .unwrap()
        .replace("CONTROL_PLANE", "127.0.0.1:8080");
    scratch.write("prometheus.yml", &cfg);
    std::fs::copy(
        dir.join("gpuwarden.rules.yml"),
        scratch.path().join("gpuwarden.rules.yml"),
    )
    .unwrap();
    let out = promtool(scratch.path(), &["check", "config", "prometheus.yml"]);
    assert!(out.contains("SUCCESS: 23 rules found"), "{out}");
}

/// Every PromQL expression of the dashboard: panel targets, and template variables'
/// `label_values(METRIC, LABEL)` as `group by (LABEL) (METRIC)`. Grafana's variables are
/// filled as "All" (`.*`) and `$__rate_interval` as 30 s (the test scrapes every second).
fn dashboard_queries(dash: &Value) -> Vec<(String, String)> {
    let fill = |e: &str| {
        e.replace("$__rate_interval", "30s")
            .replace("$pool", ".*")
            .replace("$node", ".*")
    };
    let mut out = Vec::new();
    for v in dash["templating"]["list"].as_array().unwrap() {
        let Some(q) = v["query"]["query"].as_str() else {
            continue; // the data source picker
        };
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: not label_values(): {q}", v["name"]));
        let (metric, label) = inner.rsplit_once(',').unwrap();
        out.push((
            format!("variable {}", v["name"]),
            fill(&format!("group by ({}) ({metric})", label.trim())),
        ));
    }
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            out.push((format!("panel {:?}", p["title"]), fill(expr)));
        }
    }
    out
}

fn inject(agent: &str, body: Value) {
    let (st, v) = Api::new(agent, "").call("POST", "/v1/fake/inject", Some(body));
    assert_eq!(st, 200, "{v}");
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_fleet() {
    if !have("prometheus") {
        return;
    }
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(config_dir("grafana").join("gpuwarden-fleet.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let queries = dashboard_queries(&dash);
    assert!(queries.len() >= 30, "{} queries", queries.len());

    let dir = Scratch::new("grafana");
    let (cp, api) = cp::start(&dir, "");
    // gpu-01 runs the `xid` health-check plugin (health-check and plugin-value series).
    let wasm = gpuwarden_testkit::plugins().join("xid.wasm");
    let digest = hex(&Sha256::digest(std::fs::read(&wasm).unwrap()));
    let plugin = format!(
        "[[plugins]]\nname = \"xid\"\npath = \"{}\"\nsha256 = \"{digest}\"\ninterval = \"1s\"\n",
        wasm.display()
    );
    let a = cp::agent_with(&api.base, "gpu-01", &dir, &plugin);
    let b = cp::agent(&api.base, "gpu-02", &dir);
    cp::online(&api, "gpu-01");
    cp::online(&api, "gpu-02");
    // A managed pool (empty: min 0) whose remediation budget the held-nodes panel shows.
    let (st, v) = api.call(
        "POST",
        "/v1/pools",
        Some(json!({"name": "spare", "provider": "fake", "min_nodes": 0, "max_nodes": 2})),
    );
    assert_eq!(st, 201, "{v}");
    let token = dir.write("admin-token-for-prometheus", ADMIN);
    let rules = dir.path().join("gpuwarden.rules.yml");
    std::fs::copy(config_dir("prometheus").join("gpuwarden.rules.yml"), &rules).unwrap();
    let cp_addr = cp.base.trim_start_matches("http://");
    let cfg = dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files: [{}]\nscrape_configs:\n  - job_name: gpuwarden-agents\n    http_sd_configs:\n      - url: {}/v1/sd\n        refresh_interval: 1s\n        authorization:\n          type: Bearer\n          credentials_file: {}\n  - job_name: gpuwarden-controlplane\n    static_configs:\n      - targets: ['{cp_addr}']\n",
            rules.display(),
            api.base,
            token.display()
        ),
    );
    let prom = crate::prometheus::start(&dir, &cfg, 180);
    let prom = &prom.api;
    let query = |q: &str| -> Option<Vec<Value>> {
        let path = format!("/api/v1/query?query={}", urlencode(q));
        match prom.try_call("GET", &path, None) {
            Ok((200, v)) => v["data"]["result"].as_array().cloned(),
            // A query Prometheus cannot parse is the dashboard's fault.
            Ok((400 | 422, v)) => panic!("query {q:?} refused: {v}"),
            _ => None, // not up yet (503 while it starts)
        }
    };
    wait_for(
        "prometheus scraping both agents and the control plane",
        60,
        || {
            let up = query("up")?;
            (up.len() == 3 && up.iter().all(|s| s["value"][1] == "1")).then_some(())
        },
    );
    // What the fleet panels show only once it happened: a recoverable XID on gpu-01, and a
    // fatal one on gpu-02 that the policy condemns and remediation acts on.
    inject(&a.base, json!({"gpu": 1, "fault": "xid", "code": 13}));
    inject(&b.base, json!({"gpu": 3, "fault": "xid", "code": 79}));
    // Every expression returns data; the failures are reported together.
    let mut empty: Vec<(String, String)> = Vec::new();
    let ok = gpuwarden_testkit::poll(std::time::Duration::from_secs(60), || {
        empty = queries
            .iter()
            .filter(|(_, q)| query(q).is_none_or(|r| r.is_empty()))
            .cloned()
            .collect();
        empty.is_empty().then_some(())
    });
    assert!(
        ok.is_some(),
        "{} of {} dashboard queries returned no data:\n{}",
        empty.len(),
        queries.len(),
        empty
            .iter()
            .map(|(w, q)| format!("  {w}: {q}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The pool and node variables list what the fleet has.
    let nodes = query("group by (node) (gpuwarden_gpu_up)").unwrap();
    let mut names: Vec<&str> = nodes
        .iter()
        .filter_map(|s| s["metric"]["node"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["gpu-01", "gpu-02"]);
    // The recording rules evaluate over the same data.
    let util = wait_for("the pool utilization recording rule", 30, || {
        query("pool:gpuwarden_gpu_utilization_ratio:avg").filter(|r| !r.is_empty())
    });
    assert_eq!(util[0]["metric"]["pool"], "default");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Percent-encodes a query for a URL's query string.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
