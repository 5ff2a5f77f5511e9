//! How the CLI shows the API's answers as text: aligned tables and key/value views.

use serde_json::Value;

use super::escape::escape;
use super::table::Table;

pub(super) fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => escape(s),
        other => escape(&other.to_string()),
    }
}

/// The table of `nodes list`.
pub fn nodes_table(v: &Value) -> String {
    let mut t = Table::new(&[
        "NAME",
        "ID",
        "POOL",
        "STATUS",
        "HEALTH",
        "CONNECTIVITY",
        "GPUS",
        "LAST SEEN",
        "ADDRESS",
    ]);
    let mut held = 0;
    for n in v["nodes"].as_array().into_iter().flatten() {
        let health = if n["held"].is_string() {
            held += 1;
            format!("{} (held)", s(&n["health"]))
        } else {
            s(&n["health"])
        };
        t.row(vec![
            s(&n["name"]),
            s(&n["id"]),
            s(&n["pool"]),
            s(&n["status"]),
            health,
            s(&n["connectivity"]),
            n["gpus"].as_array().map_or(0, Vec::len).to_string(),
            s(&n["last_seen"]),
            s(&n["address"]),
        ]);
    }
    let shown = v["nodes"].as_array().map_or(0, Vec::len);
    let held = if held > 0 {
        format!("; {held} held in service by the remediation budget (`nodes get` says why, `nodes release` lets one go)")
    } else {
        String::new()
    };
    format!(
        "{}{} of {} nodes{held}\n",
        t.render(),
        shown,
        s(&v["total"])
    )
}

/// The view of `nodes get`.
pub fn node_view(n: &Value) -> String {
    let mut t = Table::new(&["FIELD", "VALUE"]);
    for k in [
        "name",
        "id",
        "pool",
        "status",
        "health",
        "connectivity",
        "address",
        "source",
        "agent_version",
        "created_at",
        "updated_at",
        "last_seen",
    ] {
        t.row(vec![k.to_string(), s(&n[k])]);
    }
    if let Some(why) = n.get("health_reason").filter(|v| !v.is_null()) {
        // Why the node is degraded or unhealthy, as `nodes history` has it.
        t.row(vec!["health.rule".into(), s(&why["rule"])]);
        t.row(vec!["health.reason".into(), s(&why["reason"])]);
        t.row(vec!["health.since".into(), s(&why["since"])]);
    }
    if n["held"].is_string() {
        // Unhealthy, left in service because the remediation budget is full.
        t.row(vec!["held".into(), s(&n["held"])]);
    }
    if let Some(l) = n["labels"].as_object() {
        let labels: Vec<String> = l.iter().map(|(k, v)| format!("{k}={}", s(v))).collect();
        t.row(vec![
            "labels".into(),
            if labels.is_empty() {
                "-".into()
            } else {
                labels.join(",")
            },
        ]);
    }
    if let Some(sc) = n.get("scrape").filter(|v| !v.is_null()) {
        t.row(vec!["scrape.up".into(), s(&sc["up"])]);
        t.row(vec!["scrape.last".into(), s(&sc["last_scrape"])]);
        t.row(vec!["scrape.samples".into(), s(&sc["samples"])]);
        t.row(vec!["scrape.last_error".into(), s(&sc["last_error"])]);
    }
    let mut out = t.render();
    let gpus = n["gpus"].as_array().cloned().unwrap_or_default();
    if !gpus.is_empty() {
        let mut g = Table::new(&["GPU", "UUID", "MODEL", "MEMORY GIB"]);
        for x in &gpus {
            let mem = x["memory_bytes"].as_f64().unwrap_or(0.0) / f64::from(1u32 << 30);
            g.row(vec![
                s(&x["index"]),
                s(&x["uuid"]),
                s(&x["model"]),
                format!("{mem:.0}"),
            ]);
        }
        out.push('\n');
        out.push_str(&g.render());
    }
    out
}

/// The table of `nodes events`.
pub fn events_table(v: &Value) -> String {
    let mut t = Table::new(&[
        "TIME", "GPU", "KIND", "CODE", "SEVERITY", "ACTION", "MESSAGE",
    ]);
    for e in v["events"].as_array().into_iter().flatten() {
        t.row(vec![
            s(&e["time"]),
            s(&e["gpu"]),
            s(&e["kind"]),
            s(&e["code"]),
            s(&e["severity"]),
            s(&e["action"]),
            s(&e["message"]),
        ]);
    }
    t.render()
}

/// The table of `nodes history`.
pub fn transitions_table(v: &Value) -> String {
    let mut t = Table::new(&["TIME", "FIELD", "FROM", "TO", "ACTOR", "REASON"]);
    for e in v["transitions"].as_array().into_iter().flatten() {
        t.row(vec![
            s(&e["time"]),
            s(&e["field"]),
            s(&e["from"]),
            s(&e["to"]),
            s(&e["actor"]),
            s(&e["reason"]),
        ]);
    }
    t.render()
}

/// The table of `nodes commands`.
pub fn commands_table(v: &Value) -> String {
    let mut t = Table::new(&[
        "CREATED", "ID", "KIND", "STATE", "ATTEMPTS", "BY", "MESSAGE",
    ]);
    for c in v["commands"].as_array().into_iter().flatten() {
        t.row(vec![
            s(&c["created_at"]),
            s(&c["id"]),
            s(&c["kind"]),
            s(&c["state"]),
            s(&c["attempts"]),
            s(&c["requested_by"]),
            s(&c["message"]),
        ]);
    }
    t.render()
}

/// What `policies simulate` prints: the totals, then every node either policy flagged.
pub fn simulation_table(v: &Value) -> String {
    let c = |p: &str, k: &str| v[p][k].as_u64().unwrap_or(0);
    let mut out = format!(
        "window {} .. {}: {} nodes, {} events, {} observations\n\
         current:   {} healthy, {} degraded, {} unhealthy\n\
         candidate: {} healthy, {} degraded, {} unhealthy\n\
         {} node(s) change verdict\n\n",
        s(&v["since"]),
        s(&v["until"]),
        v["nodes_evaluated"],
        v["events_evaluated"],
        v["observations_evaluated"],
        c("current", "healthy"),
        c("current", "degraded"),
        c("current", "unhealthy"),
        c("candidate", "healthy"),
        c("candidate", "degraded"),
        c("candidate", "unhealthy"),
        v["changed"],
    );
    let mut t = Table::new(&[
        "NODE",
        "POOL",
        "CURRENT",
        "CANDIDATE",
        "CHANGED",
        "CANDIDATE RULES",
    ]);
    for n in v["nodes"].as_array().into_iter().flatten() {
        let rules: Vec<String> = n["candidate"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| format!("{}×{}", s(&r["rule"]), r["hits"]))
            .collect();
        t.row(vec![
            s(&n["name"]),
            s(&n["pool"]),
            s(&n["current"]["verdict"]),
            s(&n["candidate"]["verdict"]),
            if n["changed"].as_bool() == Some(true) {
                "yes".into()
            } else {
                "-".into()
            },
            if rules.is_empty() {
                "-".into()
            } else {
                rules.join(", ")
            },
        ]);
    }
    out.push_str(&t.render());
    for f in v["failures"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "rule {} of the {} policy failed {} time(s): {}\n",
            s(&f["rule"]),
            s(&f["policy"]),
            f["count"],
            s(&f["error"])
        ));
    }
    for n in v["notes"].as_array().into_iter().flatten() {
        out.push_str(&format!("note: {}\n", s(n)));
    }
    out
}

/// The table of `audit`.
pub fn audit_table(v: &Value) -> String {
    let mut t = Table::new(&["TIME", "ACTOR", "ACTION", "TARGET", "RESULT"]);
    for e in v["entries"].as_array().into_iter().flatten() {
        t.row(vec![
            s(&e["time"]),
            s(&e["actor"]),
            s(&e["action"]),
            s(&e["target"]),
            s(&e["result"]),
        ]);
    }
    t.render()
}

/// What a lifecycle step prints.
pub fn step_view(v: &Value) -> String {
    format!(
        "node {} is {}; command {} ({}) is {}\n",
        s(&v["node"]["name"]),
        s(&v["node"]["status"]),
        s(&v["command"]["id"]),
        s(&v["command"]["kind"]),
        s(&v["command"]["state"])
    )
}
