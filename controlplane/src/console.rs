//! The web console at `/ui/` (docs/console.md): pages rendered on the server from askama
//! templates (`templates/console/`, checked at compile time), htmx for partial updates and
//! uPlot for the charts, both compiled into the binary (`assets`). Every page reads
//! without JavaScript.
//!
//! Sign-in takes an admin or viewer token and makes a session (`session`); every form
//! carries the session's CSRF token. An admin may act (cordon, uncordon, drain, diagnose,
//! clear-health, add a node); a viewer only reads. Actions run the same code as the REST
//! API, so they are audited the same way.
//!
//! Pages: `/ui/` (fleet), `/ui/pools`, `/ui/nodes`, `/ui/nodes/{id}`, `/ui/policies`,
//! `/ui/audit`; `/ui/login`, `/ui/logout`; `/ui/static/{file}`.

mod actions;
mod add_node;
mod assets;
mod common;
mod fleet;
mod history;
mod node;
mod nodes;
mod policies;
mod pools;
mod session;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

pub use common::{Console, UiError};
pub use history::{from_prometheus, History};
pub use session::{Session, Sessions, SignInError, COOKIE};

use crate::api::AppState;
use common::{cookie, html_with, see_other, session_cookie, LOGIN_COOKIE};

/// Largest form the console takes (a candidate policy): 1 MiB.
pub const FORM_LIMIT: usize = 1 << 20;

/// Registers the console's routes under `/ui`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/ui").route(web::get().to(|| async { see_other("/ui/") })))
        .service(
            web::scope("/ui")
                .app_data(
                    web::FormConfig::default()
                        .limit(FORM_LIMIT)
                        .error_handler(|e, _| UiError::BadRequest(format!("form: {e}")).into()),
                )
                .app_data(
                    web::QueryConfig::default()
                        .error_handler(|e, _| UiError::BadRequest(format!("query: {e}")).into()),
                )
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|e, _| UiError::BadRequest(format!("path: {e}")).into()),
                )
                .service(assets::asset)
                .service(login_page)
                .service(login)
                .service(logout)
                .service(fleet::fleet)
                .service(fleet::audit)
                .service(pools::pools)
                .service(nodes::list)
                .service(add_node::add)
                .service(add_node::join_token)
                .service(node::history)
                .service(actions::confirm)
                .service(actions::act)
                .service(node::node)
                .service(policies::policies)
                .service(policies::check)
                .default_service(web::to(|req: HttpRequest| async move {
                    Err::<HttpResponse, _>(unrouted(&req))
                })),
        );
}

/// A request no console route took: 405 for a method the console does not answer (every
/// page is a `GET`, every action a `POST`), else 404.
fn unrouted(req: &HttpRequest) -> UiError {
    let m = req.method().as_str();
    if m == "GET" || m == "POST" {
        UiError::Api(crate::api::ApiError::not_found(format!(
            "no console page at {}",
            req.path()
        )))
    } else {
        UiError::Api(crate::api::ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{m} {}: the console answers GET (pages) and POST (forms)",
                req.path()
            ),
        ))
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    next: String,
    error: Option<String>,
    signed_out: bool,
    ttl: String,
    form: String,
}

/// Query of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    /// Where to go after signing in.
    #[serde(default)]
    next: Option<String>,
    /// Set after signing out.
    #[serde(default)]
    out: Option<String>,
}

/// Only a path of the console: never another site (`//host`, `/\host`) or another part of
/// this one.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.contains("//")
                && !n.contains('\\')
                && !n.contains("..")
                && !n.to_ascii_lowercase().contains("%2e")
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/ui/".to_string(),
    }
}

fn ttl_text(console: &Console) -> String {
    humantime::format_duration(console.sessions.ttl()).to_string()
}

/// The sign-in page with a fresh form token (set as [`LOGIN_COOKIE`] too).
fn login_form(
    req: &HttpRequest,
    console: &Console,
    status: StatusCode,
    next: String,
    error: Option<String>,
    signed_out: bool,
) -> Result<HttpResponse, UiError> {
    let form = crate::token::issue(crate::token::TokenKind::Csrf)
        .map_err(|e| UiError::Api(crate::api::ApiError::internal(e.to_string())))?
        .secret;
    let p = LoginPage {
        next,
        error,
        signed_out,
        ttl: ttl_text(console),
        form: form.clone(),
    };
    let mut resp = html_with(status, p.render()?);
    resp.headers_mut().insert(
        header::SET_COOKIE,
        cookie(req, LOGIN_COOKIE, &form, "/ui/login", 3600),
    );
    Ok(resp)
}

/// `GET /ui/login`.
#[get("/login")]
async fn login_page(
    req: HttpRequest,
    console: web::Data<Console>,
    q: web::Query<LoginQuery>,
) -> Result<HttpResponse, UiError> {
    login_form(
        &req,
        &console,
        StatusCode::OK,
        safe_next(q.next.as_deref()),
        None,
        q.out.is_some(),
    )
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// An admin or viewer token.
    #[serde(default)]
    token: String,
    /// Where to go after.
    #[serde(default)]
    next: Option<String>,
    /// The form's token, equal to the [`LOGIN_COOKIE`] the sign-in page set.
    #[serde(default)]
    form: String,
}

/// `POST /ui/login`: a session for an admin or viewer token, then on to `next`; 401 with
/// the reason otherwise. A refused sign-in is logged (not audited: the audit log records
/// what accepted callers did).
#[post("/login")]
async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    console: web::Data<Console>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, UiError> {
    let f = form.into_inner();
    let next = safe_next(f.next.as_deref());
    let now = state.clock.now_ms();
    let same = req.cookie(LOGIN_COOKIE).is_some_and(|c| {
        !f.form.is_empty()
            && bool::from(subtle::ConstantTimeEq::ct_eq(
                c.value().as_bytes(),
                f.form.as_bytes(),
            ))
    });
    if !same {
        return login_form(
            &req,
            &console,
            StatusCode::FORBIDDEN,
            next,
            Some(
                "This sign-in form expired or did not come from this console: sign in again here."
                    .into(),
            ),
            false,
        );
    }
    match console.sessions.sign_in(&state.auth, &f.token, now) {
        Ok((secret, s)) => {
            tracing::info!(actor = %s.actor, "console sign-in");
            let max_age = i64::try_from(console.sessions.ttl().as_secs()).unwrap_or(i64::MAX);
            let mut resp = see_other(&next);
            resp.headers_mut()
                .append(header::SET_COOKIE, session_cookie(&req, &secret, max_age));
            resp.headers_mut().append(
                header::SET_COOKIE,
                cookie(&req, LOGIN_COOKIE, "", "/ui/login", 0),
            );
            Ok(resp)
        }
        Err(SignInError::Refused) => {
            let peer = req
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            tracing::warn!(%peer, "console sign-in refused: unknown token");
            login_form(
                &req,
                &console,
                StatusCode::UNAUTHORIZED,
                next,
                Some(SignInError::Refused.to_string()),
                false,
            )
        }
        Err(e) => Err(UiError::Api(crate::api::ApiError::internal(e.to_string()))),
    }
}

/// The sign-out form.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    /// CSRF token.
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`: ends the session (CSRF token checked), removes the cookie.
#[post("/logout")]
async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    console: web::Data<Console>,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, UiError> {
    if let Some(c) = req.cookie(COOKIE) {
        if let Some(s) = console
            .sessions
            .get(&state.auth, c.value(), state.clock.now_ms())
        {
            if !s.csrf_ok(&form.csrf) {
                return Err(UiError::Csrf);
            }
            console.sessions.sign_out(c.value());
        }
    }
    let mut resp = see_other("/ui/login?out=1");
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&req, "", 0));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_sign_in_only_console_paths_are_followed() {
        assert_eq!(safe_next(Some("/ui/nodes?pool=a")), "/ui/nodes?pool=a");
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui//evil",
            "/v1/nodes",
            "/ui\\x",
            "/ui/\r\nSet-Cookie: x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }
}
