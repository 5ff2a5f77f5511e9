//! How the CLI shows pools and instances as text.

use serde_json::Value;

use super::escape::escape;
use super::table::Table;
use super::views::s;

fn provider(p: &Value) -> String {
    if !p["provider"].is_null() {
        return s(&p["provider"]);
    }
    let names: Vec<String> = p["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| s(&x["name"]))
        .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

/// The pool's zones in order of preference, `-` for none.
fn zones(p: &Value) -> String {
    let z: Vec<String> = p["zones"].as_array().into_iter().flatten().map(s).collect();
    if z.is_empty() {
        "-".into()
    } else {
        z.join(",")
    }
}

/// The pool's labels as `k=v,…`, `-` for none.
fn labels(p: &Value) -> String {
    let l: Vec<String> = p["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{}={}", escape(k), s(v)))
        .collect();
    if l.is_empty() {
        "-".into()
    } else {
        l.join(",")
    }
}

/// The table of `pools list`.
pub fn pools_table(v: &Value) -> String {
    let mut t = Table::new(&[
        "NAME",
        "SOURCE",
        "NODES",
        "TARGET",
        "MIN",
        "MAX",
        "PROVIDER",
        "AUTOSCALER",
        "STATUS",
        "LAST ERROR",
    ]);
    for p in v["pools"].as_array().into_iter().flatten() {
        t.row(vec![
            s(&p["name"]),
            s(&p["source"]),
            s(&p["nodes"]),
            s(&p["target"]),
            s(&p["min_nodes"]),
            s(&p["max_nodes"]),
            provider(p),
            s(&p["autoscaler"]["type"]),
            s(&p["status"]),
            s(&p["last_error"]),
        ]);
    }
    format!("{}{} pools\n", t.render(), s(&v["total"]))
}

/// The view of `pools get`.
pub fn pool_view(p: &Value) -> String {
    let mut t = Table::new(&["FIELD", "VALUE"]);
    t.row(vec!["name".into(), s(&p["name"])]);
    t.row(vec!["provider".into(), provider(p)]);
    for k in [
        "source",
        "source_file",
        "nodes",
        "target",
        "manual_target",
        "min_nodes",
        "max_nodes",
        "auto_replace",
        "strategy",
        "instance_type",
        "region",
        "scale_up_cooldown",
        "scale_down_cooldown",
        "registration_timeout",
        "pending_jobs",
        "status",
        "last_error",
    ] {
        t.row(vec![k.to_string(), s(&p[k])]);
    }
    t.row(vec!["zones".into(), zones(p)]);
    t.row(vec!["labels".into(), labels(p)]);
    t.row(vec!["autoscaler".into(), s(&p["autoscaler"]["type"])]);
    t.row(vec![
        "remediation".into(),
        format!(
            "{} (drain timeout {})",
            s(&p["remediation"]["action"]),
            s(&p["remediation"]["drain_timeout"])
        ),
    ]);
    t.row(vec![
        "cooldown left".into(),
        format!(
            "scale-up {}s, scale-down {}s",
            s(&p["cooldowns"]["scale_up_seconds"]),
            s(&p["cooldowns"]["scale_down_seconds"])
        ),
    ]);
    let (b, cfg) = (&p["budget_status"], &p["budget"]);
    t.row(vec![
        "budget".into(),
        format!(
            "{} of {} in use, {} held (max {}% / {} nodes)",
            s(&b["in_use"]),
            s(&b["limit"]),
            s(&b["held"]),
            s(&cfg["max_percent"]),
            s(&cfg["max_nodes"])
        ),
    ]);
    let mut out = t.render();
    let providers = p["providers_status"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !providers.is_empty() {
        let mut pt = Table::new(&["PROVIDER", "FAILURES", "RETRY AT", "LAST ERROR"]);
        for x in &providers {
            pt.row(vec![
                s(&x["name"]),
                s(&x["failures"]),
                s(&x["retry_at"]),
                s(&x["last_error"]),
            ]);
        }
        out.push('\n');
        out.push_str(&pt.render());
    }
    let flight = p["instances_in_flight"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !flight.is_empty() {
        out.push('\n');
        out.push_str(&instances_rows(&flight));
    }
    let decisions = p["decisions"].as_array().cloned().unwrap_or_default();
    if !decisions.is_empty() {
        let mut dt = Table::new(&["TIME", "TARGET", "ACTIONS", "REASONS"]);
        for d in &decisions {
            let reasons: Vec<String> = d["reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect();
            dt.row(vec![
                s(&d["time"]),
                s(&d["target"]),
                d["actions"].as_array().map_or(0, Vec::len).to_string(),
                reasons.join("; "),
            ]);
        }
        out.push('\n');
        out.push_str(&dt.render());
    }
    out
}

fn instances_rows(list: &[Value]) -> String {
    let mut t = Table::new(&[
        "ID",
        "POOL",
        "STATE",
        "SINCE",
        "NODE",
        "PROVIDER",
        "PROVIDER ID",
        "ERROR",
    ]);
    for i in list {
        t.row(vec![
            s(&i["id"]),
            s(&i["pool"]),
            s(&i["state"]),
            s(&i["state_since"]),
            s(&i["node_id"]),
            s(&i["provider"]),
            s(&i["provider_id"]),
            s(&i["error"]),
        ]);
    }
    t.render()
}

/// The table of `instances list`.
pub fn instances_table(v: &Value) -> String {
    let list = v["instances"].as_array().cloned().unwrap_or_default();
    format!(
        "{}{} of {} instances\n",
        instances_rows(&list),
        list.len(),
        s(&v["total"])
    )
}

/// The view of `instances get`.
pub fn instance_view(i: &Value) -> String {
    let mut t = Table::new(&["FIELD", "VALUE"]);
    for k in [
        "id",
        "pool",
        "state",
        "state_since",
        "node_id",
        "provider",
        "provider_id",
        "attempts",
        "error",
        "created_at",
        "updated_at",
    ] {
        t.row(vec![k.to_string(), s(&i[k])]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pools get NAME` shows where the pool's machines go and what they are labelled.
    #[test]
    fn pool_get_shows_labels_zones_and_region() {
        let p = serde_json::json!({"name":"train","provider":"lambda","region":"us-east-1",
            "zones":["us-east-1a","us-east-1b"],"labels":{"team":"ml","tier":"gold"}});
        let out = pool_view(&p);
        let line = |k: &str| {
            out.lines()
                .find(|l| l.split_whitespace().next() == Some(k))
                .unwrap_or_else(|| panic!("{k} in\n{out}"))
                .to_string()
        };
        assert!(line("region").ends_with("us-east-1"), "{out}");
        assert!(line("zones").ends_with("us-east-1a,us-east-1b"), "{out}");
        assert!(line("labels").ends_with("team=ml,tier=gold"), "{out}");
        let bare = pool_view(&serde_json::json!({"name":"p","provider":"local"}));
        assert!(
            bare.lines()
                .any(|l| l.starts_with("zones") && l.ends_with('-')),
            "{bare}"
        );
    }
}
