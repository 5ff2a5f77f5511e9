//! The REST admin API (`/v1`), the agents' registration endpoint, Prometheus service
//! discovery, and the control plane's own `/metrics`, `/healthz`, `/readyz`.
//!
//! Every error is JSON `{"error":{"code","message"}}` with its status, including bad bodies
//! ([`body`]: one extractor for every endpoint), bad queries and paths, unknown routes (404)
//! and known paths asked with another method (405). Refused admin actions are audited
//! (`audited`). Database work runs through `web::block`, never on actix's workers; the one
//! exception is the listing cache's change check (`changes`: `PRAGMA data_version` on a
//! connection of its own that never waits for a lock).

mod auth;
pub mod body;
mod caller;
mod changes;
mod commands;
mod doc;
mod error;
mod expected;
mod history;
mod instances;
mod join;
mod listing;
mod meta;
mod node_token;
mod nodes;
mod notify;
pub mod plugins;
mod policies;
pub mod pools;
mod remedy;
mod state;
mod steps;
mod tokens;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};

use error::json_error;

pub use auth::{configured_digest as auth_digest, Auth, Role};
pub use caller::Caller;
// What the web console (`crate::console`) does through the same code as the REST API.
pub use changes::{Changes, ChangesError};
pub use commands::{diagnose_node, DiagnoseRequest};
pub use doc::{document, ApiDoc};
pub use error::ApiError;
pub use listing::{FleetView, ListingCache, DEFAULT_MAX_BYTES as LISTING_CACHE_BYTES};
pub use node_token::{issue_join_token, join_ttl, IssuedToken, TokenRequest};
pub use nodes::{create_node, load as load_node, node_json, CreateNode};
pub use policies::{policy_view, simulate_policy, PolicyView, SimulateRequest};
pub use pools::pool_detail;
pub use remedy::{budget_state, BudgetState};
pub use state::audited;
pub use state::{blocking, ApiSettings, AppState};
pub use steps::{apply_step, clear_node_health, StepRequest, StepResult};

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
        .service(doc::openapi_json)
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
        .service(remedy::release)
        .service(plugins::sync::sync)
        .service(steps::step)
        .service(history::events)
        .service(history::transitions)
        .service(history::commands)
        .service(history::observation)
        .service(policies::validate)
        .service(policies::get)
        .service(policies::put)
        .service(policies::simulate)
        .service(pools::list)
        .service(pools::create)
        .service(pools::get)
        .service(pools::update)
        .service(pools::delete)
        .service(pools::scale)
        .service(pools::demand)
        .service(instances::list)
        .service(instances::get)
        .service(remedy::get_budget)
        .service(remedy::set_budget)
        .service(remedy::clear_budget)
        .service(tokens::create)
        .service(tokens::list)
        .service(tokens::revoke)
        .service(plugins::drift::drift_status)
        .service(plugins::push)
        .service(plugins::list)
        .service(plugins::remove)
        .service(plugins::blobs::blob)
        .service(plugins::drift::get_pool)
        .service(plugins::set_pool)
        .service(plugins::assign)
        .service(plugins::unassign)
        .default_service(web::to(|req: actix_web::HttpRequest| async move {
            unrouted(&req)
        }));
}

/// A request no route took: 405 with `Allow` when the path is known (another method), else
/// 404; JSON errors both.
fn unrouted(req: &actix_web::HttpRequest) -> Result<HttpResponse, error::ApiError> {
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
