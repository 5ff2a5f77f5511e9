//! A pool body's checks: its shape (400 naming the field) and its rules, the spec's and each
//! provider's params (422 `invalid_pool` with every problem).

use actix_web::http::StatusCode;
use serde_json::Value;

use crate::api::error::{ApiError, FieldError};
use crate::model::pool::PoolSpec;
use crate::pool::Pool;

/// A pool body's shape: the spec, or 400 `bad_request` naming the field (`autoscaler.type:
/// unknown variant …`) — a wrong type, an unknown field, a missing required field, like
/// every other body of the API. Nothing is written (not even an audit entry).
pub fn pool_shape(body: Value) -> Result<PoolSpec, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad_request(format!("pool body: {inner}"))
        } else {
            ApiError::bad_request(format!("pool body: {path}: {inner}"))
        }
    })
}

/// Every rule of a pool (`Pool::build`) at once: `Ok`, or 422 `invalid_pool` with one
/// `details` entry per problem.
pub fn pool_rules(spec: &PoolSpec) -> Result<(), ApiError> {
    let mut details: Vec<FieldError> = match Pool::build(spec.clone()) {
        Ok(_) => Vec::new(),
        Err(problems) => problems
            .into_iter()
            .map(|p| FieldError {
                field: p.field,
                message: p.message,
            })
            .collect(),
    };
    // Each provider's params, as the provider reads them (required, unknown and
    // out-of-range params; an API key's variable that is not set): built, not started. An
    // agent binary that is not named is the pool manager's to find when it provisions (a
    // pool may be declared before the binary is installed); one that is named is checked.
    let mut env = crate::pool::provider::ProviderEnv::new("http://127.0.0.1", std::env::temp_dir());
    env.agent_binary = std::env::current_exe().ok();
    for (i, p) in spec.provider_list().iter().enumerate() {
        if !crate::pool::provider::KINDS.contains(&p.kind.as_str()) {
            continue; // already reported by the spec's rules
        }
        if let Err(problems) = crate::pool::provider::build(&p.kind, &p.params, &env) {
            details.extend(problems.into_iter().map(|message| FieldError {
                field: format!("providers[{i}].params"),
                message,
            }));
        }
    }
    if details.is_empty() {
        return Ok(());
    }
    let n = details.len();
    let first = details
        .first()
        .map(|d| format!(": {}: {}", d.field, d.message))
        .unwrap_or_default();
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_pool",
        format!(
            "the pool is invalid ({n} problem{}){first}",
            if n == 1 { "" } else { "s" }
        ),
    )
    .with_details(details))
}
