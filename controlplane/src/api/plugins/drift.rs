//! What the nodes run against what they are assigned: `GET /v1/pools/{name}/plugins`,
//! `GET /v1/plugins/status`.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use gpuwarden_wire::plugin_sync::{SOURCE_ASSIGNED, SOURCE_LOCAL};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::super::caller::Admin;
use super::super::error::ApiError;
use super::super::state::{blocking, clip, AppState};
use crate::clock::rfc3339;
use crate::store::plugins::{AssignmentRow, NodePluginRow, ALL_NODES};

/// 404 unless `pool` is `*`, a pool, or the pool of some node.
pub(super) async fn known_pool(state: &AppState, pool: &str) -> Result<(), ApiError> {
    if pool == ALL_NODES {
        return Ok(());
    }
    let store = state.store.clone();
    let p = pool.to_string();
    if blocking(move || store.pool_known(&p)).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no pool {} (no pool of that name, and no node in it; * assigns to every node)",
            clip(pool, 64)
        )))
    }
}

/// An assignment, as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssignmentView {
    /// The pool (`*`: every node).
    pub pool: String,
    /// The plugin's name.
    pub name: String,
    /// Its component.
    pub digest: String,
    /// Its config values.
    pub config: BTreeMap<String, String>,
    /// Run interval (absent: the agent's default).
    pub interval: Option<String>,
    /// Deadline of a run (absent: the agent's default).
    pub timeout: Option<String>,
    /// Memory cap, MiB (absent: the agent's default).
    pub memory_limit_mib: Option<u32>,
    /// Who assigned it.
    pub assigned_by: String,
    /// When (RFC 3339).
    pub assigned_at: String,
}

fn assignment_view(r: &AssignmentRow) -> AssignmentView {
    let dur = |ms: Option<i64>| {
        ms.map(|m| humantime::format_duration(Duration::from_millis(m.max(0) as u64)).to_string())
    };
    AssignmentView {
        pool: r.pool.clone(),
        name: r.name.clone(),
        digest: r.digest.clone(),
        config: serde_json::from_str(&r.config).unwrap_or_default(),
        interval: dur(r.interval_ms),
        timeout: dur(r.timeout_ms),
        memory_limit_mib: r.memory_limit_mib.and_then(|m| u32::try_from(m).ok()),
        assigned_by: r.assigned_by.clone(),
        assigned_at: rfc3339(r.assigned_at),
    }
}

/// One plugin on one node: what it should run against what it runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodePluginView {
    /// The plugin's name.
    pub name: String,
    /// `assigned` or `local` (the agent's own config); `assigned` too for one not yet
    /// reported.
    pub source: String,
    /// The digest assigned to this node (absent: none is, e.g. a local plugin).
    pub assigned: Option<String>,
    /// The digest it runs (absent: none loaded, or not reported yet).
    pub running: Option<String>,
    /// `in_sync` (runs what is assigned), `pending` (not yet: the agent has not caught
    /// up), `refused` (the agent refused the assigned version: see `error`), `stale` (runs
    /// but is no longer assigned), `local` (the node's own plugin).
    pub state: String,
    /// The last result's status.
    pub status: Option<String>,
    /// The last result's message.
    pub message: String,
    /// Why the assigned version is not running.
    pub error: Option<String>,
}

/// A node's plugins.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodePlugins {
    /// The node's id.
    pub node_id: String,
    /// Its name.
    pub node: String,
    /// Its pool.
    pub pool: String,
    /// Whether it runs exactly what it is assigned.
    pub in_sync: bool,
    /// When its agent last reported (RFC 3339; absent: never).
    pub reported_at: Option<String>,
    /// By name.
    pub plugins: Vec<NodePluginView>,
}

/// `GET /v1/pools/{name}/plugins`, `GET /v1/plugins/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolPlugins {
    /// The pool (`*`: every node; absent: every pool).
    pub pool: Option<String>,
    /// Its assignments (of the pool itself; with `*`'s for every node when listing all).
    pub assigned: Vec<AssignmentView>,
    /// Its nodes, by name.
    pub nodes: Vec<NodePlugins>,
    /// Nodes that run exactly what they are assigned.
    pub in_sync: usize,
    /// Nodes that do not (yet).
    pub drifted: usize,
}

/// What the nodes of `pool` (None or `*`: every node) run against what they are assigned.
pub(super) async fn pool_view(state: &AppState, pool: &str) -> Result<PoolPlugins, ApiError> {
    let filter = (pool != ALL_NODES).then(|| pool.to_string());
    drift(state, filter, Some(pool.to_string())).await
}

async fn drift(
    state: &AppState,
    filter: Option<String>,
    shown: Option<String>,
) -> Result<PoolPlugins, ApiError> {
    let store = state.store.clone();
    let f = filter.clone();
    let (assigned, nodes, reports) = blocking(move || {
        Ok((
            store.plugin_assignments(None)?,
            store.nodes_of(f.as_deref())?,
            store.node_plugins(f.as_deref())?,
        ))
    })
    .await?;
    let mut by_node: BTreeMap<String, Vec<NodePluginRow>> = BTreeMap::new();
    for (_, _, r) in reports {
        by_node.entry(r.node_id.clone()).or_default().push(r);
    }
    let mut out = Vec::new();
    // What a node of each pool is assigned, worked out once per pool, not per node.
    let mut per_pool: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (id, name, node_pool) in nodes {
        let want: &BTreeMap<String, String> =
            per_pool.entry(node_pool.clone()).or_insert_with(|| {
                crate::store::plugins::effective(
                    &node_pool,
                    assigned
                        .iter()
                        .filter(|a| a.pool == node_pool || a.pool == ALL_NODES)
                        .cloned()
                        .collect(),
                )
                .into_iter()
                .map(|a| (a.name, a.digest))
                .collect()
            });
        let got = by_node.remove(&id).unwrap_or_default();
        let reported_at = got.iter().map(|r| r.reported_at).max();
        let mut plugins = Vec::new();
        for (pname, digest) in want {
            let r = got.iter().find(|r| &r.name == pname);
            let (st, running, last, message, error, source) = match r {
                None => ("pending", None, None, String::new(), None, SOURCE_ASSIGNED),
                Some(r) => {
                    let st = if r.source == SOURCE_LOCAL || r.error.is_some() {
                        "refused"
                    } else if r.running.as_deref() == Some(digest) {
                        "in_sync"
                    } else {
                        "pending"
                    };
                    let error = if r.source == SOURCE_LOCAL {
                        Some(
                            "a plugin of this name is configured locally on the node: the local one runs"
                                .to_string(),
                        )
                    } else {
                        r.error.clone()
                    };
                    (
                        st,
                        r.running.clone(),
                        r.status.clone(),
                        r.message.clone(),
                        error,
                        SOURCE_ASSIGNED,
                    )
                }
            };
            plugins.push(NodePluginView {
                name: pname.clone(),
                source: source.to_string(),
                assigned: Some(digest.clone()),
                running,
                state: st.to_string(),
                status: last,
                message,
                error,
            });
        }
        for r in got.iter().filter(|r| !want.contains_key(&r.name)) {
            plugins.push(NodePluginView {
                name: r.name.clone(),
                source: r.source.clone(),
                assigned: None,
                running: r.running.clone(),
                state: if r.source == SOURCE_LOCAL {
                    "local"
                } else {
                    "stale"
                }
                .to_string(),
                status: r.status.clone(),
                message: r.message.clone(),
                error: r.error.clone(),
            });
        }
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        let in_sync = plugins
            .iter()
            .all(|p| p.state == "in_sync" || p.state == "local");
        out.push(NodePlugins {
            node_id: id,
            node: name,
            pool: node_pool,
            in_sync,
            reported_at: reported_at.map(rfc3339),
            plugins,
        });
    }
    let in_sync = out.iter().filter(|n| n.in_sync).count();
    let assigned = assigned
        .iter()
        .filter(|a| match &shown {
            Some(p) => &a.pool == p,
            None => true,
        })
        .map(assignment_view)
        .collect();
    Ok(PoolPlugins {
        pool: shown,
        assigned,
        drifted: out.len() - in_sync,
        in_sync,
        nodes: out,
    })
}

#[utoipa::path(
    get, path = "/v1/pools/{name}/plugins", operation_id = "get_pool_plugins",
    params(("name" = String, Path, description = "A pool, or `*` for every node")),
    description = "The pool's plugins, and what each of its nodes runs against them (drift).",
    responses((status = 200, body = PoolPlugins), (status = 404, description = "No such pool"))
)]
#[get("/v1/pools/{name}/plugins")]
pub(crate) async fn get_pool(
    _admin: Admin,
    state: web::Data<AppState>,
    pool: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let pool = pool.into_inner();
    known_pool(&state, &pool).await?;
    Ok(HttpResponse::Ok().json(pool_view(&state, &pool).await?))
}

/// Query of `GET /v1/plugins/status`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    /// Only the nodes of this pool.
    pub pool: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/plugins/status", operation_id = "plugin_status",
    params(StatusQuery),
    description = "What every node (or those of `pool`; `*`: every node) runs against what it is assigned: drift per node, counts of nodes in sync and drifted.",
    responses((status = 200, body = PoolPlugins), (status = 404, description = "No such pool"))
)]
#[get("/v1/plugins/status")]
pub(crate) async fn drift_status(
    _admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<StatusQuery>,
) -> Result<HttpResponse, ApiError> {
    match query.into_inner().pool {
        None => Ok(HttpResponse::Ok().json(drift(&state, None, None).await?)),
        Some(pool) => {
            known_pool(&state, &pool).await?;
            Ok(HttpResponse::Ok().json(pool_view(&state, &pool).await?))
        }
    }
}
