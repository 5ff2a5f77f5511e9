//! The REST admin API (`/v1`), the agents' registration endpoint, Prometheus service
//! discovery, and the control plane's own `/metrics`, `/healthz`, `/readyz`.
//!
//! Every error is JSON `{"error":{"code","message"}}` with its status, including those of
//! actix's extractors (bad JSON, bad query) and unknown routes. Database work runs through
//! `web::block`, never on actix's workers.

mod auth;
mod commands;
mod expected;
mod history;
mod join;
mod meta;
mod nodes;
mod policies;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::OpenApi;

use auth::BearerScheme;
pub use auth::{configured_digest as auth_digest, Auth, Caller};

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

/// Whether `s` is a valid node or pool name: 1-63 characters of letters, digits, `.`, `_`,
/// `-`, starting with a letter or digit.
pub fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

/// The OpenAPI document, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(title = "gpuwarden control plane", description = "REST admin API of gpuwarden."),
    paths(
        nodes::create,
        nodes::list,
        nodes::get,
        nodes::delete,
        nodes::issue_token,
        nodes::clear_health,
        expected::set,
        nodes::step,
        commands::diagnose,
        commands::get,
        history::events,
        history::transitions,
        history::commands,
        history::observation,
        join::register,
        meta::healthz,
        meta::readyz,
        meta::metrics,
        meta::service_discovery,
        meta::audit,
        meta::openapi,
        policies::validate,
        policies::get,
        policies::put,
        policies::simulate,
    ),
    components(schemas(
        crate::model::Node,
        crate::model::Event,
        crate::model::Transition,
        crate::model::Command,
        crate::model::AuditEntry,
        crate::model::Capabilities,
        crate::model::GpuInfo,
        crate::model::ScrapeInfo,
        gpuwarden_wire::join::RegisterRequest,
        expected::ExpectedGpus,
    )),
    modifiers(&BearerScheme),
    security(("bearer" = []))
)]
pub struct ApiDoc;

fn json_error(message: String, status: StatusCode) -> actix_web::Error {
    ApiError::new(
        status,
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_request"
        },
        message,
    )
    .into()
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(1 << 20)
            .content_type_required(false)
            .error_handler(|e, _| {
                let status = match &e {
                    actix_web::error::JsonPayloadError::Overflow { .. }
                    | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                        StatusCode::PAYLOAD_TOO_LARGE
                    }
                    _ => StatusCode::BAD_REQUEST,
                };
                json_error(format!("request body: {e}"), status)
            }),
    )
    .app_data(
        web::QueryConfig::default().error_handler(|e, _| {
            json_error(format!("query string: {e}"), StatusCode::BAD_REQUEST)
        }),
    )
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
    .service(nodes::create)
    .service(nodes::list)
    .service(nodes::get)
    .service(nodes::delete)
    .service(nodes::issue_token)
    .service(nodes::clear_health)
    .service(expected::set)
    .service(commands::diagnose)
    .service(commands::get)
    .service(nodes::step)
    .service(history::events)
    .service(history::transitions)
    .service(history::commands)
    .service(history::observation)
    .service(policies::validate)
    .service(policies::get)
    .service(policies::put)
    .service(policies::simulate)
    .default_service(web::to(|req: actix_web::HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::not_found(format!(
            "no route for {} {}",
            req.method(),
            req.path()
        )))
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_like() {
        for ok in ["gpu-node-01", "a", "n1.rack2", "H100_box"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", "a b", "x/y", &"a".repeat(64), "ümlaut"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
