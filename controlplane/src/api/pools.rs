//! Pools through the API (docs/POOLS.md "API"): `GET/POST /v1/pools`,
//! `GET/PUT/DELETE /v1/pools/{name}`, `POST /v1/pools/{name}/scale`,
//! `PUT /v1/pools/{name}/demand`.
//!
//! A pool body is checked whole before anything is written: its shape like every body (400
//! `bad_request`, naming the field's path), then every rule of `Pool::build`, all reported
//! at once as 422 `invalid_pool` with one `details` entry per problem. Pools declared in the config
//! file are read-only here (409 naming the file); scaling them and pushing their demand are
//! allowed (they change the pool's state, not its declaration). Each change wakes the pool
//! manager, which evaluates the pool at once rather than at its next interval.

mod guard;
mod rules;
mod view;

use guard::{check_name, not_from_config};

pub use rules::{pool_rules, pool_shape};

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, put, web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::body::Json;
use super::caller::Admin;
use super::error::{ApiError, FieldError};
use super::state::{audited, blocking, clip, AppState};
use crate::model::pool::{InstanceState, PoolSpec};
use crate::store::pool_rows::{PoolRow, SOURCE_API};
use crate::store::rows::NewAudit;
use crate::store::InstanceFilter;

pub use view::{PoolDetail, PoolList, PoolView};

/// How many of a pool's last decisions `GET /v1/pools/{name}` shows.
const SHOWN_DECISIONS: i64 = 10;

#[utoipa::path(get, path = "/v1/pools", operation_id = "list_pools", responses((status = 200, body = PoolList), (status = 401)))]
#[get("/v1/pools")]
pub(super) async fn list(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let (rows, counts) = blocking(move || Ok((store.pools()?, store.pool_node_counts()?))).await?;
    let pools = rows
        .iter()
        .map(|r| view::view(r, counts.get(&r.name).copied().unwrap_or(0)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(PoolList {
        total: pools.len(),
        pools,
    }))
}

#[utoipa::path(
    post, path = "/v1/pools", operation_id = "create_pool",
    request_body(content = PoolSpec, description = "The pool: `name`, `provider` (or `providers`), `min_nodes` and `max_nodes` are required; every other field has a default"),
    responses(
        (status = 201, body = PoolView),
        (status = 400, description = "Not JSON, a wrong type, an unknown or missing field, or a key given twice (named)"),
        (status = 409, description = "A pool of that name exists (from the config file: named)"),
        (status = 422, description = "Every problem of the pool, in `details`"),
    )
)]
#[post("/v1/pools")]
pub(super) async fn create(
    admin: Admin,
    state: web::Data<AppState>,
    body: Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let name = body
        .0
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let target = clip(&name, 64);
    let details = json!({"name": target});
    // A taken name is 409 (naming the config file of a config pool) before the body is
    // looked at, as for PUT and DELETE; audited like the store's own conflict.
    if let Err(e) = guard::taken(&state, &name).await {
        return audited(&state, &admin.0, "pool.create", &target, details, async {
            Err::<HttpResponse, ApiError>(e)
        })
        .await;
    }
    // A body of the wrong shape is refused before anything is written (or audited).
    let spec = pool_shape(body.0)?;
    audited(&state, &admin.0, "pool.create", &target, details, async {
        pool_rules(&spec)?;
        let now = state.clock.now_ms();
        let row = PoolRow::new(&spec, SOURCE_API, None, now)?;
        let entry = NewAudit::ok(
            &admin.0,
            "pool.create",
            &spec.name,
            json!({"spec": spec}),
            now,
        );
        let (store, r) = (state.store.clone(), row.clone());
        let (actor, plugins) = (admin.0.clone(), spec.plugins.clone());
        blocking(move || {
            store.create_pool(&r, entry)?;
            if let Some(wanted) = plugins {
                store.apply_spec_plugins(&r.name, &wanted, &actor, now)?;
            }
            Ok(())
        })
        .await?;
        state.links.pools.notify();
        Ok(HttpResponse::Created().json(view::view(&row, 0)?))
    })
    .await
}

#[utoipa::path(
    get, path = "/v1/pools/{name}", operation_id = "get_pool",
    params(("name" = String, Path, description = "Pool name")),
    responses((status = 200, body = PoolDetail), (status = 404, description = "No such pool"), (status = 401))
)]
#[get("/v1/pools/{name}")]
pub(super) async fn get(
    _admin: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(pool_detail(&state, name.into_inner()).await?))
}

/// Pool `name` with what its manager last did and why: the REST API's
/// `GET /v1/pools/{name}` and the console's pools page. 404 for no such pool.
pub async fn pool_detail(state: &AppState, name: String) -> Result<PoolDetail, ApiError> {
    check_name(&name)?;
    let store = state.store.clone();
    let now = state.clock.now_ms();
    blocking(move || {
        let row = store.pool(&name)?;
        let nodes = store.pool_node_counts()?.get(&name).copied().unwrap_or(0);
        let decisions = store.decisions(&name, SHOWN_DECISIONS)?;
        let f = InstanceFilter {
            pool: Some(name.clone()),
            states: vec![
                InstanceState::Provisioning,
                InstanceState::Registering,
                InstanceState::Terminating,
            ],
            offset: 0,
            limit: 100,
        };
        let (in_flight, _) = store.list_instances(&f)?;
        let mut d = view::detail(&row, nodes, &decisions, &in_flight, now)?;
        // An operator's budget is in force over the spec's.
        let key = crate::store::BudgetScope::Pool(name.clone()).key();
        if let Some(b) = store.budgets()?.into_iter().find(|b| b.scope == key) {
            d.budget_status.limit = b.spec().limit(u32::try_from(nodes).unwrap_or(u32::MAX));
            d.budget_status.operator = Some(b.spec());
        }
        Ok(d)
    })
    .await
}

#[utoipa::path(
    put, path = "/v1/pools/{name}", operation_id = "update_pool",
    params(("name" = String, Path, description = "Pool name")),
    request_body(content = PoolSpec, description = "The whole new spec; its `name` is the path's"),
    responses(
        (status = 200, body = PoolView),
        (status = 400, description = "Not JSON, a wrong type, an unknown or missing field, or a key given twice (named)"),
        (status = 404, description = "No such pool"),
        (status = 409, description = "The pool is declared in the config file (named); answered before the body is read"),
        (status = 422, description = "Every problem of the pool, in `details`"),
    )
)]
#[put("/v1/pools/{name}")]
pub(super) async fn update(
    admin: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    if let Err(e) = not_from_config(&state, &name).await {
        let target = clip(&name, 64);
        return audited(&state, &admin.0, "pool.update", &target, json!({}), async {
            Err(e)
        })
        .await;
    }
    let spec = pool_shape(body.0)?;
    audited(
        &state,
        &admin.0,
        "pool.update",
        &clip(&name, 64),
        json!({}),
        async {
            check_name(&name)?;
            pool_rules(&spec)?;
            if spec.name != name {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_pool",
                    "the body's name is not the path's: a pool is not renamed",
                )
                .with_details(vec![FieldError {
                    field: "name".into(),
                    message: format!("{:?} is not {:?}", clip(&spec.name, 64), name),
                }]));
            }
            let now = state.clock.now_ms();
            let entry = NewAudit::ok(&admin.0, "pool.update", &name, json!({"spec": spec}), now);
            let store = state.store.clone();
            let actor = admin.0.clone();
            let (row, nodes) = blocking(move || {
                let row = store.update_pool_spec(&spec, now, entry)?;
                if let Some(wanted) = &spec.plugins {
                    store.apply_spec_plugins(&spec.name, wanted, &actor, now)?;
                }
                let n = store
                    .pool_node_counts()?
                    .get(&row.name)
                    .copied()
                    .unwrap_or(0);
                Ok((row, n))
            })
            .await?;
            state.links.pools.notify();
            Ok(HttpResponse::Ok().json(view::view(&row, nodes)?))
        },
    )
    .await
}

/// Query of `DELETE /v1/pools/{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Delete even when the pool has nodes or instances in flight (they are left as they
    /// are: nothing is terminated).
    force: Option<bool>,
}

#[utoipa::path(
    delete, path = "/v1/pools/{name}", operation_id = "delete_pool",
    params(("name" = String, Path, description = "Pool name"), DeleteQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A bad query string"),
        (status = 404, description = "No such pool"),
        (status = 409, description = "Declared in the config file (named; answered before the query is read), or it has nodes or instances in flight and `force` is not set"),
    )
)]
#[delete("/v1/pools/{name}")]
pub(super) async fn delete(
    admin: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    if let Err(e) = not_from_config(&state, &name).await {
        let target = clip(&name, 64);
        return audited(&state, &admin.0, "pool.delete", &target, json!({}), async {
            Err(e)
        })
        .await;
    }
    // Read after the config check: a config pool's 409 comes first, whatever the query.
    let q = web::Query::<DeleteQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("query string: {e}")))?;
    let force = q.force.unwrap_or(false);
    audited(
        &state,
        &admin.0,
        "pool.delete",
        &clip(&name, 64),
        json!({"force": force}),
        async {
            check_name(&name)?;
            let entry = NewAudit::ok(
                &admin.0,
                "pool.delete",
                &name,
                json!({"force": force}),
                state.clock.now_ms(),
            );
            let store = state.store.clone();
            blocking(move || store.delete_pool(&name, force, entry)).await?;
            Ok(HttpResponse::NoContent().finish())
        },
    )
    .await
}

/// Body of `POST /v1/pools/{name}/scale`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Nodes to keep the pool at, within its `min_nodes..=max_nodes`; `null` hands the
    /// pool back to its autoscaler (or `min_nodes`). Required: `{}` is refused rather than
    /// read as `null`, which would release the pool by accident.
    #[serde(deserialize_with = "Option::deserialize")]
    #[schema(required = true)]
    pub nodes: Option<u32>,
}

#[utoipa::path(
    post, path = "/v1/pools/{name}/scale", operation_id = "scale_pool",
    params(("name" = String, Path, description = "Pool name")),
    request_body = Scale,
    responses(
        (status = 200, body = PoolView),
        (status = 404, description = "No such pool"),
        (status = 422, description = "Outside the pool's min_nodes..max_nodes"),
    )
)]
#[post("/v1/pools/{name}/scale")]
pub(super) async fn scale(
    admin: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: Json<Scale>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let nodes = body.0.nodes;
    audited(
        &state,
        &admin.0,
        "pool.scale",
        &clip(&name, 64),
        json!({"nodes": nodes}),
        async {
            check_name(&name)?;
            let now = state.clock.now_ms();
            let entry = NewAudit::ok(&admin.0, "pool.scale", &name, json!({"nodes": nodes}), now);
            let store = state.store.clone();
            let (row, count) = blocking(move || {
                let spec = store.pool(&name)?.spec()?;
                if let Some(n) = nodes {
                    if !(spec.min_nodes..=spec.max_nodes).contains(&n) {
                        return Ok(Err(format!(
                            "nodes {n} is outside the pool's bounds {}..{}",
                            spec.min_nodes, spec.max_nodes
                        )));
                    }
                }
                store.set_manual_target(&name, nodes, now, entry)?;
                let count = store.pool_node_counts()?.get(&name).copied().unwrap_or(0);
                Ok(Ok((store.pool(&name)?, count)))
            })
            .await?
            .map_err(ApiError::invalid)?;
            state.links.pools.notify();
            Ok(HttpResponse::Ok().json(view::view(&row, count)?))
        },
    )
    .await
}

/// Body of `PUT /v1/pools/{name}/demand`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Demand {
    /// Jobs waiting for this pool, as the operator's scheduler counts them.
    pub pending_jobs: u64,
}

#[utoipa::path(
    put, path = "/v1/pools/{name}/demand", operation_id = "set_pool_demand",
    params(("name" = String, Path, description = "Pool name")),
    request_body = Demand,
    responses(
        (status = 204, description = "Stored"),
        (status = 404, description = "No such pool"),
        (status = 422, description = "`pending_jobs` above 9223372036854775807 (a signed 64-bit integer in the database)"),
    )
)]
#[put("/v1/pools/{name}/demand")]
pub(super) async fn demand(
    _admin: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: Json<Demand>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    check_name(&name)?;
    // Stored as a signed 64-bit integer on both backends: refused above, never clamped.
    if i64::try_from(body.0.pending_jobs).is_err() {
        return Err(ApiError::invalid(format!(
            "pending_jobs {} is above {}",
            body.0.pending_jobs,
            i64::MAX
        )));
    }
    let (store, now, n) = (
        state.store.clone(),
        state.clock.now_ms(),
        body.0.pending_jobs,
    );
    // Pushed often by a scheduler: stored, not audited.
    blocking(move || store.set_demand(&name, n, now)).await?;
    state.links.pools.notify();
    Ok(HttpResponse::NoContent().finish())
}
