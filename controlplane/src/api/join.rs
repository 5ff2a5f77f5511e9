//! `POST /v1/nodes/register`: an agent joins, with a bootstrap token (any name) or the join
//! token of a pre-created node (that node only). Idempotent by name for a node's own
//! credentials (its join or node token). The bootstrap token creates nodes but does not take
//! over an existing one that is in use or was created by an operator (409; see
//! `store/nodes/bootstrap.rs`). The answer carries a fresh node token; older ones stop working.

use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::bearer;
use super::body::Json;
use super::error::ApiError;
use super::nodes::{check_labels, node_json};
use super::state::{blocking, clip, AppState};
use crate::model::Node;
use crate::store::Registration;
use crate::token::{self, TokenKind};
use crate::validate;
pub use gpuwarden_wire::join::RegisterRequest;

/// Most GPUs a node may have; their indexes are below it.
pub const MAX_GPUS: u32 = 1024;

/// Most memory a GPU may report (1 PiB): more is a broken agent, and would not fit the
/// signed 64-bit integers of the database and the policies.
pub const MAX_GPU_MEMORY: u64 = 1 << 50;

/// Answer of `POST /v1/nodes/register`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct RegisterResponse {
    /// The node's id.
    pub node_id: String,
    /// The node's token: keep it; it authenticates this agent as this node.
    pub node_token: String,
    /// How often the control plane scrapes the agent.
    pub scrape_interval_seconds: f64,
    /// How often the agent should check that the control plane still knows it.
    pub check_interval_seconds: f64,
    /// The node.
    pub node: Node,
}

#[utoipa::path(
    post, path = "/v1/nodes/register", request_body = RegisterRequest,
    responses(
        (status = 200, body = RegisterResponse),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "No bootstrap token, and no valid join token"),
        (status = 403, description = "A join token of another node"),
        (status = 409, description = "The node was terminated, or the bootstrap token names a node created by an operator or in use"),
        (status = 422, description = "Invalid name, address or labels"),
    )
)]
#[post("/v1/nodes/register")]
pub(super) async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let presented = bearer(&req)?.to_string();
    let b = body.0;
    let now = state.clock.now_ms();
    let bootstrap = state.auth.is_bootstrap(&presented);
    if !bootstrap {
        // A join (or earlier node) token: it may register its own node only.
        let (store, d) = (state.store.clone(), token::digest(&presented));
        let node = blocking(move || store.node_for_token(&d, now)).await?;
        let Some(node) = node else {
            let hint = if state.auth.bootstrap_enabled() {
                "invalid bootstrap or join token"
            } else {
                "invalid join token (self-registration is off: no bootstrap token is configured)"
            };
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                hint,
            ));
        };
        let (store, n) = (state.store.clone(), node.clone());
        let row = blocking(move || store.node(&n)).await?;
        if row.name != b.name {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this token joins node {:?}, not {:?}",
                    row.name,
                    clip(&b.name, 64)
                ),
            ));
        }
    }
    validate::name(&b.name).map_err(|e| ApiError::invalid(format!("name {e}")))?;
    validate::base_url(&b.address).map_err(|e| {
        ApiError::invalid(format!(
            "address {e} (the agent's base URL, like http://10.0.0.5:9410)"
        ))
    })?;
    if let Some(pool) = &b.pool {
        validate::name(pool).map_err(|e| ApiError::invalid(format!("pool {e}")))?;
    }
    check_labels(&b.labels)?;
    if b.capabilities.gpus.len() > MAX_GPUS as usize {
        return Err(ApiError::invalid("at most 1024 GPUs per node"));
    }
    for g in &b.capabilities.gpus {
        if g.index >= MAX_GPUS {
            return Err(ApiError::invalid(format!(
                "GPU index {} is not below {MAX_GPUS}",
                g.index
            )));
        }
        if g.memory_bytes > MAX_GPU_MEMORY {
            return Err(ApiError::invalid(format!(
                "GPU {}: memory_bytes {} is more than 1 PiB",
                g.index, g.memory_bytes
            )));
        }
    }
    let issued = token::issue(TokenKind::Node)?;
    let ttl = state.settings.node_token_ttl;
    let reg = Registration {
        new_id: token::random_id("node-")?,
        name: b.name.clone(),
        pool: b.pool.clone(),
        labels: b.labels.clone(),
        actor: if bootstrap { "bootstrap" } else { "join-token" }.into(),
        bootstrap,
        address: b.address.trim_end_matches('/').to_string(),
        capabilities: serde_json::to_string(&b.capabilities).unwrap_or_else(|_| "{}".into()),
        token_digest: issued.digest.clone(),
        token_expires: (!ttl.is_zero())
            .then(|| now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)),
        now,
    };
    let store = state.store.clone();
    let done = blocking(move || store.register(&reg)).await?;
    state.fleet.sync(&done.node, now);
    state
        .fleet
        .set_expected_gpus(&done.node.id, done.expected_gpus);
    tracing::info!(node = %done.node.id, name = %done.node.name, created = done.created, address = %b.address, "agent registered");
    let interval = state.settings.scrape_interval.as_secs_f64();
    Ok(HttpResponse::Ok().json(RegisterResponse {
        node_id: done.node.id.clone(),
        node_token: issued.secret,
        scrape_interval_seconds: interval,
        check_interval_seconds: (interval * 4.0).max(5.0),
        node: node_json(&done.node, &state)?,
    }))
}
