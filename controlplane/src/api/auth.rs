//! Bearer tokens: admin tokens for the admin API, node tokens for an agent's own node,
//! bootstrap tokens for self-registration. Only digests are held; each comparison is
//! constant-time.

use std::sync::RwLock;

use actix_web::http::StatusCode;
use actix_web::HttpRequest;

use super::{blocking, ApiError, AppState};
use crate::token;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An operator; the string names the token (`admin:<digest prefix>`).
    Admin(String),
    /// An agent acting for this node id.
    Node(String),
}

/// The token digests the control plane accepts.
#[derive(Debug, Default)]
pub struct Auth {
    admin: RwLock<Vec<String>>,
    bootstrap: Vec<String>,
}

/// The stored form of a configured token: `sha256:<hex>` is taken as a digest already.
pub fn configured_digest(t: &str) -> String {
    match t.strip_prefix("sha256:") {
        Some(d) => d.to_ascii_lowercase(),
        None => token::digest(t),
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The bearer token of a request, or 401.
pub fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let h = req
        .headers()
        .get("authorization")
        .ok_or_else(|| unauthorized("missing Authorization: Bearer <token>"))?;
    let v = h
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not text"))?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .ok_or_else(|| unauthorized("the Authorization header must be 'Bearer <token>'"))?
        .trim();
    if t.is_empty() {
        return Err(unauthorized("empty bearer token"));
    }
    Ok(t)
}

fn any_match(presented: &str, digests: &[String]) -> Option<String> {
    // Compare against every digest, so the time taken does not depend on which matched.
    let mut found = None;
    for d in digests {
        if token::matches_digest(presented, d) {
            found = Some(d.clone());
        }
    }
    found
}

impl Auth {
    /// Accepts these admin and bootstrap token digests.
    pub fn new(admin: Vec<String>, bootstrap: Vec<String>) -> Self {
        Self {
            admin: RwLock::new(admin),
            bootstrap,
        }
    }

    /// Accepts one more admin token digest.
    pub fn add_admin(&self, digest: String) {
        self.admin
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(digest);
    }

    /// Whether self-registration is possible.
    pub fn bootstrap_enabled(&self) -> bool {
        !self.bootstrap.is_empty()
    }

    /// The admin actor for this token, or `None`.
    pub fn admin_actor(&self, presented: &str) -> Option<String> {
        let admin = self.admin.read().unwrap_or_else(|p| p.into_inner());
        any_match(presented, &admin).map(|d| format!("admin:{}", &d[..8.min(d.len())]))
    }

    /// Whether this is a bootstrap token.
    pub fn is_bootstrap(&self, presented: &str) -> bool {
        any_match(presented, &self.bootstrap).is_some()
    }

    /// The admin making the request, or 401.
    pub fn admin(&self, req: &HttpRequest) -> Result<String, ApiError> {
        let t = bearer(req)?;
        self.admin_actor(t)
            .ok_or_else(|| unauthorized("invalid admin token"))
    }
}

/// The caller of an endpoint that admins and the node's own agent may use: an admin token,
/// or a node token (looked up in the store). 401 for neither.
pub async fn caller(req: &HttpRequest, state: &AppState) -> Result<Caller, ApiError> {
    let t = bearer(req)?.to_string();
    if let Some(actor) = state.auth.admin_actor(&t) {
        return Ok(Caller::Admin(actor));
    }
    let store = state.store.clone();
    let now = state.clock.now_ms();
    let digest = token::digest(&t);
    match blocking(move || store.node_for_token(&digest, now)).await? {
        Some(node) => Ok(Caller::Node(node)),
        None => Err(unauthorized("invalid or expired token")),
    }
}

/// 403 unless the caller is an admin or the agent of node `id`.
pub fn allow_node(caller: &Caller, id: &str) -> Result<(), ApiError> {
    match caller {
        Caller::Admin(_) => Ok(()),
        Caller::Node(n) if n == id => Ok(()),
        Caller::Node(n) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the token of node {n} cannot act for node {id}"),
        )),
    }
}

/// Adds the bearer scheme to the OpenAPI document.
#[derive(Debug)]
pub struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_tokens_may_be_given_as_digests() {
        let a = Auth::new(
            vec![
                configured_digest("operator-token-0001"),
                configured_digest(&format!("sha256:{}", token::digest("second-token-00002"))),
            ],
            vec![],
        );
        assert!(a.admin_actor("operator-token-0001").is_some());
        assert!(a.admin_actor("second-token-00002").is_some());
        assert!(a.admin_actor("operator-token-0002").is_none());
        assert!(!a.bootstrap_enabled());
    }
}

/// Extractor: the request carries an admin token. It runs before the body is read, so an
/// unauthenticated request is refused with 401 whatever its body.
#[derive(Debug, Clone)]
pub struct Admin(pub String);

impl actix_web::FromRequest for Admin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let r = match req.app_data::<actix_web::web::Data<AppState>>() {
            Some(state) => state.auth.admin(req).map(Admin),
            None => Err(ApiError::internal("application state missing")),
        };
        std::future::ready(r)
    }
}
