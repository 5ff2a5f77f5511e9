//! A pool body's checks: its shape (400 naming the field) and its rules, the spec's and each
//! provider's params (422 `invalid_pool` with every problem).

use actix_web::http::StatusCode;
use serde_json::Value;

use crate::api::error::{ApiError, FieldError};
use crate::model::pool::PoolSpec;

/// A pool body's shape: the spec, or 400 `bad_request` naming the field (`autoscaler.type:
/// unknown variant …`) — a wrong type, an unknown field, a missing required field, like
/// every other body of the API. Nothing is written (not even an audit entry).
pub fn pool_shape(body: Value) -> Result<PoolSpec, ApiError> {
    // An error inside the (tagged) autoscaler is found again with its whole path.
    let inner = body
        .get("autoscaler")
        .and_then(|a| crate::model::pool::autoscaler_error(a, "autoscaler"));
    serde_path_to_error::deserialize(body).map_err(|e| {
        if let Some(located) = inner {
            return ApiError::bad_request(format!("pool body: {located}"));
        }
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad_request(format!("pool body: {inner}"))
        } else {
            ApiError::bad_request(format!("pool body: {path}: {inner}"))
        }
    })
}

/// Every rule of a pool (`crate::pool::rules::problems`) at once: `Ok`, or 422 `invalid_pool` with one
/// `details` entry per problem.
pub fn pool_rules(spec: &PoolSpec) -> Result<(), ApiError> {
    let details: Vec<FieldError> = crate::pool::rules::problems(spec)
        .into_iter()
        .map(|p| FieldError {
            field: p.field,
            message: p.message,
        })
        .collect();
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
