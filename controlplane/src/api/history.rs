//! A node's records: `GET /v1/nodes/{id}/events|transitions|commands|observation`.

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::caller::Admin;
use super::error::ApiError;
use super::nodes::load;
use super::state::{blocking, AppState};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::model::{Command, Event, Transition};

/// Query of `GET /v1/nodes/{id}/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// At most this many, newest first (default 100, at most 10000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
}

/// Answer of `GET /v1/nodes/{id}/events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// Newest first.
    pub events: Vec<Event>,
}

fn limit_of(l: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let l = l.unwrap_or(default);
    if (1..=max).contains(&l) {
        Ok(l)
    } else {
        Err(ApiError::bad_request(format!(
            "limit must be between 1 and {max}"
        )))
    }
}

#[utoipa::path(
    get, path = "/v1/nodes/{id}/events", params(("id" = String, Path, description = "Node id or name"), EventsQuery),
    responses((status = 200, body = EventList), (status = 400), (status = 401), (status = 404))
)]
#[get("/v1/nodes/{id}/events")]
pub(super) async fn events(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = limit_of(q.limit, 100, 10_000)?;
    let since = match &q.since {
        Some(s) => parse_rfc3339(s)
            .ok_or_else(|| ApiError::bad_request(format!("since {s:?} is not RFC 3339")))?,
        None => 0,
    };
    let id = load(&state, &id).await?.id;
    let store = state.store.clone();
    let rows = blocking(move || store.events(&id, since, limit)).await?;
    Ok(HttpResponse::Ok().json(EventList {
        events: rows.into_iter().map(Event::from).collect(),
    }))
}

/// Query with a page size only.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// At most this many, newest first (default 100, at most 10000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
}

/// Answer of `GET /v1/nodes/{id}/transitions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionList {
    /// Newest first.
    pub transitions: Vec<Transition>,
}

#[utoipa::path(
    get, path = "/v1/nodes/{id}/transitions", params(("id" = String, Path, description = "Node id or name"), LimitQuery),
    description = "The node's history: every change of status, health and connectivity, with its reason and actor.",
    responses((status = 200, body = TransitionList), (status = 401), (status = 404))
)]
#[get("/v1/nodes/{id}/transitions")]
pub(super) async fn transitions(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<LimitQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = limit_of(q.limit, 100, 10_000)?;
    let id = load(&state, &id).await?.id;
    let store = state.store.clone();
    let rows = blocking(move || store.transitions(&id, limit)).await?;
    Ok(HttpResponse::Ok().json(TransitionList {
        transitions: rows.into_iter().map(Transition::from).collect(),
    }))
}

/// Answer of `GET /v1/nodes/{id}/commands`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandList {
    /// Newest first.
    pub commands: Vec<Command>,
}

#[utoipa::path(
    get, path = "/v1/nodes/{id}/commands", params(("id" = String, Path, description = "Node id or name"), LimitQuery),
    responses((status = 200, body = CommandList), (status = 401), (status = 404))
)]
#[get("/v1/nodes/{id}/commands")]
pub(super) async fn commands(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<LimitQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = limit_of(q.limit, 100, 10_000)?;
    let id = load(&state, &id).await?.id;
    let store = state.store.clone();
    let rows = blocking(move || store.commands(&id, limit)).await?;
    let commands = rows
        .iter()
        .map(|r| r.to_model())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(CommandList { commands }))
}

#[utoipa::path(
    get, path = "/v1/nodes/{id}/observation",
    params(("id" = String, Path, description = "Node id or name")),
    description = "The latest values read from the node's agent: one entry per GPU (`gpu` -1 is the node).",
    responses((status = 200, description = "Latest observation"), (status = 401), (status = 404))
)]
#[get("/v1/nodes/{id}/observation")]
pub(super) async fn observation(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = load(&state, &id).await?.id;
    let rows = match state.fleet.get(&id) {
        Some(t) if t.observation.is_some() => {
            let (o, at) = (
                t.observation.unwrap_or_default(),
                t.last_success.unwrap_or(0),
            );
            crate::store::observations::observation_rows(&id, &o, at)
        }
        _ => {
            let (store, id) = (state.store.clone(), id.to_string());
            blocking(move || store.observations(&id)).await?
        }
    };
    let entries: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "gpu": r.gpu,
                "uuid": r.uuid,
                "model": r.model,
                "observed_at": rfc3339(r.observed_at),
                "values": serde_json::from_str::<serde_json::Value>(&r.body).unwrap_or_default(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "node_id": id.as_str(), "observation": entries })))
}
