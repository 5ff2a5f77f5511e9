//! `POST /v1/commands` and `GET /v1/commands`: the control plane's commands, authenticated
//! by the digest of this node's token.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::state::{ApiError, AppState};

/// Checks the control plane's credential: the digest of this node's token.
fn command_caller(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<crate::commands::Commands, ApiError> {
    let Some(commands) = state.commands.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this agent takes no commands",
        ));
    };
    match super::state::node_credential(headers, state) {
        Some(true) => Ok(commands),
        Some(false) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "commands need the digest of this node's token as the bearer",
        )),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_registered",
            "this agent has no node token yet: it takes commands once it has registered with a control plane",
        )),
    }
}

pub(super) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: super::body::JsonBody,
) -> Result<Response, ApiError> {
    let commands = command_caller(&headers, &state)?;
    let r: gpuwarden_wire::command::CommandRequest =
        serde_json::from_slice(&body.0).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("invalid command: {e}"),
            )
        })?;
    // Waiting for a quick command to end blocks: keep it off the server's threads.
    let out = tokio::task::spawn_blocking(move || {
        commands.submit(r).map(|s| {
            commands
                .status_within(&s.id, Duration::from_secs(2))
                .unwrap_or(s)
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match out {
        Ok(status) => Ok(Json(status).into_response()),
        Err(e @ crate::commands::SubmitError::Invalid(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            e.to_string(),
        )),
        Err(e @ crate::commands::SubmitError::Conflict { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            e.to_string(),
        )),
    }
}

pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let commands = command_caller(&headers, &state)?;
    Ok(Json(serde_json::json!({"commands": commands.list()})).into_response())
}
