//! `/ui/nodes`: the nodes table (filters and sorting in the query string, so a view can be
//! bookmarked and works without JavaScript), with the "add a node" form (`add_node.rs`).

use actix_web::{get, web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::common::{ago, badge, html_with, when, Chrome, Signed, UiError};
use crate::api::{blocking, AppState};
use crate::store::rows::NodeRow;

/// Rows a page of the table shows.
pub const PAGE: usize = 100;

/// The query of `/ui/nodes`; every field optional.
#[derive(Debug, Default, Deserialize)]
pub struct NodesQuery {
    /// Only this pool.
    #[serde(default)]
    pub pool: String,
    /// Only this lifecycle status.
    #[serde(default)]
    pub status: String,
    /// Only this health.
    #[serde(default)]
    pub health: String,
    /// Only this connectivity.
    #[serde(default)]
    pub connectivity: String,
    /// Only nodes with this label: `key=value`, or `key` for any value.
    #[serde(default)]
    pub label: String,
    /// Only names containing this.
    #[serde(default)]
    pub q: String,
    /// `name` (default), `pool`, `status`, `health`, `connectivity`, `changed`, `seen`.
    #[serde(default)]
    pub sort: String,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    pub dir: String,
    /// Page, from 1.
    #[serde(default)]
    pub page: Option<usize>,
}

/// Lifecycle statuses, healths and connectivities the filters take.
const STATUSES: [&str; 6] = [
    "pending",
    "active",
    "cordoned",
    "draining",
    "terminating",
    "terminated",
];
const HEALTHS: [&str; 4] = ["healthy", "degraded", "unhealthy", "unknown"];
const CONNECTIVITIES: [&str; 2] = ["online", "offline"];

/// Sort keys the table takes.
const SORTS: [&str; 7] = [
    "name",
    "pool",
    "status",
    "health",
    "connectivity",
    "changed",
    "seen",
];

/// One row of the table.
#[derive(Debug)]
pub struct NodeLine {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Pool.
    pub pool: String,
    /// Status.
    pub status: String,
    /// Health.
    pub health: String,
    /// Why (degraded or unhealthy).
    pub reason: String,
    /// Connectivity now.
    pub connectivity: String,
    /// `k=v` labels.
    pub labels: String,
    /// Last change.
    pub changed: String,
    /// Last change, how long ago.
    pub changed_ago: String,
    /// Last successful scrape, how long ago.
    pub seen: String,
    /// GPUs expected.
    pub gpus: usize,
    /// Status, health and connectivity with their symbols.
    pub badges: (String, String, String),
    sort_changed: i64,
    sort_seen: i64,
}

#[derive(Template)]
#[template(path = "console/nodes.html")]
struct NodesPage {
    chrome: Chrome,
    q: NodesQuery,
    pools: Vec<String>,
    rows: Vec<NodeLine>,
    total: usize,
    first: usize,
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
    sort_links: Vec<(String, String, String)>,
    statuses: [&'static str; 6],
    healths: [&'static str; 4],
    connectivities: [&'static str; 2],
    form_error: Option<String>,
    form: AddForm,
}

fn line(r: &NodeRow, state: &AppState, now: i64) -> NodeLine {
    let view = state.fleet.scrape_view(&r.id);
    let connectivity = view
        .as_ref()
        .map_or(r.connectivity.clone(), |(_, c, _)| c.as_str().to_string());
    let seen = view.and_then(|(_, _, s)| s).or(r.last_seen);
    let labels = r
        .labels()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let badges = (badge(&r.status), badge(&r.health), badge(&connectivity));
    NodeLine {
        id: r.id.clone(),
        name: r.name.clone(),
        pool: r.pool.clone(),
        status: r.status.clone(),
        health: r.health.clone(),
        reason: String::new(),
        connectivity,
        labels,
        changed: when(r.updated_at),
        changed_ago: ago(r.updated_at, now),
        seen: seen.map_or_else(|| "never".into(), |s| ago(s, now)),
        gpus: state
            .fleet
            .expected_gpus(&r.id)
            .unwrap_or_else(|| r.registered_gpus()),
        badges,
        sort_changed: r.updated_at,
        sort_seen: seen.unwrap_or(0),
    }
}

fn label_matches(r: &NodeRow, want: &str) -> bool {
    let labels = r.labels().unwrap_or_default();
    match want.split_once('=') {
        Some((k, v)) => labels.get(k.trim()).is_some_and(|x| x == v.trim()),
        None => labels.contains_key(want.trim()),
    }
}

/// The query string of `q` with `sort`, `dir` and `page` changed.
fn query_with(q: &NodesQuery, sort: &str, dir: &str, page: usize) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("pool", &q.pool),
        ("status", &q.status),
        ("health", &q.health),
        ("connectivity", &q.connectivity),
        ("label", &q.label),
        ("q", &q.q),
    ] {
        if !v.is_empty() {
            parts.push(format!("{k}={}", super::common::encode(v)));
        }
    }
    parts.push(format!("sort={sort}&dir={dir}"));
    if page > 1 {
        parts.push(format!("page={page}"));
    }
    format!("/ui/nodes?{}", parts.join("&"))
}

/// The form of "add a node", as typed (kept when it is refused).
#[derive(Debug, Default, Deserialize)]
pub struct AddForm {
    /// CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// Node name.
    #[serde(default)]
    pub name: String,
    /// Pool (default `default`).
    #[serde(default)]
    pub pool: String,
    /// Labels, `key=value` a line or separated by commas.
    #[serde(default)]
    pub labels: String,
    /// Join token lifetime, like `24h` (default `auth.join_token_ttl`).
    #[serde(default)]
    pub ttl: String,
}

pub(super) async fn render_list(
    who: &Signed,
    state: &AppState,
    q: NodesQuery,
    form_error: Option<String>,
    form: AddForm,
) -> Result<String, UiError> {
    for (field, value, known) in [
        ("status", &q.status, &STATUSES[..]),
        ("health", &q.health, &HEALTHS[..]),
        ("connectivity", &q.connectivity, &CONNECTIVITIES[..]),
    ] {
        if !value.is_empty() && !known.contains(&value.as_str()) {
            return Err(UiError::BadRequest(format!(
                "{field} {:?}: use one of {}",
                value.chars().take(32).collect::<String>(),
                known.join(", ")
            )));
        }
    }
    let sort = if q.sort.is_empty() {
        "name"
    } else {
        q.sort.as_str()
    };
    if !SORTS.contains(&sort) {
        return Err(UiError::BadRequest(format!(
            "sort {:?}: use one of {}",
            q.sort,
            SORTS.join(", ")
        )));
    }
    let desc = match q.dir.as_str() {
        "" | "asc" => false,
        "desc" => true,
        d => return Err(UiError::BadRequest(format!("dir {d:?}: use asc or desc"))),
    };
    let now = state.clock.now_ms();
    let store = state.store.clone();
    let (all, pool_rows) = blocking(move || Ok((store.all_nodes()?, store.pools()?))).await?;
    let mut pools: Vec<String> = all.iter().map(|r| r.pool.clone()).collect();
    pools.extend(pool_rows.into_iter().map(|p| p.name));
    pools.sort();
    pools.dedup();
    let name_q = q.q.trim().to_lowercase();
    let mut rows: Vec<NodeLine> = all
        .iter()
        .filter(|r| q.pool.is_empty() || r.pool == q.pool)
        .filter(|r| q.status.is_empty() || r.status == q.status)
        .filter(|r| q.health.is_empty() || r.health == q.health)
        .filter(|r| name_q.is_empty() || r.name.to_lowercase().contains(&name_q))
        .filter(|r| q.label.trim().is_empty() || label_matches(r, &q.label))
        .map(|r| line(r, state, now))
        .filter(|l| q.connectivity.is_empty() || l.connectivity == q.connectivity)
        .collect();
    rows.sort_by(|a, b| {
        let o = match sort {
            "pool" => a.pool.cmp(&b.pool),
            "status" => a.status.cmp(&b.status),
            "health" => a.health.cmp(&b.health),
            "connectivity" => a.connectivity.cmp(&b.connectivity),
            "changed" => a.sort_changed.cmp(&b.sort_changed),
            "seen" => a.sort_seen.cmp(&b.sort_seen),
            _ => std::cmp::Ordering::Equal,
        }
        .then_with(|| a.name.cmp(&b.name));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    let total = rows.len();
    let pages = total.div_ceil(PAGE).max(1);
    let page_no = q.page.unwrap_or(1).clamp(1, pages);
    let mut shown: Vec<NodeLine> = rows
        .into_iter()
        .skip((page_no - 1) * PAGE)
        .take(PAGE)
        .collect();
    // Why each degraded or unhealthy node shown is so (its latest health change).
    let flagged: Vec<(usize, String)> = shown
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l.health.as_str(), "degraded" | "unhealthy"))
        .map(|(i, l)| (i, l.id.clone()))
        .collect();
    if !flagged.is_empty() {
        let store = state.store.clone();
        let reasons = blocking(move || {
            let mut out = Vec::new();
            for (i, id) in flagged {
                if let Some(t) = store.last_health_change(&id)? {
                    out.push((i, format!("{} (since {})", t.reason, when(t.time))));
                }
            }
            Ok(out)
        })
        .await?;
        for (i, r) in reasons {
            shown[i].reason = r;
        }
    }
    let dir_s = if desc { "desc" } else { "asc" };
    let sort_links = SORTS
        .iter()
        .map(|s| {
            let (d, mark) = if *s == sort {
                if desc {
                    ("asc", "descending")
                } else {
                    ("desc", "ascending")
                }
            } else {
                ("asc", "")
            };
            (s.to_string(), query_with(&q, s, d, 1), mark.to_string())
        })
        .collect();
    let prev = (page_no > 1).then(|| query_with(&q, sort, dir_s, page_no - 1));
    let next = (page_no < pages).then(|| query_with(&q, sort, dir_s, page_no + 1));
    let first = if total == 0 {
        0
    } else {
        (page_no - 1) * PAGE + 1
    };
    let p = NodesPage {
        chrome: who.chrome("Nodes", "nodes"),
        q,
        pools,
        first,
        rows: shown,
        total,
        page: page_no,
        pages,
        prev,
        next,
        sort_links,
        statuses: STATUSES,
        healths: HEALTHS,
        connectivities: CONNECTIVITIES,
        form_error,
        form,
    };
    Ok(p.render()?)
}

/// `GET /ui/nodes`: the table, filtered and sorted as the query says.
#[get("/nodes")]
pub async fn list(
    who: Signed,
    state: web::Data<AppState>,
    q: web::Query<NodesQuery>,
) -> Result<HttpResponse, UiError> {
    let body = render_list(&who, &state, q.into_inner(), None, AddForm::default()).await?;
    Ok(html_with(actix_web::http::StatusCode::OK, body))
}
