//! `POST /v1/policies/validate`: checks a policy document without loading it.

use actix_web::{post, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Admin;
use super::ApiError;
use crate::policy::{Policy, PolicyError};

/// Answer of `POST /v1/policies/validate` for a valid document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Valid {
    /// Always true.
    pub valid: bool,
    /// How many rules it has.
    pub rules: usize,
}

/// Answer for an invalid document: every problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct Invalid {
    /// Always false.
    pub valid: bool,
    /// Each problem with its rule, line and column.
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<PolicyError>,
}

#[utoipa::path(
    post, path = "/v1/policies/validate",
    request_body(content = String, content_type = "application/toml", description = "The policy document (TOML)"),
    responses(
        (status = 200, body = Valid),
        (status = 422, description = "Every problem, with rule, line and column", body = Invalid),
        (status = 400, description = "The body is not UTF-8"),
        (status = 401),
    )
)]
#[post("/v1/policies/validate")]
pub(super) async fn validate(_admin: Admin, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request(format!("the policy is not UTF-8: {e}")))?
        .to_string();
    // Compiling CEL takes a fraction of a millisecond per rule: off the workers all the same.
    let outcome = web::block(move || Policy::parse(&text).map(|p| p.rules().len())).await?;
    Ok(match outcome {
        Ok(rules) => HttpResponse::Ok().json(Valid { valid: true, rules }),
        Err(errors) => HttpResponse::UnprocessableEntity().json(Invalid {
            valid: false,
            errors,
        }),
    })
}
