//! `POST /v1/nodes/{id}/diagnose` (a run_diagnostic command) and `GET /v1/commands/{id}`.

use std::collections::BTreeMap;

use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::body::OptJson;
use super::caller::Admin;
use super::error::ApiError;
use super::nodes::{load, node_json};
use super::state::{audited, blocking, clip, AppState};
use super::steps::{new_command, StepResult};
use crate::model::{Command, CommandKind};
use crate::store::rows::NewAudit;

/// Body of `POST /v1/nodes/{id}/diagnose`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiagnoseRequest {
    /// The diagnostic plugin (default: the agent's `commands.diagnostic`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub plugin: Option<String>,
    /// Plugin parameters.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

#[utoipa::path(
    post, path = "/v1/nodes/{id}/diagnose",
    params(("id" = String, Path, description = "Node id or name")),
    description = "Runs a diagnostic plugin on the node's agent; its report is stored as the command's result (`GET /v1/nodes/{id}/commands`). A refused request is audited with its reason.",
    request_body(content = Option<DiagnoseRequest>, description = "Optional: none means the defaults"),
    responses((status = 202, body = StepResult), (status = 400), (status = 401), (status = 404), (status = 422))
)]
#[post("/v1/nodes/{id}/diagnose")]
pub(super) async fn diagnose(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: OptJson<DiagnoseRequest>,
) -> Result<HttpResponse, ApiError> {
    let done = diagnose_node(&state, &admin.0, &id.into_inner(), body.0).await?;
    Ok(HttpResponse::Accepted().json(done))
}

/// Queues a `run_diagnostic` command for node `key` (id or name) by `actor`, audited
/// (refusals too). The REST API's `POST /v1/nodes/{id}/diagnose` and the console's button.
pub async fn diagnose_node(
    state: &AppState,
    actor: &str,
    key: &str,
    b: DiagnoseRequest,
) -> Result<StepResult, ApiError> {
    let details = json!({"plugin": b.plugin.as_deref().map(|p| clip(p, 128))});
    let row = audited(state, actor, "node.diagnose", key, details, async {
        if let Some(p) = &b.plugin {
            if p.is_empty() || p.len() > 128 {
                return Err(ApiError::invalid("plugin must be 1 to 128 characters"));
            }
        }
        // Bounded so that the command always fits the agent's 64 KiB body limit: a command
        // the agent must refuse (413) would be retried until it expires.
        if b.args.len() > 32 || b.args.iter().any(|(k, v)| k.len() > 128 || v.len() > 1024) {
            return Err(ApiError::invalid(
                "args: at most 32, names up to 128 bytes, values up to 1024",
            ));
        }
        load(state, key).await
    })
    .await?;
    let now = state.clock.now_ms();
    let cmd = new_command(
        &row.id,
        CommandKind::RunDiagnostic,
        json!({"plugin": b.plugin, "args": b.args}),
        actor,
        now,
    )?;
    let entry = NewAudit::ok(
        actor,
        "node.diagnose",
        &row.id,
        json!({"plugin": b.plugin, "command": cmd.id}),
        now,
    );
    let store = state.store.clone();
    let stored = cmd.clone();
    blocking(move || store.add_command(&stored, entry)).await?;
    state.links.dispatch.notify();
    Ok(StepResult {
        node: node_json(&row, state)?,
        command: cmd.to_model()?,
    })
}

#[utoipa::path(
    get, path = "/v1/commands/{id}", operation_id = "get_command",
    params(("id" = String, Path, description = "Command id")),
    description = "One command: its delivery state and the agent's result.",
    responses((status = 200, body = Command), (status = 401), (status = 404))
)]
#[get("/v1/commands/{id}")]
pub(super) async fn get(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let id = id.into_inner();
    let row = blocking(move || store.command(&id)).await?;
    Ok(HttpResponse::Ok().json(row.to_model()?))
}
