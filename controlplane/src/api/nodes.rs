//! `/v1/nodes`: create, list, get, delete, clearing health. Join tokens are in
//! `node_token.rs`, lifecycle steps in `steps.rs`, a node's records in `history.rs`.

use std::collections::BTreeMap;

use actix_web::web::Bytes;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::body::Json;
use super::caller::allow_node;
use super::caller::caller;
use super::caller::Admin;
use super::caller::Caller;
use super::error::ApiError;
use super::listing::{FleetView, ListingCache};
use super::state::{audited, blocking, clip, AppState};
use crate::clock::rfc3339;
use crate::model::{Connectivity, Health, HealthReason, Node, Source, Status};
use crate::store::rows::{NewAudit, NodeRow};
use crate::store::NodeFilter;
use crate::token;
use crate::validate;

/// Body of `POST /v1/nodes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNode {
    /// Unique name; the agent registers under it.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    pub name: String,
    /// Pool (default `default`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    pub pool: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Agent base URL, when known before it registers (`http://host:9410`, no
    /// credentials). A node with an address is scraped from the start; it stays `pending`
    /// until its agent registers.
    #[serde(default)]
    pub address: Option<String>,
}

/// Checks labels ([`validate::labels`]); 422 otherwise.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    validate::labels(labels).map_err(ApiError::invalid)
}

/// The node as JSON, with its scrape state when it is a target. Addresses stored before
/// credentials were refused are shown without their password.
pub fn node_json(row: &NodeRow, state: &AppState) -> Result<Node, ApiError> {
    let mut n = node_json_with(row, &FleetView::of(&state.fleet, &row.id))?;
    n.held = state.links.held.get(&row.id).map(|h| h.reason);
    Ok(n)
}

/// [`node_json`] with the scraper's view of the node already taken.
fn node_json_with(row: &NodeRow, view: &FleetView) -> Result<Node, ApiError> {
    let mut n = row.to_model()?;
    n.address = n.address.as_deref().map(validate::redact_url);
    if let Some((scrape, connectivity, last_success)) = &view.scrape {
        n.scrape = Some(scrape.clone());
        n.connectivity = *connectivity;
        if let Some(seen) = last_success {
            n.last_seen = Some(rfc3339(*seen));
        }
    }
    if let Some(gpus) = view.expected_gpus {
        n.expected_gpus = gpus;
    }
    Ok(n)
}

#[utoipa::path(
    post, path = "/v1/nodes", request_body = CreateNode,
    description = "Creates a node in `pending`. With an `address` it is scraped at once; it turns `active` when its agent registers. A refused create is audited with its reason.",
    responses(
        (status = 201, description = "Created in `pending`", body = Node),
        (status = 401, description = "No or wrong admin token"),
        (status = 409, description = "The name is taken"),
        (status = 422, description = "Invalid name, pool, address or labels"),
    )
)]
#[post("/v1/nodes")]
pub(super) async fn create(
    admin: Admin,
    state: web::Data<AppState>,
    body: Json<CreateNode>,
) -> Result<HttpResponse, ApiError> {
    let node = create_node(&state, &admin.0, body.0).await?;
    Ok(HttpResponse::Created().json(node))
}

/// Creates node `b.name` in `pending` for `actor`, audited (refusals too): 422 for an
/// invalid name, pool, address or labels, 409 for a name taken. The REST API's
/// `POST /v1/nodes` and the console's "add a node".
pub async fn create_node(state: &AppState, actor: &str, b: CreateNode) -> Result<Node, ApiError> {
    let details = json!({
        "name": clip(&b.name, 128),
        "pool": b.pool.as_deref().map(|p| clip(p, 128)),
        "address": b.address.as_deref().map(|a| clip(&validate::redact_url(a), 256)),
    });
    let target = b.name.clone();
    audited(state, actor, "node.create", &target, details, async {
        validate::name(&b.name).map_err(|e| ApiError::invalid(format!("name {e}")))?;
        let pool = b.pool.unwrap_or_else(|| "default".into());
        validate::name(&pool).map_err(|e| ApiError::invalid(format!("pool {e}")))?;
        if let Some(a) = &b.address {
            validate::base_url(a).map_err(|e| ApiError::invalid(format!("address {e}")))?;
        }
        check_labels(&b.labels)?;
        let now = state.clock.now_ms();
        let address = b.address.map(|a| a.trim_end_matches('/').to_string());
        let row = NodeRow::fresh(
            token::random_id("node-")?,
            &b.name,
            &pool,
            &b.labels,
            address.clone(),
            Status::Pending,
            Source::Created,
            now,
        );
        let entry = NewAudit::ok(
            actor,
            "node.create",
            &row.id,
            json!({"name": b.name, "pool": row.pool, "address": address}),
            now,
        );
        let (store, r) = (state.store.clone(), row.clone());
        blocking(move || store.create_node(&r, entry)).await?;
        state.fleet.sync(&row, now);
        node_json(&row, state)
    })
    .await
}

/// Query of `GET /v1/nodes`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this pool.
    pool: Option<String>,
    /// Only this lifecycle status.
    #[param(value_type = Option<Status>)]
    status: Option<String>,
    /// Only this health.
    #[param(value_type = Option<Health>)]
    health: Option<String>,
    /// Only this connectivity.
    #[param(value_type = Option<Connectivity>)]
    connectivity: Option<String>,
    /// Page size (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Nodes to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// Answer of `GET /v1/nodes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeList {
    /// This page, by name.
    pub nodes: Vec<Node>,
    /// Nodes matching the filters.
    pub total: i64,
    /// Page size.
    pub limit: i64,
    /// Skipped.
    pub offset: i64,
}

fn check<T: std::str::FromStr<Err = String>>(v: &Option<String>) -> Result<(), ApiError> {
    if let Some(s) = v {
        s.parse::<T>().map_err(ApiError::bad_request)?;
    }
    Ok(())
}

#[utoipa::path(
    get, path = "/v1/nodes", params(ListQuery),
    responses((status = 200, body = NodeList), (status = 400, description = "Bad filter"), (status = 401))
)]
#[get("/v1/nodes")]
pub(super) async fn list(
    _admin: Admin,
    state: web::Data<AppState>,
    cache: Option<web::Data<ListingCache>>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    check::<Status>(&q.status)?;
    check::<Health>(&q.health)?;
    check::<Connectivity>(&q.connectivity)?;
    let limit = q.limit.unwrap_or(100);
    let offset = q.offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) || offset < 0 {
        return Err(ApiError::bad_request(
            "limit must be 1-1000 and offset at least 0",
        ));
    }
    let filter = NodeFilter {
        pool: q.pool,
        status: q.status,
        health: q.health,
        connectivity: q.connectivity,
        offset,
        limit,
    };
    // Read the change counter before the rows: a page is tagged with what was true
    // when its reading began.
    let version = cache.as_ref().and_then(|c| c.version());
    // Holds change outside the database: their generation is part of the key.
    let key = format!(
        "{:?}|{:?}|{:?}|{:?}|{limit}|{offset}|{}",
        filter.pool,
        filter.status,
        filter.health,
        filter.connectivity,
        state.links.held.generation()
    );
    if let (Some(c), Some(v)) = (&cache, version) {
        if let Some(body) = c.get(&key, v, &state.fleet) {
            return Ok(json_body(body));
        }
    }
    let store = state.store.clone();
    let (rows, total) = blocking(move || store.list_nodes(&filter)).await?;
    let mut views = Vec::with_capacity(rows.len());
    let mut nodes = Vec::with_capacity(rows.len());
    let mut hint = 64;
    for r in &rows {
        let view = FleetView::of(&state.fleet, &r.id);
        let mut n = node_json_with(r, &view)?;
        n.held = state.links.held.get(&r.id).map(|h| h.reason);
        nodes.push(n);
        hint += 512 + r.labels.len() + 2 * r.capabilities.len();
        views.push((r.id.clone(), view));
    }
    let list = NodeList {
        nodes,
        total,
        limit,
        offset,
    };
    let body = to_body(&list, hint)?;
    if let (Some(c), Some(v)) = (&cache, version) {
        c.put(key, v, views, body.clone());
    }
    Ok(json_body(body))
}

/// `v` as JSON, written straight into a buffer of about its size (`hint`): no growing, no
/// copy after.
fn to_body<T: Serialize>(v: &T, hint: usize) -> Result<Bytes, ApiError> {
    let mut buf = Vec::with_capacity(hint);
    serde_json::to_writer(&mut buf, v).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Bytes::from(buf))
}

fn json_body(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body)
}

/// Node `id` (id or name) as stored; 404 when there is none.
pub async fn load(state: &AppState, id: &str) -> Result<NodeRow, ApiError> {
    let (store, id) = (state.store.clone(), id.to_string());
    blocking(move || store.node(&id)).await
}

#[utoipa::path(
    get, path = "/v1/nodes/{id}", operation_id = "get_node",
    params(("id" = String, Path, description = "Node id or name")),
    description = "One node. When it is `degraded` or `unhealthy`, `health_reason` says why: the rule, what matched, and since when.",
    responses((status = 200, body = Node), (status = 401), (status = 403, description = "Another node's token"), (status = 404))
)]
#[get("/v1/nodes/{id}")]
pub(super) async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    cache: Option<web::Data<ListingCache>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = caller(&req, &state).await?;
    // An admin's read is kept like a listing page (an agent's read of its own node is not).
    let cached = match (&c, &cache) {
        (Caller::Admin(_), Some(cache)) => cache.version().map(|v| (cache, v)),
        _ => None,
    };
    // Holds change outside the database: their generation is part of the key.
    let key = format!("node|{id}|{}", state.links.held.generation());
    if let Some((cache, v)) = &cached {
        if let Some(body) = cache.get(&key, *v, &state.fleet) {
            return Ok(json_body(body));
        }
    }
    let row = load(&state, &id).await?;
    allow_node(&c, &row.id)?;
    let view = FleetView::of(&state.fleet, &row.id);
    let mut n = node_json_with(&row, &view)?;
    n.held = state.links.held.get(&row.id).map(|h| h.reason);
    if matches!(n.health, Health::Degraded | Health::Unhealthy) {
        let (store, nid) = (state.store.clone(), row.id.clone());
        let last = blocking(move || store.last_health_change(&nid)).await?;
        n.health_reason = last.map(|t| HealthReason {
            rule: t.actor.strip_prefix("policy:").map(str::to_string),
            reason: t.reason,
            since: rfc3339(t.time),
            by: t.actor,
        });
    }
    let hint = 1024 + row.labels.len() + 2 * row.capabilities.len();
    let body = to_body(&n, hint)?;
    if let Some((cache, v)) = cached {
        cache.put(key, v, vec![(row.id, view)], body.clone());
    }
    Ok(json_body(body))
}

#[utoipa::path(
    delete, path = "/v1/nodes/{id}",
    params(("id" = String, Path, description = "Node id or name")),
    description = "With an admin token: delete the node and its records (audited). With the node's own token: the agent is shutting down; stop scraping it until it registers again.",
    responses((status = 204), (status = 401), (status = 403), (status = 404))
)]
#[delete("/v1/nodes/{id}")]
pub(super) async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = caller(&req, &state).await?;
    let key = id.into_inner();
    let work = async {
        let id = load(&state, &key).await?.id;
        allow_node(&c, &id)?;
        let now = state.clock.now_ms();
        let (store, nid) = (state.store.clone(), id.clone());
        match &c {
            Caller::Admin(actor) => {
                let entry = NewAudit::ok(actor, "node.delete", &nid, json!({}), now);
                blocking(move || store.delete_node(&nid, entry)).await?;
                state.fleet.remove(&id);
            }
            Caller::Node(_) => {
                let row = blocking(move || {
                    store.deregister(&nid, now)?;
                    store.node(&nid)
                })
                .await?;
                state.fleet.sync(&row, now);
            }
        }
        Ok(HttpResponse::NoContent().finish())
    };
    match &c {
        Caller::Admin(actor) => audited(&state, actor, "node.delete", &key, json!({}), work).await,
        Caller::Node(_) => work.await,
    }
}
