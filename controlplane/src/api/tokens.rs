//! Tokens created through the API: `POST /v1/tokens` (`{"name","role"}` → the secret, shown
//! once), `GET /v1/tokens`, `DELETE /v1/tokens/{id}`. An `admin` token can do what a
//! configured admin token can; a `viewer` token can only read (`GET`). Only the digest is
//! stored; each creation and revocation is audited with its caller. Admins only (a viewer
//! cannot list tokens either).

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::auth::is_viewer;
use super::body::Json;
use super::caller::Admin;
use super::error::ApiError;
use super::state::{audited, blocking, clip, AppState};
use crate::clock::rfc3339;
use crate::store::rows::NewAudit;
use crate::store::ApiTokenRow;
use crate::token::{self, TokenKind};
use crate::validate;

/// Most tokens created through the API.
pub const MAX_TOKENS: usize = 1000;

/// Body of `POST /v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A name for it (who or what holds it), like a node name.
    pub name: String,
    /// `admin` (can act) or `viewer` (can only read).
    pub role: String,
}

/// Answer of `POST /v1/tokens`: the secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// Its id, for `DELETE /v1/tokens/{id}`.
    pub id: String,
    /// The bearer token (`gwa_…` for an admin, `gwv_…` for a viewer). Not stored: keep it.
    pub token: String,
    /// Its name.
    pub name: String,
    /// `admin` or `viewer`.
    pub role: String,
}

/// A token as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `admin` or `viewer`.
    pub role: String,
    /// Who created it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
}

/// `GET /v1/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Oldest first.
    pub tokens: Vec<TokenView>,
}

fn admins_only(actor: &str) -> Result<(), ApiError> {
    if is_viewer(actor) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "tokens are for admins only",
        ));
    }
    Ok(())
}

#[utoipa::path(
    post, path = "/v1/tokens", operation_id = "create_token",
    request_body = NewToken,
    description = "Creates an API token: `admin` can act, `viewer` can only read (GET). The secret is in this answer only; its SHA-256 digest is stored. Audited with the caller.",
    responses(
        (status = 201, body = CreatedToken),
        (status = 409, description = "A token of that name exists, or the most tokens (1000) are there"),
        (status = 422, description = "A bad name or role"),
    )
)]
#[post("/v1/tokens")]
pub(super) async fn create(
    admin: Admin,
    state: web::Data<AppState>,
    body: Json<NewToken>,
) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let details = json!({"name": clip(&b.name, 64), "role": clip(&b.role, 16)});
    let target = format!("token:{}", clip(&b.name, 64));
    let work = async {
        validate::name(&b.name).map_err(|e| ApiError::invalid(format!("name {e}")))?;
        let kind = match b.role.as_str() {
            "admin" => TokenKind::Admin,
            "viewer" => TokenKind::Viewer,
            r => {
                return Err(ApiError::invalid(format!(
                    "role {:?} is not admin or viewer",
                    clip(r, 16)
                )))
            }
        };
        let issued = token::issue(kind).map_err(|e| ApiError::internal(e.to_string()))?;
        let id = token::random_id("tok_").map_err(|e| ApiError::internal(e.to_string()))?;
        let now = state.clock.now_ms();
        let row = ApiTokenRow {
            id: id.clone(),
            name: b.name.clone(),
            role: b.role.clone(),
            digest: issued.digest.clone(),
            created_by: admin.0.clone(),
            created_at: now,
        };
        let entry = NewAudit::ok(
            &admin.0,
            "token.create",
            &format!("token:{}", b.name),
            json!({"id": id, "role": b.role}),
            now,
        );
        let store = state.store.clone();
        let stored = row.clone();
        // The name's uniqueness and the cap are checked where the row is inserted: 409.
        blocking(move || store.create_api_token(&stored, entry, MAX_TOKENS)).await?;
        state
            .auth
            .add_api_token(&row.id, &row.name, &row.role, &row.digest);
        Ok(HttpResponse::Created().json(CreatedToken {
            id,
            token: issued.secret,
            name: row.name,
            role: row.role,
        }))
    };
    audited(&state, &admin.0, "token.create", &target, details, work).await
}

#[utoipa::path(
    get, path = "/v1/tokens", operation_id = "list_tokens",
    description = "Every API token (never a secret), oldest first. Admins only.",
    responses((status = 200, body = TokenList), (status = 403, description = "A viewer token"))
)]
#[get("/v1/tokens")]
pub(super) async fn list(
    admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admins_only(&admin.0)?;
    let store = state.store.clone();
    let rows = blocking(move || store.api_tokens()).await?;
    let tokens = rows
        .into_iter()
        .map(|r| TokenView {
            id: r.id,
            name: r.name,
            role: r.role,
            created_by: r.created_by,
            created_at: rfc3339(r.created_at),
        })
        .collect();
    Ok(HttpResponse::Ok().json(TokenList { tokens }))
}

#[utoipa::path(
    delete, path = "/v1/tokens/{id}", operation_id = "revoke_token",
    params(("id" = String, Path, description = "The token's id (`tok_…`)")),
    description = "Revokes an API token at once. Audited with the caller.",
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such token"))
)]
#[delete("/v1/tokens/{id}")]
pub(super) async fn revoke(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let target = format!("token-id:{}", clip(&id, 64));
    let work = async {
        let entry = NewAudit::ok(
            &admin.0,
            "token.revoke",
            &format!("token-id:{id}"),
            json!({}),
            state.clock.now_ms(),
        );
        let store = state.store.clone();
        let key = id.clone();
        if !blocking(move || store.revoke_api_token(&key, entry)).await? {
            return Err(ApiError::not_found(format!("no token {}", clip(&id, 64))));
        }
        state.auth.remove_api_token(&id);
        Ok(HttpResponse::NoContent().finish())
    };
    audited(&state, &admin.0, "token.revoke", &target, json!({}), work).await
}
