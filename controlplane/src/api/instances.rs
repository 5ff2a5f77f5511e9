//! `GET /v1/instances` (filters: pool, state; pagination) and `GET /v1/instances/{id}`:
//! the machines pools asked of their providers, from the request to their end.

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::caller::Admin;
use super::error::ApiError;
use super::state::{blocking, AppState};
use crate::clock::rfc3339;
use crate::model::pool::InstanceState;
use crate::store::pool_rows::InstanceRow;
use crate::store::{InstanceFilter, StoreError};

/// An instance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstanceView {
    /// Our id for it.
    pub id: String,
    /// Its pool.
    pub pool: String,
    /// Where it is in its life.
    pub state: InstanceState,
    /// The node that joins (or joined) from it.
    pub node_id: Option<String>,
    /// The provider's name within the pool.
    pub provider: String,
    /// The provider's id for the machine, once it answered.
    pub provider_id: Option<String>,
    /// The last error (the provider refused, the registration timed out, …).
    pub error: Option<String>,
    /// Provider calls made for it.
    pub attempts: i32,
    /// Created (RFC 3339).
    pub created_at: String,
    /// When it entered its state (RFC 3339).
    pub state_since: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

impl InstanceView {
    /// The view of a stored instance.
    pub fn of(r: &InstanceRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id.clone(),
            pool: r.pool.clone(),
            state: r.state()?,
            node_id: r.node_id.clone(),
            provider: r.provider.clone(),
            provider_id: r.provider_id.clone(),
            error: r.error.clone(),
            attempts: r.attempts,
            created_at: rfc3339(r.created_at),
            state_since: rfc3339(r.state_since),
            updated_at: rfc3339(r.updated_at),
        })
    }
}

/// Query of `GET /v1/instances`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InstanceQuery {
    /// Only this pool.
    pool: Option<String>,
    /// Only these states, comma-separated (`provisioning,registering`).
    state: Option<String>,
    /// Page size (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Instances to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// Answer of `GET /v1/instances`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceList {
    /// This page, oldest first.
    pub instances: Vec<InstanceView>,
    /// Instances matching the filters.
    pub total: i64,
    /// Page size.
    pub limit: i64,
    /// Skipped.
    pub offset: i64,
}

#[utoipa::path(
    get, path = "/v1/instances", operation_id = "list_instances", params(InstanceQuery),
    responses((status = 200, body = InstanceList), (status = 400, description = "Bad filter"), (status = 401))
)]
#[get("/v1/instances")]
pub(super) async fn list(
    _admin: Admin,
    state: web::Data<AppState>,
    q: web::Query<InstanceQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let mut states = Vec::new();
    for s in q.state.iter().flat_map(|s| s.split(',')).map(str::trim) {
        if !s.is_empty() {
            states.push(s.parse::<InstanceState>().map_err(ApiError::bad_request)?);
        }
    }
    let limit = q.limit.unwrap_or(100);
    let offset = q.offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) || offset < 0 {
        return Err(ApiError::bad_request(
            "limit must be 1-1000 and offset at least 0",
        ));
    }
    let f = InstanceFilter {
        pool: q.pool,
        states,
        offset,
        limit,
    };
    let store = state.store.clone();
    let (rows, total) = blocking(move || store.list_instances(&f)).await?;
    let instances = rows
        .iter()
        .map(InstanceView::of)
        .collect::<Result<_, _>>()?;
    Ok(HttpResponse::Ok().json(InstanceList {
        instances,
        total,
        limit,
        offset,
    }))
}

#[utoipa::path(
    get, path = "/v1/instances/{id}", operation_id = "get_instance",
    params(("id" = String, Path, description = "Instance id")),
    responses((status = 200, body = InstanceView), (status = 404, description = "No such instance"), (status = 401))
)]
#[get("/v1/instances/{id}")]
pub(super) async fn get(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (store, id) = (state.store.clone(), id.into_inner());
    let row = blocking(move || store.instance(&id)).await?;
    Ok(HttpResponse::Ok().json(InstanceView::of(&row)?))
}
