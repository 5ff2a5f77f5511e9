//! The REST admin API (`/v1`), the agents' registration endpoint, Prometheus service
//! discovery, and the control plane's own `/metrics`, `/healthz`, `/readyz`.
//!
//! Every error is JSON `{"error":{"code","message"}}` with its status, including bad bodies
//! ([`body`]: one extractor for every endpoint), bad queries and paths, unknown routes (404)
//! and known paths asked with another method (405). Refused admin actions are audited
//! (`audited`). Database work runs through `web::block`, never on actix's workers.

mod auth;
pub mod body;
mod commands;
mod doc;
mod expected;
mod history;
mod join;
mod meta;
mod node_token;
mod nodes;
mod notify;
mod policies;
mod steps;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde::Serialize;

pub use auth::{configured_digest as auth_digest, Auth, Caller};
pub use doc::{document, ApiDoc};

use crate::clock::SharedClock;
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Settings the handlers need.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// URL agents use to reach the control plane (install snippets).
    pub external_url: String,
    /// Scrape interval, told to agents at registration.
    pub scrape_interval: Duration,
    /// Lifetime of join tokens.
    pub join_token_ttl: Duration,
    /// Lifetime of node tokens issued at registration (zero: none).
    pub node_token_ttl: Duration,
}

/// What every handler shares.
pub struct AppState {
    /// The database.
    pub store: Arc<Store>,
    /// The scraper's targets.
    pub fleet: Arc<Fleet>,
    /// Time.
    pub clock: SharedClock,
    /// Own metrics.
    pub metrics: Metrics,
    /// Token checks.
    pub auth: Auth,
    /// The running health policy.
    pub policy: crate::policy::SharedPolicy,
    /// Where `PUT /v1/policies` keeps the new policy (empty: memory only).
    pub policy_file: std::path::PathBuf,
    /// Settings.
    pub settings: ApiSettings,
    /// The dispatcher, remediation and webhooks.
    pub links: crate::wake::Links,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// An API error: status, stable code, message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable, machine-readable code.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// 422 `invalid`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}
#[derive(Serialize)]
struct ErrorInner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody {
            error: ErrorInner {
                code: self.code,
                message: &self.message,
            },
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::not_found(format!("{m} not found")),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::Pool(e) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("database unavailable: {e}"),
                )
            }
            other => {
                tracing::error!(error = %other, "database error");
                ApiError::internal(other.to_string())
            }
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(_: actix_web::error::BlockingError) -> Self {
        ApiError::internal("the blocking thread pool is gone (shutting down)")
    }
}

impl From<crate::token::RandomError> for ApiError {
    fn from(e: crate::token::RandomError) -> Self {
        ApiError::internal(e.to_string())
    }
}

/// Runs database work off the actix workers.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    Ok(web::block(f).await??)
}

/// Whether `s` is a valid node or pool name ([`crate::validate::name`]).
pub fn valid_name(s: &str) -> bool {
    crate::validate::name(s).is_ok()
}

fn json_error(message: String, status: StatusCode) -> actix_web::Error {
    ApiError::new(status, "bad_request", message).into()
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Bodies are read by `body::{Json, OptJson, Text}` under this limit.
    cfg.app_data(web::PayloadConfig::new(body::BODY_LIMIT))
        .app_data(web::QueryConfig::default().error_handler(|e, _| {
            json_error(format!("query string: {e}"), StatusCode::BAD_REQUEST)
        }))
        .app_data(
            web::PathConfig::default()
                .error_handler(|e, _| json_error(format!("path: {e}"), StatusCode::BAD_REQUEST)),
        )
        .service(meta::healthz)
        .service(meta::readyz)
        .service(meta::metrics)
        .service(meta::openapi)
        .service(meta::service_discovery)
        .service(meta::audit)
        .service(join::register)
        .service(notify::notify)
        .service(nodes::create)
        .service(nodes::list)
        .service(nodes::get)
        .service(nodes::delete)
        .service(node_token::issue_token)
        .service(steps::clear_health)
        .service(expected::set)
        .service(commands::diagnose)
        .service(commands::get)
        .service(steps::step)
        .service(history::events)
        .service(history::transitions)
        .service(history::commands)
        .service(history::observation)
        .service(policies::validate)
        .service(policies::get)
        .service(policies::put)
        .service(policies::simulate)
        .default_service(web::to(|req: actix_web::HttpRequest| async move {
            unrouted(&req)
        }));
}

/// At most `max` characters of `s` (audit details keep what was asked, bounded).
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Runs an admin action and audits it when it is refused: the entry's result is
/// `refused (CODE): MESSAGE`, its details what was asked. Successful actions audit
/// themselves, in the transaction that makes the change. A failure to write the refusal
/// is logged; the caller gets the refusal either way.
pub(crate) async fn audited<T>(
    state: &AppState,
    actor: &str,
    action: &str,
    target: &str,
    details: serde_json::Value,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let e = match work.await {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let entry = crate::store::rows::NewAudit {
        result: clip(&format!("refused ({}): {}", e.code, e.message), 1024),
        ..crate::store::rows::NewAudit::ok(
            actor,
            action,
            &clip(target, 128),
            details,
            state.clock.now_ms(),
        )
    };
    let store = state.store.clone();
    if let Err(w) = blocking(move || store.audit(entry)).await {
        tracing::warn!(%action, error = %w.message, "auditing a refused action failed");
    }
    Err(e)
}

/// A request no route took: 405 with `Allow` when the path is known (another method), else
/// 404; JSON errors both.
fn unrouted(req: &actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    let Some(allowed) = doc::methods_for(req.path()) else {
        return Err(ApiError::not_found(format!(
            "no route for {} {}",
            req.method(),
            req.path()
        )));
    };
    let allow = allowed.join(", ");
    let mut resp = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} {}: use {allow}", req.method(), req.path()),
    )
    .error_response();
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&allow) {
        resp.headers_mut().insert(actix_web::http::header::ALLOW, v);
    }
    Ok(resp)
}
