//! `/v1/nodes`: create, list, get, delete, join tokens, lifecycle steps, clearing health.
//! A node's records (events, history, commands, observation) are in `history.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::auth::{allow_node, caller, Admin, Caller};
use super::{blocking, valid_name, ApiError, AppState};
use crate::clock::rfc3339;
use crate::config::valid_base_url;
use crate::lifecycle::Step;
use crate::model::{Command, CommandKind, Connectivity, Health, Node, Source, Status};
use crate::store::rows::{NewAudit, NodeRow, NodeTokenRow};
use crate::store::NodeFilter;
use crate::token::{self, TokenKind};

/// Body of `POST /v1/nodes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNode {
    /// Unique name; the agent registers under it.
    pub name: String,
    /// Pool (default `default`).
    #[serde(default)]
    pub pool: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Agent base URL, when known before it registers.
    #[serde(default)]
    pub address: Option<String>,
}

/// Checks labels: names like Prometheus label names, values of printable text.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if labels.len() > 64 {
        return Err(ApiError::invalid("at most 64 labels"));
    }
    for (k, v) in labels {
        let b = k.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && (b[0].is_ascii_alphabetic() || b[0] == b'_')
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
            && !k.starts_with("__");
        if !ok {
            return Err(ApiError::invalid(format!(
                "label name {k:?} must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __"
            )));
        }
        if v.len() > 256 || v.chars().any(char::is_control) {
            return Err(ApiError::invalid(format!(
                "label {k}: the value must be at most 256 printable characters"
            )));
        }
    }
    Ok(())
}

/// The node as JSON, with its scrape state when it is a target.
pub fn node_json(row: &NodeRow, state: &AppState) -> Result<Node, ApiError> {
    let mut n = row.to_model()?;
    if let Some((scrape, connectivity, last_success)) = state.fleet.scrape_view(&row.id) {
        n.scrape = Some(scrape);
        n.connectivity = connectivity;
        if let Some(seen) = last_success {
            n.last_seen = Some(rfc3339(seen));
        }
    }
    Ok(n)
}

#[utoipa::path(
    post, path = "/v1/nodes", request_body = CreateNode,
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
    body: web::Json<CreateNode>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    if !valid_name(&b.name) {
        return Err(ApiError::invalid(format!(
            "name {:?} must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
            b.name
        )));
    }
    let pool = b.pool.unwrap_or_else(|| "default".into());
    if !valid_name(&pool) {
        return Err(ApiError::invalid(format!(
            "pool {pool:?} is not a valid name"
        )));
    }
    if let Some(a) = &b.address {
        if !valid_base_url(a) {
            return Err(ApiError::invalid(format!(
                "address {a:?} must be the agent's base URL, like http://10.0.0.5:9410"
            )));
        }
    }
    check_labels(&b.labels)?;
    let now = state.clock.now_ms();
    let row = NodeRow::fresh(
        token::random_id("node-")?,
        &b.name,
        &pool,
        &b.labels,
        b.address.clone(),
        Status::Pending,
        Source::Created,
        now,
    );
    let entry = NewAudit::ok(
        &admin.0,
        "node.create",
        &row.id,
        json!({"name": b.name, "pool": row.pool, "address": b.address}),
        now,
    );
    let (store, r) = (state.store.clone(), row.clone());
    blocking(move || store.create_node(&r, entry)).await?;
    Ok(HttpResponse::Created().json(node_json(&row, &state)?))
}

/// Query of `GET /v1/nodes`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this pool.
    pool: Option<String>,
    /// Only this lifecycle status.
    status: Option<String>,
    /// Only this health.
    health: Option<String>,
    /// Only this connectivity.
    connectivity: Option<String>,
    /// Page size (default 100, at most 1000).
    limit: Option<i64>,
    /// Nodes to skip.
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
    let store = state.store.clone();
    let (rows, total) = blocking(move || store.list_nodes(&filter)).await?;
    let nodes = rows
        .iter()
        .map(|r| node_json(r, &state))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(NodeList {
        nodes,
        total,
        limit,
        offset,
    }))
}

pub(super) async fn load(state: &AppState, id: &str) -> Result<NodeRow, ApiError> {
    let (store, id) = (state.store.clone(), id.to_string());
    blocking(move || store.node(&id)).await
}

#[utoipa::path(
    get, path = "/v1/nodes/{id}",
    responses((status = 200, body = Node), (status = 401), (status = 403, description = "Another node's token"), (status = 404))
)]
#[get("/v1/nodes/{id}")]
pub(super) async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = caller(&req, &state).await?;
    let row = load(&state, &id).await?;
    allow_node(&c, &row.id)?;
    Ok(HttpResponse::Ok().json(node_json(&row, &state)?))
}

#[utoipa::path(
    delete, path = "/v1/nodes/{id}",
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
    let id = load(&state, &id).await?.id;
    allow_node(&c, &id)?;
    let now = state.clock.now_ms();
    let (store, nid) = (state.store.clone(), id.clone());
    match c {
        Caller::Admin(actor) => {
            let entry = NewAudit::ok(&actor, "node.delete", &nid, json!({}), now);
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
}

/// Body of `POST /v1/nodes/{id}/token`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Lifetime, like `24h` (default `auth.join_token_ttl`).
    #[serde(default)]
    pub ttl: Option<String>,
}

/// Answer of `POST /v1/nodes/{id}/token`: shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    /// The node.
    pub node_id: String,
    /// The token; only its digest is kept.
    pub token: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
    /// Agent config that joins this node (`/etc/gpuwarden/agent.toml`).
    pub agent_config: String,
    /// A systemd unit that runs the agent with it.
    pub systemd_unit: String,
}

/// The agent config of an install snippet.
pub fn agent_config_snippet(name: &str, pool: &str, url: &str, token: &str) -> String {
    format!(
        "# gpuwarden agent config for node {name}: /etc/gpuwarden/agent.toml (mode 0600)\n\
         [node]\nid = \"{name}\"\n\
         # What the agent keeps across restarts. The node token that registration issues is\n\
         # kept here (node-token, mode 0600): the join token below works once, and every later\n\
         # start rejoins with the kept node token.\n\
         state_dir = \"/var/lib/gpuwarden-agent\"\n\n\
         [control_plane]\n\
         # Where the agent registers; it then serves /metrics for the control plane to scrape.\n\
         url = \"{url}\"\n\
         # Join token for this node only. Registration exchanges it for a node token.\n\
         token = \"{token}\"\n\
         pool = \"{pool}\"\n\
         # The URL the control plane scrapes; empty derives it from server.listen.\n\
         advertise = \"\"\n\n\
         [gpu]\nbackend = \"nvml\"\n"
    )
}

/// The systemd unit of an install snippet.
pub const SYSTEMD_UNIT: &str = "# /etc/systemd/system/gpuwarden-agent.service\n\
[Unit]\n\
Description=gpuwarden agent (GPU health and metrics)\n\
Wants=network-online.target\n\
After=network-online.target nvidia-persistenced.service\n\n\
[Service]\n\
ExecStart=/usr/local/bin/gpuwarden-agent --config /etc/gpuwarden/agent.toml\n\
# /var/lib/gpuwarden-agent (node.state_dir): the node token and the agent's other state.\n\
StateDirectory=gpuwarden-agent\n\
StateDirectoryMode=0700\n\
Restart=always\n\
RestartSec=5\n\
# 78: the control plane refused every credential (a spent join token and no kept node\n\
# token); restarting cannot help: see `journalctl -u gpuwarden-agent`, issue a new join token.\n\
RestartPreventExitStatus=78\n\
# Graceful stop deregisters the node.\n\
KillSignal=SIGTERM\n\
TimeoutStopSec=30\n\n\
[Install]\n\
WantedBy=multi-user.target\n";

#[utoipa::path(
    post, path = "/v1/nodes/{id}/token", request_body(content = TokenRequest, description = "Optional"),
    responses((status = 201, body = IssuedToken), (status = 401), (status = 404), (status = 422))
)]
#[post("/v1/nodes/{id}/token")]
pub(super) async fn issue_token(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Option<web::Json<TokenRequest>>,
) -> Result<HttpResponse, ApiError> {
    let ttl = match body.and_then(|b| b.into_inner().ttl) {
        Some(s) => humantime::parse_duration(&s)
            .map_err(|e| ApiError::invalid(format!("ttl {s:?}: {e}")))?,
        None => state.settings.join_token_ttl,
    };
    if ttl < Duration::from_secs(60) || ttl > Duration::from_secs(365 * 86_400) {
        return Err(ApiError::invalid("ttl must be between 1m and 365d"));
    }
    let row = load(&state, &id).await?;
    if row.status()? == Status::Terminated {
        return Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "conflict",
            "the node is terminated; create a new one",
        ));
    }
    let now = state.clock.now_ms();
    let expires = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let issued = token::issue(TokenKind::Node)?;
    let t = NodeTokenRow {
        digest: issued.digest.clone(),
        node_id: row.id.clone(),
        created_at: now,
        expires_at: Some(expires),
    };
    let entry = NewAudit::ok(
        &admin.0,
        "node.token",
        &row.id,
        json!({"expires_at": rfc3339(expires)}),
        now,
    );
    let store = state.store.clone();
    blocking(move || store.add_node_token(&t, entry)).await?;
    Ok(HttpResponse::Created().json(IssuedToken {
        node_id: row.id.clone(),
        agent_config: agent_config_snippet(
            &row.name,
            &row.pool,
            &state.settings.external_url,
            &issued.secret,
        ),
        token: issued.secret,
        expires_at: rfc3339(expires),
        systemd_unit: SYSTEMD_UNIT.to_string(),
    }))
}

#[utoipa::path(
    post, path = "/v1/nodes/{id}/clear-health",
    description = "An operator clears the node's health: a sticky `unhealthy` goes, and the health is recomputed from the conditions that still hold (audited).",
    responses((status = 200, body = Node), (status = 401), (status = 404))
)]
#[post("/v1/nodes/{id}/clear-health")]
pub(super) async fn clear_health(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = load(&state, &id).await?;
    let now = state.clock.now_ms();
    let who = admin.0.clone();
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
            json!({"health": {"from": before, "to": row.health, "reason": format!("cleared by {}", admin.0), "rule": null}}),
        );
    }
    Ok(HttpResponse::Ok().json(node_json(&row, &state)?))
}

/// Body of the lifecycle steps.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    /// Why (stored with the transition and the command).
    #[serde(default)]
    pub reason: Option<String>,
    /// Drain only: how long the drain may take, like `30m`.
    #[serde(default)]
    pub timeout: Option<String>,
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
    params(("action" = String, Path, description = "cordon | uncordon | drain | terminate")),
    request_body(content = StepRequest, description = "Optional"),
    responses(
        (status = 202, description = "Transition stored, command queued", body = StepResult),
        (status = 401), (status = 404),
        (status = 409, description = "The node's status does not allow it"),
    )
)]
#[post("/v1/nodes/{id}/{action}")]
pub(super) async fn step(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Option<web::Json<StepRequest>>,
) -> Result<HttpResponse, ApiError> {
    let (key, action) = path.into_inner();
    let (step, kind) = match action.as_str() {
        "cordon" => (Step::Cordon, CommandKind::Cordon),
        "uncordon" => (Step::Uncordon, CommandKind::Uncordon),
        "drain" => (Step::Drain, CommandKind::Drain),
        "terminate" => (Step::Terminate, CommandKind::Terminate),
        other => {
            return Err(ApiError::not_found(format!(
                "no action {other:?}: use cordon, uncordon, drain or terminate"
            )))
        }
    };
    let b = body.map(|b| b.into_inner()).unwrap_or_default();
    if let Some(t) = &b.timeout {
        humantime::parse_duration(t)
            .map_err(|e| ApiError::invalid(format!("timeout {t:?}: {e}")))?;
    }
    let reason = b
        .reason
        .clone()
        .unwrap_or_else(|| format!("{action} requested by an operator"));
    if reason.len() > 1024 {
        return Err(ApiError::invalid("reason is longer than 1024 bytes"));
    }
    let id = load(&state, &key).await?.id;
    let now = state.clock.now_ms();
    let cmd = super::commands::new_command(
        &id,
        kind,
        json!({"reason": reason, "timeout": b.timeout}),
        &admin.0,
        now,
    )?;
    let entry = NewAudit::ok(
        &admin.0,
        &format!("node.{action}"),
        &id,
        json!({"reason": reason, "command": cmd.id}),
        now,
    );
    let (store, nid, actor) = (state.store.clone(), id.clone(), admin.0.clone());
    let (row, cmd) =
        blocking(move || store.apply_step(&nid, step, &reason, &actor, Some(cmd), entry)).await?;
    state.fleet.sync(&row, now);
    state.links.dispatch.notify();
    let command = cmd
        .ok_or_else(|| ApiError::internal("command not stored"))?
        .to_model()?;
    Ok(HttpResponse::Accepted().json(StepResult {
        node: node_json(&row, &state)?,
        command,
    }))
}
