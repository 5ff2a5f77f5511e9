//! An operator's hand on the remediation budget (docs/POOLS.md, "Budget"): release one held
//! node (`POST /v1/nodes/{id}/release`), and raise (or lower) the fleet's or a pool's budget
//! at run time (`GET/PUT/DELETE /v1/remediation/budget`). Both are stored, so a restart
//! keeps them; each is audited with its caller, refusals too, and wakes the pool manager,
//! which carries it out at once. Recovery (uncordon, clear-health) never needs either.

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, put, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::body::{Json, NoBody, OptJson};
use super::caller::Admin;
use super::error::ApiError;
use super::nodes::load;
use super::state::{audited, blocking, clip, AppState};
use crate::clock::rfc3339;
use crate::model::pool::BudgetSpec;
use crate::store::rows::NewAudit;
use crate::store::{BudgetRow, BudgetScope, ReleaseRow};
use crate::validate;

/// The most nodes a budget may name (a fleet's included).
const MAX_BUDGET_NODES: u32 = 1_000_000;

/// Answer of `POST /v1/nodes/{id}/release`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Released {
    /// The node.
    pub node: String,
    /// Its pool.
    pub pool: String,
    /// Why it was held.
    pub held_reason: String,
    /// The operator.
    pub released_by: String,
    /// When (RFC 3339).
    pub released_at: String,
}

#[utoipa::path(
    post, path = "/v1/nodes/{id}/release", operation_id = "release_node",
    params(("id" = String, Path, description = "Node id or name")),
    request_body(content = Option<NoBody>, description = "None, or `{}`"),
    description = "Releases a node the remediation budget holds: the pool manager remediates it now (its pool's plan, from the cordon), past the budget, and counts it against the budget until it returns. Audited with the caller.",
    responses(
        (status = 202, description = "Released; the pool manager acts on it at once", body = Released),
        (status = 409, description = "The node is not held by the budget"),
    )
)]
#[post("/v1/nodes/{id}/release")]
pub(super) async fn release(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    _body: OptJson<NoBody>,
) -> Result<HttpResponse, ApiError> {
    let key = id.into_inner();
    let work = async {
        let row = load(&state, &key).await?;
        let held = state.links.held.get(&row.id).ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "not_held",
                format!(
                    "node {} is not held by the remediation budget (status {}, health {})",
                    row.name, row.status, row.health
                ),
            )
        })?;
        let now = state.clock.now_ms();
        let release = ReleaseRow {
            node_id: row.id.clone(),
            pool: held.pool.clone(),
            released_by: admin.0.clone(),
            released_at: now,
        };
        let details = json!({"pool": held.pool, "held_reason": held.reason});
        let entry = NewAudit::ok(&admin.0, "node.release", &row.id, details, now);
        let (store, r) = (state.store.clone(), release.clone());
        blocking(move || store.release_node(&r, entry)).await?;
        state.links.pools.notify();
        Ok(HttpResponse::Accepted().json(Released {
            node: row.id,
            pool: held.pool,
            held_reason: held.reason,
            released_by: release.released_by,
            released_at: rfc3339(now),
        }))
    };
    audited(&state, &admin.0, "node.release", &key, json!({}), work).await
}

/// A budget an operator set, over the configured one.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetOverride {
    /// `fleet` or `pool`.
    pub scope: String,
    /// The pool, for a pool's budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Percentage of the nodes.
    pub max_percent: f64,
    /// Count of nodes.
    pub max_nodes: u32,
    /// The operator.
    pub set_by: String,
    /// When (RFC 3339).
    pub set_at: String,
}

/// A node the budget holds in service.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeldView {
    /// The node.
    pub node: String,
    /// Its pool.
    pub pool: String,
    /// Which budget is full, and its numbers.
    pub reason: String,
    /// Held since (RFC 3339).
    pub since: String,
}

/// Answer of `GET /v1/remediation/budget`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetState {
    /// The budgets operators set (the others are the configured ones: `[pool_manager]`
    /// `fleet_budget_*`, each pool's `budget`).
    pub overrides: Vec<BudgetOverride>,
    /// The nodes held now.
    pub held: Vec<HeldView>,
}

fn view(row: &BudgetRow) -> Result<BudgetOverride, ApiError> {
    let (scope, pool) = match BudgetScope::parse(&row.scope)? {
        BudgetScope::Fleet => ("fleet", None),
        BudgetScope::Pool(p) => ("pool", Some(p)),
    };
    Ok(BudgetOverride {
        scope: scope.into(),
        pool,
        max_percent: row.max_percent,
        max_nodes: row.spec().max_nodes,
        set_by: row.set_by.clone(),
        set_at: rfc3339(row.set_at),
    })
}

#[utoipa::path(
    get, path = "/v1/remediation/budget", operation_id = "get_remediation_budget",
    responses((status = 200, body = BudgetState))
)]
#[get("/v1/remediation/budget")]
pub(super) async fn get_budget(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(budget_state(&state).await?))
}

/// The budgets operators set and the nodes held now: the REST API's
/// `GET /v1/remediation/budget` and the console's fleet page.
pub async fn budget_state(state: &AppState) -> Result<BudgetState, ApiError> {
    let store = state.store.clone();
    let rows = blocking(move || store.budgets()).await?;
    let held = state
        .links
        .held
        .all()
        .into_iter()
        .map(|(node, h)| HeldView {
            node,
            pool: h.pool,
            reason: h.reason,
            since: rfc3339(h.since),
        })
        .collect();
    Ok(BudgetState {
        overrides: rows.iter().map(view).collect::<Result<_, _>>()?,
        held,
    })
}

/// Body of `PUT /v1/remediation/budget`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBudget {
    /// The pool whose budget this is; absent: the whole fleet's.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    pub pool: Option<String>,
    /// The most nodes remediation may hold out of service at once.
    #[schema(maximum = 1_000_000)]
    pub max_nodes: u32,
    /// Percentage of the nodes, more than 0 and at most 100 (default 100: the count
    /// alone decides). The budget is the smaller of the two (at least 1 node by percentage).
    #[serde(default)]
    pub max_percent: Option<f64>,
}

fn scope_of(pool: &Option<String>) -> Result<BudgetScope, ApiError> {
    match pool {
        None => Ok(BudgetScope::Fleet),
        Some(p) => {
            validate::name(p).map_err(|e| ApiError::invalid(format!("pool {e}")))?;
            Ok(BudgetScope::Pool(p.clone()))
        }
    }
}

#[utoipa::path(
    put, path = "/v1/remediation/budget", operation_id = "set_remediation_budget",
    request_body = SetBudget,
    description = "Sets the fleet's or a pool's remediation budget at run time, over the configured one until cleared (`DELETE`); stored, so a restart keeps it. Held nodes go as the budget allows, the longest held first. Audited with the caller.",
    responses(
        (status = 200, body = BudgetOverride),
        (status = 404, description = "No such pool"),
        (status = 422, description = "`max_percent` not in (0, 100], `max_nodes` above 1000000, or a bad pool name"),
    )
)]
#[put("/v1/remediation/budget")]
pub(super) async fn set_budget(
    admin: Admin,
    state: web::Data<AppState>,
    body: Json<SetBudget>,
) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let percent = b.max_percent.unwrap_or(100.0);
    let details = json!({
        "pool": b.pool.as_deref().map(|p| clip(p, 64)),
        "max_nodes": b.max_nodes,
        "max_percent": if percent.is_finite() { json!(percent) } else { json!(null) },
    });
    let target = b
        .pool
        .as_deref()
        .map_or("fleet".to_string(), |p| format!("pool:{}", clip(p, 64)));
    let work = async {
        let scope = scope_of(&b.pool)?;
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(ApiError::invalid(format!(
                "max_percent {percent} is not more than 0 and at most 100"
            )));
        }
        if b.max_nodes > MAX_BUDGET_NODES {
            return Err(ApiError::invalid(format!(
                "max_nodes {} is above {MAX_BUDGET_NODES}",
                b.max_nodes
            )));
        }
        let spec = BudgetSpec {
            max_percent: percent,
            max_nodes: b.max_nodes,
        };
        let now = state.clock.now_ms();
        let entry = NewAudit::ok(&admin.0, "budget.set", &scope.key(), details.clone(), now);
        let (store, by) = (state.store.clone(), admin.0.clone());
        let row = blocking(move || store.set_budget(&scope, spec, &by, now, entry)).await?;
        state.links.pools.notify();
        Ok(HttpResponse::Ok().json(view(&row)?))
    };
    audited(
        &state,
        &admin.0,
        "budget.set",
        &target,
        details.clone(),
        work,
    )
    .await
}

/// Query of `DELETE /v1/remediation/budget`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ClearQuery {
    /// The pool whose budget goes back to its spec's; absent: the fleet's to the config's.
    pool: Option<String>,
}

#[utoipa::path(
    delete, path = "/v1/remediation/budget", operation_id = "clear_remediation_budget",
    params(ClearQuery),
    description = "Removes an operator's budget: the configured one applies again. Audited with the caller.",
    responses(
        (status = 204, description = "Cleared"),
        (status = 404, description = "No budget was set for it"),
        (status = 422, description = "A bad pool name"),
    )
)]
#[delete("/v1/remediation/budget")]
pub(super) async fn clear_budget(
    admin: Admin,
    state: web::Data<AppState>,
    q: web::Query<ClearQuery>,
) -> Result<HttpResponse, ApiError> {
    let pool = q.into_inner().pool;
    let target = pool
        .as_deref()
        .map_or("fleet".to_string(), |p| format!("pool:{}", clip(p, 64)));
    let work = async {
        let scope = scope_of(&pool)?;
        let key = scope.key();
        let entry = NewAudit::ok(
            &admin.0,
            "budget.clear",
            &key,
            json!({}),
            state.clock.now_ms(),
        );
        let store = state.store.clone();
        if !blocking(move || store.clear_budget(&scope, entry)).await? {
            return Err(ApiError::not_found(format!(
                "no budget was set for {key}: the configured one applies"
            )));
        }
        state.links.pools.notify();
        Ok(HttpResponse::NoContent().finish())
    };
    audited(&state, &admin.0, "budget.clear", &target, json!({}), work).await
}
