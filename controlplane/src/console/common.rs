//! What every console page shares: who is signed in ([`Signed`]), the page chrome
//! ([`Chrome`]), the error page ([`UiError`]), CSRF checks and the formatting of times.

use std::future::{ready, Ready};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use super::session::{Session, Sessions, COOKIE};
use crate::api::{ApiError, AppState};

/// The console's own state beside [`AppState`].
#[derive(Debug)]
pub struct Console {
    /// Signed-in sessions.
    pub sessions: Sessions,
    /// `console.prometheus_url`: charts from this Prometheus instead of the memory ring.
    pub prometheus_url: Option<String>,
}

/// An error as the console shows it: an HTML page with the status and what to do, or a
/// redirect to the sign-in page.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// Not signed in (or the session ended): 303 to `/ui/login?next=…`.
    #[error("sign in to continue")]
    SignIn {
        /// Where to go after signing in (a path under `/ui/`).
        next: String,
    },
    /// A form without this session's CSRF token: 403.
    #[error("this form has expired or did not come from this console (CSRF token missing or wrong): reload the page and try again")]
    Csrf,
    /// A viewer asked for an action: 403.
    #[error("{0}: a viewer token can only read; sign in with an admin token to act")]
    ReadOnly(String),
    /// What the API answered (its status and message).
    #[error("{}", .0.message)]
    Api(#[from] ApiError),
    /// A bad form or query: 400.
    #[error("{0}")]
    BadRequest(String),
    /// A page could not be rendered: 500.
    #[error("rendering the page: {0}")]
    Render(#[from] askama::Error),
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: String,
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            UiError::SignIn { .. } => StatusCode::SEE_OTHER,
            UiError::Csrf | UiError::ReadOnly(_) => StatusCode::FORBIDDEN,
            UiError::Api(e) => e.status,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let UiError::SignIn { next } = self {
            let to = format!("/ui/login?next={}", encode(next));
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, to))
                .finish();
        }
        let status = self.status_code();
        // Control characters from a path or a form are shown escaped (`\0`, `\r`), never raw.
        let message: String = self
            .to_string()
            .chars()
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_default().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect();
        let page = ErrorPage {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error"),
            message,
        };
        let body = page
            .render()
            .unwrap_or_else(|_| format!("{} {}", status.as_u16(), status));
        let mut resp = html_with(status, body);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        }
        resp
    }
}

/// `body` as an HTML page with this status, never cached (it shows the fleet now).
pub fn html_with(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
        ))
        .body(body)
}

/// A rendered page, 200.
pub fn page(t: &impl Template) -> Result<HttpResponse, UiError> {
    Ok(html_with(StatusCode::OK, t.render()?))
}

/// 303 to `to` (a path under `/ui/`).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The signed-in operator of a console request; anyone else is sent to the sign-in page.
#[derive(Debug, Clone)]
pub struct Signed(pub Session);

impl FromRequest for Signed {
    type Error = UiError;
    type Future = Ready<Result<Self, UiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(signed(req))
    }
}

fn signed(req: &HttpRequest) -> Result<Signed, UiError> {
    let (Some(state), Some(console)) = (
        req.app_data::<web::Data<AppState>>(),
        req.app_data::<web::Data<Console>>(),
    ) else {
        return Err(UiError::Api(ApiError::internal("console state missing")));
    };
    let next = match req.uri().path_and_query() {
        Some(pq) if req.method() == actix_web::http::Method::GET => pq.as_str().to_string(),
        _ => "/ui/".to_string(),
    };
    let cookie = req
        .cookie(COOKIE)
        .ok_or(UiError::SignIn { next: next.clone() })?;
    console
        .sessions
        .get(&state.auth, cookie.value(), state.clock.now_ms())
        .map(Signed)
        .ok_or(UiError::SignIn { next })
}

impl Signed {
    /// The session, if it may act and `csrf` (the form's field, else the `X-CSRF-Token`
    /// header htmx sends) is its token; else 403.
    pub fn act(&self, req: &HttpRequest, csrf: Option<&str>, what: &str) -> Result<(), UiError> {
        self.csrf(req, csrf)?;
        if !self.0.can_act() {
            return Err(UiError::ReadOnly(format!(
                "{} may not {what}",
                self.0.actor
            )));
        }
        Ok(())
    }

    /// Ok if `csrf` (the form's field, else the `X-CSRF-Token` header htmx sends) is this
    /// session's token; else 403. Every form of the console passes here.
    pub fn csrf(&self, req: &HttpRequest, csrf: Option<&str>) -> Result<(), UiError> {
        let presented = csrf
            .filter(|c| !c.is_empty())
            .or_else(|| {
                req.headers()
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
            })
            .unwrap_or("");
        if self.0.csrf_ok(presented) {
            Ok(())
        } else {
            Err(UiError::Csrf)
        }
    }

    /// The chrome of a page titled `title` under menu entry `nav`.
    pub fn chrome(&self, title: impl Into<String>, nav: &'static str) -> Chrome {
        Chrome {
            title: title.into(),
            nav,
            actor: self.0.actor.clone(),
            role: if self.0.can_act() { "admin" } else { "viewer" },
            can_act: self.0.can_act(),
            csrf: self.0.csrf.clone(),
            notice: None,
        }
    }
}

/// What every signed-in page shows around its content.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The page's title.
    pub title: String,
    /// The menu entry to mark current: `fleet`, `pools`, `nodes`, `policies`, `audit`.
    pub nav: &'static str,
    /// Who is signed in.
    pub actor: String,
    /// `admin` or `viewer`.
    pub role: &'static str,
    /// Whether action buttons are shown.
    pub can_act: bool,
    /// The CSRF token for the page's forms.
    pub csrf: String,
    /// A line to show on top (what an action did), announced to screen readers.
    pub notice: Option<String>,
}

/// Unix ms as `2026-12-01 03:04:05 UTC`.
pub fn when(ms: i64) -> String {
    let s = crate::clock::rfc3339(ms);
    // 2026-12-01T03:04:05.123Z → 2026-12-01 03:04:05 UTC
    match (s.get(..10), s.get(11..19)) {
        (Some(d), Some(t)) => format!("{d} {t} UTC"),
        _ => s,
    }
}

/// An RFC 3339 time as [`when`] shows it.
pub fn when_rfc3339(s: &str) -> String {
    crate::clock::parse_rfc3339(s).map_or_else(|| s.to_string(), when)
}

/// How long ago `then` was at `now` (Unix ms), like `4m 10s ago`.
pub fn ago(then: i64, now: i64) -> String {
    let secs = (now - then).max(0) / 1000;
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let t = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    };
    format!("{t} ago")
}

/// A status word with the symbol the console shows beside it, so no state is told by colour
/// alone: `✔ healthy`, `▲ degraded`, `✖ unhealthy`, `? unknown`, …
pub fn badge(word: &str) -> String {
    let sym = match word {
        "healthy" | "online" | "active" | "ok" | "running" | "succeeded" => "✔",
        "degraded" | "cordoned" | "draining" | "pending" | "provisioning" | "registering" => "▲",
        "unhealthy" | "offline" | "error" | "failed" | "terminated" | "terminating" => "✖",
        _ => "●",
    };
    format!("{sym} {word}")
}

/// Sets the session cookie: HttpOnly, SameSite=Strict, `Path=/ui`, Secure when the request
/// came over TLS (directly, or through a proxy that says so with `X-Forwarded-Proto` or
/// `Forwarded`), lasting `max_age` seconds (0 removes it).
pub fn session_cookie(req: &HttpRequest, value: &str, max_age: i64) -> HeaderValue {
    cookie(req, COOKIE, value, "/ui", max_age)
}

/// The sign-in form's cookie: its value is also a hidden field of the form, and a sign-in
/// whose field and cookie differ is refused, so another site cannot sign a browser in
/// (login CSRF: its form cannot read nor, `SameSite=Strict`, send this cookie).
pub const LOGIN_COOKIE: &str = "gw_login";

/// A cookie `name=value` for `path` with the flags of [`session_cookie`].
pub fn cookie(req: &HttpRequest, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    let secure = req.connection_info().scheme().eq_ignore_ascii_case("https");
    let v = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&v)
        .unwrap_or_else(|_| HeaderValue::from_static("gw_session=; Path=/ui; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_badges_read_without_colour() {
        assert_eq!(when(1_795_000_000_000), "2026-11-18 11:06:40 UTC");
        assert_eq!(ago(0, 61_000), "1m 1s ago");
        assert_eq!(ago(0, 3 * 86_400_000 + 7_200_000), "3d 2h ago");
        assert_eq!(badge("unhealthy"), "✖ unhealthy");
        assert_eq!(badge("healthy"), "✔ healthy");
        assert_eq!(
            encode("/ui/nodes?pool=a b&x=é"),
            "/ui/nodes%3Fpool%3Da%20b%26x%3D%C3%A9"
        );
    }
}
