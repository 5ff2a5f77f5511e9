//! The agents' side: `POST /v1/nodes/{id}/plugins` (a report in, the assignment out) and the
//! assignment a node of a pool is told.

use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};
use gpuwarden_wire::plugin_sync::{
    valid_digest, AssignedPlugin, PluginAssignment, PluginReport, MAX_PLUGINS, SOURCE_ASSIGNED,
    SOURCE_LOCAL,
};

use super::super::body::Json;
use super::super::caller::{allow_node, caller, Caller};
use super::super::error::ApiError;
use super::super::state::{blocking, clip, AppState};
use super::blobs::plugin_name;
use crate::store::plugins::{AssignmentRow, NodePluginRow, ALL_NODES};

/// The largest answer to `POST /v1/nodes/{id}/plugins` an assignment may make, bytes (the
/// agent reads at most 4 MiB).
pub const MAX_ASSIGNMENT_BYTES: usize = 1 << 20;

/// The answer a node of `pool` gets from these assignments.
pub(super) fn answer(pool: &str, all: &[AssignmentRow]) -> PluginAssignment {
    let rows = crate::store::plugins::effective(
        pool,
        all.iter()
            .filter(|a| a.pool == pool || a.pool == ALL_NODES)
            .cloned()
            .collect(),
    );
    PluginAssignment {
        plugins: rows
            .into_iter()
            .map(|a| AssignedPlugin {
                config: serde_json::from_str(&a.config).unwrap_or_default(),
                interval_seconds: a.interval_ms.map(|m| m as f64 / 1e3),
                timeout_seconds: a.timeout_ms.map(|m| m as f64 / 1e3),
                memory_limit_mib: a.memory_limit_mib.and_then(|m| u32::try_from(m).ok()),
                name: a.name,
                digest: a.digest,
            })
            .collect(),
    }
}

#[utoipa::path(
    post, path = "/v1/nodes/{id}/plugins", operation_id = "sync_node_plugins",
    params(("id" = String, Path, description = "Node id")),
    request_body = PluginReport,
    description = "The agent's report of what it runs (its node token); the answer is what it should run: its pool's plugins and those assigned to every node.",
    responses(
        (status = 200, body = PluginAssignment),
        (status = 403, description = "Another node's token"),
        (status = 422, description = "A bad report"),
    )
)]
#[post("/v1/nodes/{id}/plugins")]
pub(crate) async fn sync(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Json<PluginReport>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&req, &state).await?;
    let id = id.into_inner();
    allow_node(&who, &id)?;
    if matches!(who, Caller::Admin(_)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the node's agent reports its plugins (its node token)",
        ));
    }
    let report = body.0;
    if report.plugins.len() > MAX_PLUGINS {
        return Err(ApiError::invalid(format!(
            "{} plugins, at most {MAX_PLUGINS}",
            report.plugins.len()
        )));
    }
    let now = state.clock.now_ms();
    let mut rows: Vec<NodePluginRow> = Vec::new();
    for p in report.plugins {
        plugin_name(&p.name)?;
        if p.source != SOURCE_ASSIGNED && p.source != SOURCE_LOCAL {
            return Err(ApiError::invalid(format!(
                "plugin {}: source must be assigned or local",
                p.name
            )));
        }
        if rows.iter().any(|r| r.name == p.name) {
            return Err(ApiError::invalid(format!(
                "plugin {} is reported twice",
                p.name
            )));
        }
        rows.push(NodePluginRow {
            node_id: id.clone(),
            name: p.name,
            source: p.source,
            running: p.running.filter(|d| valid_digest(d)),
            status: p.status.map(|s| clip(&s, 16)),
            message: clip(&p.message, 1024),
            error: p.error.map(|e| clip(&e, 1024)),
            reported_at: now,
        });
    }
    let store = state.store.clone();
    let key = id.clone();
    let (pool, all) = blocking(move || {
        let node = store.node(&key)?;
        store.record_node_plugins(&node.id, &rows)?;
        Ok((node.pool.clone(), store.plugin_assignments(None)?))
    })
    .await?;
    Ok(HttpResponse::Ok().json(answer(&pool, &all)))
}
