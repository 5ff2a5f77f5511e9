//! Bearer tokens: admin tokens for the admin API, node tokens for an agent's own node,
//! bootstrap tokens for self-registration. Only digests are held; each comparison is
//! constant-time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use actix_web::http::StatusCode;
use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::token;

/// The token digests the control plane accepts.
#[derive(Debug, Default)]
pub struct Auth {
    admin: RwLock<Vec<String>>,
    bootstrap: Vec<String>,
    /// Tokens created through the API (`POST /v1/tokens`), kept in the store; loaded at
    /// start, changed with each create and revoke here, and read again from the store every
    /// `auth.api_token_refresh` ([`Auth::replace_api_tokens`]) for those of other replicas.
    api: RwLock<Vec<ApiToken>>,
    /// Moves at each local create and revoke, so that a reread that began before one does
    /// not undo it.
    api_changes: AtomicU64,
}

/// What a token created through the API may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything an admin token may.
    Admin,
    /// Read only: `GET` (and `HEAD`) requests.
    Viewer,
}

impl Role {
    /// `admin` or `viewer`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// A token created through the API, as the auth check holds it.
#[derive(Debug, Clone)]
struct ApiToken {
    id: String,
    name: String,
    role: Role,
    digest: String,
}

/// The stored form of a configured token: `sha256:<hex>` is taken as a digest already.
pub fn configured_digest(t: &str) -> String {
    match t.strip_prefix("sha256:") {
        Some(d) => d.to_ascii_lowercase(),
        None => token::digest(t),
    }
}

pub(super) fn unauthorized(message: &str) -> ApiError {
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
    matching(
        &token::digest(presented),
        digests.iter().map(String::as_str),
    )
    .map(str::to_string)
}

/// The digest among `digests` equal to `hashed`, compared with every one, so the time taken
/// does not depend on which matched.
fn matching<'a>(hashed: &str, digests: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut found = None;
    for d in digests {
        if bool::from(hashed.as_bytes().ct_eq(d.as_bytes())) {
            found = Some(d);
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
            api: RwLock::default(),
            api_changes: AtomicU64::new(0),
        }
    }

    /// The count of local changes to the API tokens: take it before reading the store, and
    /// hand it to [`Auth::replace_api_tokens`].
    pub fn api_token_changes(&self) -> u64 {
        self.api_changes.load(Ordering::SeqCst)
    }

    /// Accepts exactly `rows` (as read from the store: `(id, name, role, digest)`; another
    /// role than `admin` or `viewer` is left out) as the tokens created through the API,
    /// unless a token was created or revoked here since `changes` was taken (then the read
    /// may be older than that change: nothing is replaced, and `false` is returned). This
    /// is how a token created or revoked on another control plane over the same database
    /// comes to be accepted or refused here.
    pub fn replace_api_tokens<'a>(
        &self,
        changes: u64,
        rows: impl IntoIterator<Item = (&'a str, &'a str, &'a str, &'a str)>,
    ) -> bool {
        let fresh: Vec<ApiToken> = rows
            .into_iter()
            .filter_map(|(id, name, role, digest)| {
                Some(ApiToken {
                    id: id.to_string(),
                    name: name.to_string(),
                    role: Role::parse(role)?,
                    digest: digest.to_string(),
                })
            })
            .collect();
        let mut api = self.api.write().unwrap_or_else(|p| p.into_inner());
        if self.api_changes.load(Ordering::SeqCst) != changes {
            return false;
        }
        *api = fresh;
        true
    }

    /// Accepts a token created through the API (`role` of `admin` or `viewer`; another role
    /// is ignored).
    pub fn add_api_token(&self, id: &str, name: &str, role: &str, digest: &str) {
        if let Some(role) = Role::parse(role) {
            let mut api = self.api.write().unwrap_or_else(|p| p.into_inner());
            self.api_changes.fetch_add(1, Ordering::SeqCst);
            api.push(ApiToken {
                id: id.to_string(),
                name: name.to_string(),
                role,
                digest: digest.to_string(),
            });
        }
    }

    /// No longer accepts token `id`.
    pub fn remove_api_token(&self, id: &str) {
        let mut api = self.api.write().unwrap_or_else(|p| p.into_inner());
        self.api_changes.fetch_add(1, Ordering::SeqCst);
        api.retain(|t| t.id != id);
    }

    /// Who presents this token, hashed once: a configured admin (`admin:<digest prefix>`)
    /// or a token created through the API (`token:NAME` for an admin, `viewer:NAME`).
    fn identify(&self, presented: &str) -> Option<(Role, String)> {
        self.identify_digest(&token::digest(presented))
    }

    /// `Auth::identify` for a token already hashed ([`token::digest`]): the console keeps
    /// only a session's token digest, and asks again at every request, so a revoked token's
    /// sessions end at once.
    pub fn identify_digest(&self, hashed: &str) -> Option<(Role, String)> {
        {
            let admin = self.admin.read().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = matching(hashed, admin.iter().map(String::as_str)) {
                return Some((Role::Admin, format!("admin:{}", &d[..8.min(d.len())])));
            }
        }
        let api = self.api.read().unwrap_or_else(|p| p.into_inner());
        let d = matching(hashed, api.iter().map(|t| t.digest.as_str()))?;
        let t = api.iter().find(|t| t.digest == d)?;
        Some(match t.role {
            Role::Admin => (Role::Admin, format!("token:{}", t.name)),
            Role::Viewer => (Role::Viewer, format!("viewer:{}", t.name)),
        })
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
        match self.identify(presented) {
            Some((Role::Admin, actor)) => Some(actor),
            _ => None,
        }
    }

    /// Whether this is a bootstrap token.
    pub fn is_bootstrap(&self, presented: &str) -> bool {
        any_match(presented, &self.bootstrap).is_some()
    }

    /// The admin making the request, or a viewer when the request only reads (`GET`,
    /// `HEAD`); 403 for a viewer token on any other method, 401 for no valid token.
    pub fn admin(&self, req: &HttpRequest) -> Result<String, ApiError> {
        match self.identify(bearer(req)?) {
            Some((Role::Admin, actor)) => Ok(actor),
            Some((Role::Viewer, actor)) if is_read(req) => Ok(actor),
            Some((Role::Viewer, actor)) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("{actor}: a viewer token can only read (GET); ask an admin to act"),
            )),
            _ => Err(unauthorized("invalid admin token")),
        }
    }
}

/// Whether a request only reads: a `GET` or `HEAD`, or a policy check (validate and the
/// what-if simulation are `POST`s that change nothing).
fn is_read(req: &HttpRequest) -> bool {
    matches!(req.method().as_str(), "GET" | "HEAD")
        || matches!(
            req.path(),
            "/v1/policies/validate" | "/v1/policies/simulate"
        )
}

/// Whether an actor is a viewer's (read only).
pub fn is_viewer(actor: &str) -> bool {
    actor.starts_with("viewer:")
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

    /// A reread of the store that began before a local create (or revoke) does not undo it;
    /// the next reread is taken, and drops what the store no longer holds.
    #[test]
    fn a_reread_older_than_a_local_change_is_not_taken() {
        let a = Auth::new(vec![], vec![]);
        let d = |s: &str| token::digest(s);
        let (old, new) = (d("gwv_old-token-000001"), d("gwv_new-token-000001"));
        a.add_api_token("tok_1", "old", "viewer", &old);
        let before = a.api_token_changes();
        a.add_api_token("tok_2", "new", "viewer", &new);
        assert!(!a.replace_api_tokens(before, [("tok_1", "old", "viewer", old.as_str())]));
        assert!(a.identify_digest(&new).is_some(), "the local create stands");
        let now = a.api_token_changes();
        assert!(a.replace_api_tokens(
            now,
            [
                ("tok_2", "new", "admin", new.as_str()),
                ("tok_3", "odd", "root", old.as_str()),
            ]
        ));
        assert!(
            a.identify_digest(&old).is_none(),
            "gone from the store, and a bad role"
        );
        assert_eq!(a.identify_digest(&new).map(|r| r.0), Some(Role::Admin));
    }
}
