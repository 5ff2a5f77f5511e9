//! An operator's actions on a node's state: the lifecycle steps
//! (`POST /v1/nodes/{id}/cordon|uncordon|drain|terminate`) and clearing its health.
//! Each is audited, refused ones included.

use std::time::Duration;

use actix_web::{post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::body::{NoBody, OptJson};
use super::caller::Admin;
use super::error::ApiError;
use super::nodes::{load, node_json};
use super::state::{audited, blocking, clip, AppState};
use crate::model::lifecycle::Step;
use crate::model::{Command, CommandKind, Node};
use crate::store::rows::NewAudit;
use crate::validate;

/// Longest drain timeout an operator may give.
const MAX_DRAIN_TIMEOUT: Duration = Duration::from_secs(7 * 86_400);

/// The lifecycle steps an operator can ask for.
#[derive(Debug, Clone, Copy, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum StepAction {
    /// Stop scheduling new work.
    Cordon,
    /// Allow scheduling again.
    Uncordon,
    /// Move the work off.
    Drain,
    /// Shut the node down.
    Terminate,
}

impl StepAction {
    /// The action named in the path, if it is one.
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "cordon" => StepAction::Cordon,
            "uncordon" => StepAction::Uncordon,
            "drain" => StepAction::Drain,
            "terminate" => StepAction::Terminate,
            _ => return None,
        })
    }

    /// The lifecycle step and the command for the agent.
    fn step(self) -> (Step, CommandKind) {
        match self {
            StepAction::Cordon => (Step::Cordon, CommandKind::Cordon),
            StepAction::Uncordon => (Step::Uncordon, CommandKind::Uncordon),
            StepAction::Drain => (Step::Drain, CommandKind::Drain),
            StepAction::Terminate => (Step::Terminate, CommandKind::Terminate),
        }
    }
}

/// Body of the lifecycle steps.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    /// Why (stored with the transition and the command; at most 1024 bytes).
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub reason: Option<String>,
    /// Drain only: how long the drain may take, like `30m` (1s to 7d).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A new `pending` command for `node`, due now.
pub fn new_command(
    node: &str,
    kind: CommandKind,
    params: serde_json::Value,
    by: &str,
    now: i64,
) -> Result<crate::store::rows::CommandRow, ApiError> {
    Ok(crate::store::rows::CommandRow::pending(
        crate::token::random_id("cmd-")?,
        node,
        kind,
        &params,
        by,
        now,
    ))
}

/// Answer of a lifecycle step.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepResult {
    /// The node after the step.
    pub node: Node,
    /// The command queued for its agent.
    pub command: Command,
}

#[utoipa::path(
    post, path = "/v1/nodes/{id}/{action}",
    params(
        ("id" = String, Path, description = "Node id or name"),
        ("action" = inline(StepAction), Path, description = "cordon | uncordon | drain | terminate"),
    ),
    request_body(content = Option<StepRequest>, description = "Optional: none means the defaults"),
    description = "Stores the transition and queues the command for the node's agent. Which steps each status allows: docs/remediation.md. A refused step is audited with its reason.",
    responses(
        (status = 202, description = "Transition stored, command queued", body = StepResult),
        (status = 400, description = "Malformed body"),
        (status = 401), (status = 404),
        (status = 409, description = "The node's status does not allow it"),
        (status = 422, description = "Invalid reason or timeout"),
    )
)]
#[post("/v1/nodes/{id}/{action}")]
pub(super) async fn step(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: OptJson<StepRequest>,
) -> Result<HttpResponse, ApiError> {
    let (key, action) = path.into_inner();
    let done = apply_step(&state, &admin.0, &key, &action, body.0).await?;
    Ok(HttpResponse::Accepted().json(done))
}

/// Lifecycle step `action` (`cordon`, `uncordon`, `drain`, `terminate`) on node `key` (id or
/// name) by `actor`: the transition stored and the command queued, audited (refusals too).
/// The REST API's `POST /v1/nodes/{id}/{action}` and the console's buttons.
pub async fn apply_step(
    state: &AppState,
    actor: &str,
    key: &str,
    action: &str,
    b: StepRequest,
) -> Result<StepResult, ApiError> {
    let (to, kind) = StepAction::parse(action)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no action {:?}: use cordon, uncordon, drain or terminate",
                clip(action, 64)
            ))
        })?
        .step();
    let details = json!({
        "reason": b.reason.as_deref().map(|r| clip(r, 256)),
        "timeout": b.timeout.as_deref().map(|t| clip(t, 64)),
    });
    let action_name = format!("node.{action}");
    // Refusals before the store are audited here; the store audits a step the node's
    // status does not allow, in the same transaction that would have made it.
    let (id, reason) = audited(state, actor, &action_name, key, details, async {
        if let Some(t) = &b.timeout {
            if to != Step::Drain {
                return Err(ApiError::invalid("timeout is for drain only"));
            }
            validate::duration(t, Duration::from_secs(1), MAX_DRAIN_TIMEOUT)
                .map_err(|e| ApiError::invalid(format!("timeout {e}")))?;
        }
        let reason = b
            .reason
            .clone()
            .unwrap_or_else(|| format!("{action} requested by an operator"));
        validate::free_text(&reason, 1024).map_err(|e| ApiError::invalid(format!("reason {e}")))?;
        Ok((load(state, key).await?.id, reason))
    })
    .await?;
    let now = state.clock.now_ms();
    let cmd = new_command(
        &id,
        kind,
        json!({"reason": reason, "timeout": b.timeout}),
        actor,
        now,
    )?;
    let entry = NewAudit::ok(
        actor,
        &action_name,
        &id,
        json!({"reason": reason, "command": cmd.id}),
        now,
    );
    let (store, nid, by) = (state.store.clone(), id.clone(), actor.to_string());
    let (row, cmd) =
        blocking(move || store.apply_step(&nid, to, &reason, &by, Some(cmd), entry)).await?;
    state.fleet.sync(&row, now);
    state.links.dispatch.notify();
    let command = cmd
        .ok_or_else(|| ApiError::internal("command not stored"))?
        .to_model()?;
    Ok(StepResult {
        node: node_json(&row, state)?,
        command,
    })
}

#[utoipa::path(
    post, path = "/v1/nodes/{id}/clear-health",
    params(("id" = String, Path, description = "Node id or name")),
    request_body(content = Option<NoBody>, description = "None, or `{}`"),
    description = "An operator clears the node's health: a sticky `unhealthy` goes, and the health is recomputed from the conditions that still hold (audited).",
    responses((status = 200, body = Node), (status = 400), (status = 401), (status = 404))
)]
#[post("/v1/nodes/{id}/clear-health")]
pub(super) async fn clear_health(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    _body: OptJson<NoBody>,
) -> Result<HttpResponse, ApiError> {
    let node = clear_node_health(&state, &admin.0, &id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(node))
}

/// An operator (`actor`) clears node `key`'s health (id or name): a sticky `unhealthy` goes
/// and the health is recomputed from the conditions that still hold; audited. The REST API's
/// `POST /v1/nodes/{id}/clear-health` and the console's button.
pub async fn clear_node_health(state: &AppState, actor: &str, key: &str) -> Result<Node, ApiError> {
    let row = audited(state, actor, "node.clear_health", key, json!({}), async {
        load(state, key).await
    })
    .await?;
    let now = state.clock.now_ms();
    let who = actor.to_string();
    let before = row.health.clone();
    let change = match state.fleet.clear_health(&row.id, &who, now) {
        Some(c) => c.map(|c| (c.to, c.reason)),
        // Not scraped now: nothing to recompute from.
        None => Some((
            crate::model::Health::Unknown,
            format!("cleared by {who}; not scraped now"),
        )),
    };
    let (store, nid) = (state.store.clone(), row.id.clone());
    let entry_details = json!({"before": before, "after": change.as_ref().map(|c| c.0.as_str())});
    let entry = NewAudit::ok(&who, "node.clear_health", &row.id, entry_details, now);
    let row = blocking(move || {
        if let Some((to, reason)) = &change {
            store.set_health(&nid, *to, reason, &who, now)?;
        }
        store.audit(entry)?;
        store.node(&nid)
    })
    .await?;
    if row.health != before {
        state.links.notifier.send(
            "health",
            &row.id,
            now,
            json!({"health": {"from": before, "to": row.health, "reason": format!("cleared by {actor}"), "rule": null}}),
        );
    }
    node_json(&row, state)
}
