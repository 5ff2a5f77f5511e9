//! `/ui/nodes/{id}`: one node: its GPUs now and charts of the last hour, its events,
//! history, commands and plugin results, with links to its actions (`actions.rs`).

use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::actions::ACTIONS;
use super::common::{ago, badge, encode, page, when, Chrome, Console, Signed, UiError};
use super::history::{from_prometheus, from_ring};
use crate::api::{blocking, load_node, node_json, AppState};
use crate::model::observation::{GpuObservation, NodeObservation};

/// How long the charts may wait for Prometheus, all queries together.
pub const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(5);

/// One GPU as the page shows it.
#[derive(Debug, Default)]
pub struct GpuLine {
    /// Index.
    pub index: u32,
    /// Model.
    pub model: String,
    /// UUID.
    pub uuid: String,
    /// Readable by the agent.
    pub up: String,
    /// °C.
    pub temperature: String,
    /// W (of limit).
    pub power: String,
    /// %.
    pub utilization: String,
    /// GiB used of total.
    pub memory: String,
    /// ECC errors by type.
    pub ecc: String,
    /// XIDs seen.
    pub xids: String,
    /// NVLink links up, errors.
    pub nvlink: String,
    /// PCIe generation and width, replays.
    pub pcie: String,
    /// Active clock-event reasons.
    pub clocks: String,
}

fn num(v: Option<&f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "–".to_string(), |x| f(*x))
}

fn gpu_line(g: &GpuObservation) -> GpuLine {
    let v = |k: &str| g.values.get(k);
    // Only the counters that are not zero, `uncorrected volatile: 2`.
    let mut ecc: Vec<String> = g
        .ecc_errors
        .iter()
        .filter(|(_, n)| **n > 0.0)
        .map(|((ty, counter), n)| format!("{ty} {counter}: {n}"))
        .collect();
    ecc.sort();
    let xids: Vec<String> = g
        .xid_errors
        .iter()
        .map(|(code, n)| format!("XID {code} ×{n}"))
        .collect();
    let links = g.nvlink_up.len();
    let up = g.nvlink_up.iter().filter(|(_, up)| *up).count();
    let nv_err: f64 = g.nvlink_errors.iter().map(|(_, n)| n).sum();
    GpuLine {
        index: g.index,
        model: g.model.to_string(),
        uuid: g.uuid.to_string(),
        up: match g.up {
            Some(true) => "✔ yes".into(),
            Some(false) => "✖ no".into(),
            None => "? unknown".into(),
        },
        temperature: num(v("temperature_celsius"), |t| format!("{t:.0} °C")),
        power: match (v("power_watts"), v("power_limit_watts")) {
            (Some(p), Some(l)) => format!("{p:.0} of {l:.0} W"),
            (p, _) => num(p, |p| format!("{p:.0} W")),
        },
        utilization: num(v("utilization_ratio"), |u| format!("{:.0} %", u * 100.0)),
        memory: match (v("memory_used_bytes"), v("memory_total_bytes")) {
            (Some(u), Some(t)) => format!(
                "{:.1} of {:.1} GiB",
                u / 1_073_741_824.0,
                t / 1_073_741_824.0
            ),
            (u, _) => num(u, |u| format!("{:.1} GiB", u / 1_073_741_824.0)),
        },
        ecc: if ecc.is_empty() {
            "none".into()
        } else {
            ecc.join("; ")
        },
        xids: if xids.is_empty() {
            "none".into()
        } else {
            xids.join(", ")
        },
        nvlink: if links == 0 {
            "–".into()
        } else {
            format!("{up} of {links} up, {nv_err} errors")
        },
        pcie: match (v("pcie_link_generation"), v("pcie_link_width")) {
            (Some(gen), Some(w)) => format!(
                "Gen{gen:.0} x{w:.0}, {} replays",
                v("pcie_replays_total").map_or(0.0, |r| *r)
            ),
            _ => "–".into(),
        },
        clocks: g
            .clock_events
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A command's result as the page shows it: the agent's `message` when its result is a JSON
/// object with one, else the result as stored.
fn result_text(r: Option<&str>) -> String {
    let Some(r) = r else {
        return String::new();
    };
    serde_json::from_str::<serde_json::Value>(r)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| r.to_string())
}

/// A line of a record table (event, transition, command).
#[derive(Debug)]
pub struct Record {
    /// When.
    pub when: String,
    /// How long ago.
    pub ago: String,
    /// Columns.
    pub cols: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/node.html")]
struct NodePage {
    chrome: Chrome,
    node: crate::model::Node,
    badges: (String, String, String),
    reason: Option<String>,
    labels: String,
    observed: Option<String>,
    gpus: Vec<GpuLine>,
    plugins: Vec<(String, String)>,
    events: Vec<Record>,
    transitions: Vec<Record>,
    commands: Vec<Record>,
    actions: Vec<(&'static str, &'static str, &'static str)>,
    chart_src: String,
    history_note: String,
}

/// Query of the node page: what an action just did (shown on top).
#[derive(Debug, Deserialize)]
pub struct Done {
    /// The action.
    #[serde(default)]
    done: Option<String>,
    /// The command it queued.
    #[serde(default)]
    command: Option<String>,
}

fn verdict(v: f64) -> String {
    match v as i64 {
        0 => badge("healthy"),
        1 => badge("degraded"),
        2 => badge("unhealthy"),
        _ => badge("unknown"),
    }
}

/// `GET /ui/nodes/{id}`.
#[get("/nodes/{id}")]
pub async fn node(
    who: Signed,
    state: web::Data<AppState>,
    console: web::Data<Console>,
    id: web::Path<String>,
    done: web::Query<Done>,
) -> Result<HttpResponse, UiError> {
    let row = load_node(&state, &id).await?;
    let node = node_json(&row, &state)?;
    let now = state.clock.now_ms();
    let (nid, store) = (row.id.clone(), state.store.clone());
    let flagged = matches!(node.health.as_str(), "degraded" | "unhealthy");
    let in_memory = state.fleet.latest(&row.id);
    let need_stored = in_memory.is_none();
    let in_memory_seen = !need_stored;
    let (events, transitions, commands, last, stored) = blocking(move || {
        Ok((
            store.events(&nid, 0, 50)?,
            store.transitions(&nid, 50)?,
            store.commands(&nid, 20)?,
            if flagged {
                store.last_health_change(&nid)?
            } else {
                None
            },
            if need_stored {
                store.observations(&nid)?
            } else {
                Vec::new()
            },
        ))
    })
    .await?;
    let observation: Option<(NodeObservation, i64)> = match in_memory {
        Some((o, at)) => Some((NodeObservation::clone(&o), at)),
        None => crate::judge::simulate::observation_from_rows(&stored),
    };
    let (gpus, plugins, observed) = match &observation {
        Some((o, at)) => (
            o.gpus.iter().map(|(_, g)| gpu_line(g)).collect(),
            o.health_checks
                .iter()
                .map(|(name, v)| (name.clone(), verdict(*v)))
                .collect(),
            Some(format!("{} ({})", when(*at), ago(*at, now))),
        ),
        None => (Vec::new(), Vec::new(), None),
    };
    let rec = |t: i64, cols: Vec<String>| Record {
        when: when(t),
        ago: ago(t, now),
        cols,
    };
    let events = events
        .into_iter()
        .map(|e| {
            rec(
                e.time,
                vec![
                    e.kind,
                    e.gpu.map_or("–".into(), |g| g.to_string()),
                    e.code.map_or(String::new(), |c| c.to_string()),
                    e.severity,
                    e.message,
                ],
            )
        })
        .collect();
    let transitions = transitions
        .into_iter()
        .map(|t| {
            rec(
                t.time,
                vec![
                    t.field,
                    format!("{} → {}", t.from_state, t.to_state),
                    t.reason,
                    t.actor,
                ],
            )
        })
        .collect();
    // What an action just did, told by the redirect after it: shown only when the command
    // named is this node's and of that action (a link cannot make the page claim more).
    let notice = done.done.as_deref().and_then(|d| {
        let (_, label, _) = ACTIONS.iter().find(|(a, _, _)| *a == d)?;
        let kind = match d {
            "diagnose" => "run_diagnostic",
            "clear-health" => return Some(format!("{label}: done.")),
            step => step,
        };
        let c = commands
            .iter()
            .find(|c| Some(c.id.as_str()) == done.command.as_deref() && c.kind == kind)?;
        Some(format!("{label}: command {} queued for the agent.", c.id))
    });
    let commands = commands
        .into_iter()
        .map(|c| {
            rec(
                c.created_at,
                vec![
                    c.kind,
                    badge(&c.state),
                    c.requested_by,
                    result_text(c.result.as_deref()),
                    c.id,
                ],
            )
        })
        .collect();
    let mut chrome = who.chrome(format!("Node {}", node.name), "nodes");
    chrome.notice = notice;
    let settings = state.fleet.recent().settings();
    let history_note = if console.prometheus_url.is_some() {
        format!(
            "Charts of the last {} from Prometheus.",
            humantime::format_duration(settings.window)
        )
    } else if in_memory_seen
        && !state.fleet.recent().holds(&row.id)
        && state.fleet.recent().refused() > 0
    {
        format!(
            "No chart for this node: console.history_max_bytes ({} bytes) is full; raise it, or set console.prometheus_url.",
            settings.max_bytes
        )
    } else {
        format!(
            "Charts of the last {}, a point every {} at most, kept in the control plane's memory.",
            humantime::format_duration(settings.window),
            humantime::format_duration(settings.step)
        )
    };
    let badges = (
        badge(node.status.as_str()),
        badge(node.health.as_str()),
        badge(node.connectivity.as_str()),
    );
    let labels = node
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    page(&NodePage {
        chrome,
        badges,
        reason: last.map(|t| format!("{} (by {}, since {})", t.reason, t.actor, when(t.time))),
        labels,
        observed,
        gpus,
        plugins,
        events,
        transitions,
        commands,
        actions: ACTIONS.to_vec(),
        chart_src: format!("/ui/nodes/{}/history.json", encode(&row.id)),
        history_note,
        node,
    })
}

/// `GET /ui/nodes/{id}/history.json`: the charts' data (see [`super::history`]).
#[get("/nodes/{id}/history.json")]
pub async fn history(
    _who: Signed,
    state: web::Data<AppState>,
    console: web::Data<Console>,
    id: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let row = load_node(&state, &id).await?;
    let now = state.clock.now_ms();
    let recent = state.fleet.recent();
    let settings = recent.settings();
    let h = match &console.prometheus_url {
        Some(url) => {
            let (url, nid) = (url.clone(), row.id.clone());
            let (window, step) = (settings.window, settings.step);
            let got = web::block(move || {
                from_prometheus(&url, &nid, now, window, step, PROMETHEUS_TIMEOUT)
            })
            .await;
            match got {
                Ok(Ok(h)) => h,
                // JSON, like the answer it stands for: the page's script shows the reason.
                Ok(Err(e)) => {
                    return Ok(HttpResponse::BadGateway()
                        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
                        .json(serde_json::json!({
                            "error": {"code": "prometheus", "message": e.to_string()}
                        })))
                }
                Err(e) => return Err(UiError::Api(crate::api::ApiError::internal(e.to_string()))),
            }
        }
        None => {
            let s = recent.series(&row.id, now);
            let note = match &s {
                Some(_) => None,
                None if recent.refused() > 0 && state.fleet.latest(&row.id).is_some() => Some(format!(
                    "No chart: console.history_max_bytes ({} bytes) is full; raise it, or set console.prometheus_url.",
                    settings.max_bytes
                )),
                None => Some("No values yet: the node has not been scraped since the control plane started.".into()),
            };
            from_ring(s, now, settings.window, note)
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(h))
}
