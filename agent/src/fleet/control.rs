//! The fleet's control API (`gpuwarden-agent fleet --control ADDR`): nodes added and removed
//! while the fleet runs (the `fake` provider of a simulation's pools provisions and
//! terminates through it) and taken down and up again (the simulator's `agent_down` fault).
//!
//! | request | answer |
//! |---|---|
//! | `GET /v1/fleet/nodes` | 200 `{"nodes":[{"name","address":"http://IP:PORT","up"}]}` |
//! | `POST /v1/fleet/nodes` `{"name","pool","gpus","model","labels","token"}` | 201 `{"name","address":"http://IP:PORT"}`; 400 invalid, 409 exists, 503 no spare address |
//! | `DELETE /v1/fleet/nodes/{name}` | 204 (deregistered and stopped); 404 |
//! | `POST /v1/fleet/nodes/{name}/down` | 204 (its server stops: connections refused); 404 |
//! | `POST /v1/fleet/nodes/{name}/up` | 204 (serves again on its address); 404 |
//!
//! Bodies are JSON (any or no `Content-Type`; at most 64 KiB). Errors are `{"error": "…"}`. `token` is the node's own join token (a pool's instance's);
//! without it the node joins with the fleet's bootstrap token. The API has no
//! authentication: it listens on a loopback address, as the fleet's fake-GPU nodes (whose
//! `/v1/fake/inject` has none either) exist for simulations only.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{Fleet, FleetError, FleetNode};

/// `POST /v1/fleet/nodes`' body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddNode {
    /// Node name.
    pub name: String,
    /// Pool it joins.
    #[serde(default)]
    pub pool: String,
    /// Fake GPUs (1 to 64; default 8).
    #[serde(default)]
    pub gpus: Option<u32>,
    /// GPU model (default the fleet's H100).
    #[serde(default)]
    pub model: Option<String>,
    /// Node labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its own join token (a secret; never logged).
    #[serde(default)]
    pub token: Option<String>,
}

/// The control API's routes over `fleet`.
pub fn router(fleet: Fleet) -> Router {
    Router::new()
        .route("/v1/fleet/nodes", get(list).post(add))
        .route("/v1/fleet/nodes/{name}", axum::routing::delete(remove))
        .route("/v1/fleet/nodes/{name}/down", post(down))
        .route("/v1/fleet/nodes/{name}/up", post(up))
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        })
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route (GET or POST /v1/fleet/nodes, DELETE /v1/fleet/nodes/NAME, POST …/NAME/down or …/NAME/up)",
            )
        })
        .with_state(fleet)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

fn answer(e: FleetError) -> Response {
    let status = match &e {
        FleetError::Invalid(_) => StatusCode::BAD_REQUEST,
        FleetError::Exists(_) => StatusCode::CONFLICT,
        FleetError::NotFound(_) => StatusCode::NOT_FOUND,
        FleetError::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
        FleetError::Start(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e)
}

async fn list(State(fleet): State<Fleet>) -> Response {
    let nodes: Vec<serde_json::Value> = fleet
        .list()
        .into_iter()
        .map(|l| json!({"name": l.name, "address": format!("http://{}", l.address), "up": l.up}))
        .collect();
    Json(json!({"nodes": nodes})).into_response()
}

/// Most bytes of a `POST /v1/fleet/nodes` body.
const BODY_LIMIT: usize = 64 * 1024;

async fn add(State(fleet): State<Fleet>, body: Bytes) -> Response {
    // JSON with or without a Content-Type header (curl -d sends a form type).
    if body.len() > BODY_LIMIT {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a body of at most {BODY_LIMIT} bytes"),
        );
    }
    let a: AddNode = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("the body: {e}")),
    };
    let node = FleetNode {
        name: a.name.clone(),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        gpus: a.gpus.unwrap_or(8),
        model: a.model.unwrap_or_else(super::node::h100),
        labels: a.labels,
        pool: a.pool,
    };
    match fleet.add(&node, a.token) {
        Ok(addr) => {
            tracing::info!(node = %a.name, %addr, "node added");
            (
                StatusCode::CREATED,
                Json(json!({"name": a.name, "address": format!("http://{addr}")})),
            )
                .into_response()
        }
        Err(e) => answer(e),
    }
}

async fn remove(State(fleet): State<Fleet>, Path(name): Path<String>) -> Response {
    match fleet.remove(&name).await {
        Ok(()) => {
            tracing::info!(node = %name, "node removed");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => answer(e),
    }
}

async fn down(State(fleet): State<Fleet>, Path(name): Path<String>) -> Response {
    match fleet.down(&name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => answer(e),
    }
}

async fn up(State(fleet): State<Fleet>, Path(name): Path<String>) -> Response {
    match fleet.up(&name) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => answer(e),
    }
}
