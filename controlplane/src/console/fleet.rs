//! `/ui/` (the fleet at a glance) and `/ui/audit` (the audit log).

use std::collections::BTreeMap;

use actix_web::{get, web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::common::{ago, badge, page, when, Chrome, Signed, UiError};
use crate::api::{blocking, budget_state, pool_detail, AppState};

/// Nodes and GPUs in one state.
#[derive(Debug)]
pub struct Count {
    /// The state (`active`, `healthy`, `online`, …).
    pub state: String,
    /// The state with its symbol.
    pub badge: String,
    /// Nodes in it.
    pub nodes: i64,
    /// Their GPUs (expected).
    pub gpus: i64,
}

/// A pool at a glance.
#[derive(Debug)]
pub struct PoolLine {
    /// Name.
    pub name: String,
    /// Nodes now.
    pub nodes: i64,
    /// Target.
    pub target: u32,
    /// Bounds.
    pub min: u32,
    /// Bounds.
    pub max: u32,
    /// `ok` | `degraded` | `error`.
    pub status: String,
    /// Remediation budget: limit, in use, held.
    pub budget: String,
}

/// A line of "what changed".
#[derive(Debug)]
pub struct Change {
    /// When.
    pub when: String,
    /// How long ago.
    pub ago: String,
    /// Who.
    pub actor: String,
    /// What.
    pub what: String,
    /// On what.
    pub target: String,
    /// Its outcome.
    pub result: String,
}

#[derive(Template)]
#[template(path = "console/fleet.html")]
struct FleetPage {
    chrome: Chrome,
    nodes: i64,
    gpus: i64,
    by_status: Vec<Count>,
    by_health: Vec<Count>,
    by_connectivity: Vec<Count>,
    overrides: Vec<String>,
    held: Vec<(String, String, String)>,
    pools: Vec<PoolLine>,
    changes: Vec<Change>,
    events: Vec<Change>,
}

fn counts(m: BTreeMap<String, (i64, i64)>) -> Vec<Count> {
    m.into_iter()
        .map(|(state, (nodes, gpus))| Count {
            badge: badge(&state),
            state,
            nodes,
            gpus,
        })
        .collect()
}

/// Entries of the last hour shown at most.
const CHANGES: usize = 50;

/// `GET /ui/`: nodes and GPUs by lifecycle, health and connectivity; the remediation
/// budget; pools at a glance; what changed in the last hour.
#[get("/")]
pub async fn fleet(who: Signed, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let now = state.clock.now_ms();
    let hour_ago = now - 3_600_000;
    let store = state.store.clone();
    let (rows, pools, entries, events) = blocking(move || {
        Ok((
            store.all_nodes()?,
            store.pools()?,
            store.audit_log(500)?,
            store.events_between(hour_ago, now + 1, 10_000)?,
        ))
    })
    .await?;
    let (mut st, mut he, mut co) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let (mut nodes, mut gpus) = (0, 0);
    let mut names = std::collections::HashMap::new();
    for r in &rows {
        let g = state
            .fleet
            .expected_gpus(&r.id)
            .unwrap_or_else(|| r.registered_gpus()) as i64;
        let connectivity = state
            .fleet
            .scrape_view(&r.id)
            .map_or(r.connectivity.clone(), |(_, c, _)| c.as_str().to_string());
        for (m, k) in [
            (&mut st, r.status.clone()),
            (&mut he, r.health.clone()),
            (&mut co, connectivity),
        ] {
            let e = m.entry(k).or_insert((0, 0));
            e.0 += 1;
            e.1 += g;
        }
        nodes += 1;
        gpus += g;
        names.insert(r.id.clone(), r.name.clone());
    }
    let mut lines = Vec::new();
    for p in pools {
        let d = pool_detail(&state, p.name.clone()).await?;
        let b = &d.budget_status;
        lines.push(PoolLine {
            name: p.name,
            nodes: d.pool.nodes,
            target: d.pool.target,
            min: d.pool.spec.min_nodes,
            max: d.pool.spec.max_nodes,
            status: d.pool.status,
            budget: format!("{} of {} in use, {} held", b.in_use, b.limit, b.held),
        });
    }
    let budget = budget_state(&state).await?;
    let overrides = budget
        .overrides
        .iter()
        .map(|o| {
            format!(
                "{}: at most {} nodes or {}% (set by {} at {})",
                o.pool
                    .as_deref()
                    .map_or("fleet".to_string(), |p| format!("pool {p}")),
                o.max_nodes,
                o.max_percent,
                o.set_by,
                super::common::when_rfc3339(&o.set_at)
            )
        })
        .collect();
    let held = budget
        .held
        .into_iter()
        .map(|h| (h.node, h.pool, h.reason))
        .collect();
    let changes = entries
        .into_iter()
        .filter(|a| a.time >= hour_ago)
        .take(CHANGES)
        .map(|a| Change {
            when: when(a.time),
            ago: ago(a.time, now),
            actor: a.actor,
            what: a.action,
            // A node by its name, as operators know it.
            target: names.get(&a.target).cloned().unwrap_or(a.target),
            result: a.result,
        })
        .collect();
    let events = events
        .into_iter()
        .rev()
        .take(CHANGES)
        .map(|e| Change {
            when: when(e.time),
            ago: ago(e.time, now),
            actor: names.get(&e.node_id).cloned().unwrap_or(e.node_id),
            what: e.kind,
            target: e.gpu.map_or(String::new(), |g| format!("GPU {g}")),
            result: format!("{} ({})", e.message, e.severity),
        })
        .collect();
    page(&FleetPage {
        chrome: who.chrome("Fleet", "fleet"),
        nodes,
        gpus,
        by_status: counts(st),
        by_health: counts(he),
        by_connectivity: counts(co),
        overrides,
        held,
        pools: lines,
        changes,
        events,
    })
}

/// Query of `/ui/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Entries to show (default 200, 1 to 5000).
    limit: Option<i64>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    limit: i64,
    entries: Vec<(String, Change, String)>,
}

/// `GET /ui/audit?limit=N`: the audit log, newest first.
#[get("/audit")]
pub async fn audit(
    who: Signed,
    state: web::Data<AppState>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, UiError> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=5000).contains(&limit) {
        return Err(UiError::BadRequest(
            "limit must be between 1 and 5000".into(),
        ));
    }
    let now = state.clock.now_ms();
    let store = state.store.clone();
    let rows = blocking(move || store.audit_log(limit)).await?;
    let entries = rows
        .into_iter()
        .map(|a| {
            (
                a.details,
                Change {
                    when: when(a.time),
                    ago: ago(a.time, now),
                    actor: a.actor,
                    what: a.action,
                    target: a.target,
                    result: a.result,
                },
                a.id.to_string(),
            )
        })
        .collect();
    page(&AuditPage {
        chrome: who.chrome("Audit log", "audit"),
        limit,
        entries,
    })
}
