//! Who is calling an endpoint: the [`Admin`] extractor for admin-only endpoints, and
//! [`caller`] for endpoints that admins and a node's own agent (node token) may use.

use actix_web::http::StatusCode;
use actix_web::HttpRequest;

use super::auth::{bearer, unauthorized};
use super::error::ApiError;
use super::state::{blocking, AppState};
use crate::token;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An operator; the string names the token (`admin:<digest prefix>`).
    Admin(String),
    /// An agent acting for this node id.
    Node(String),
}

/// The caller of an endpoint that admins and the node's own agent may use: an admin token,
/// or a node token (looked up in the store). 401 for neither.
pub async fn caller(req: &HttpRequest, state: &AppState) -> Result<Caller, ApiError> {
    let t = bearer(req)?.to_string();
    // An admin, or a viewer token on a read (a viewer's action is 403 here too).
    match state.auth.admin(req) {
        Ok(actor) => return Ok(Caller::Admin(actor)),
        Err(e) if e.status == StatusCode::FORBIDDEN => return Err(e),
        Err(_) => {}
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
