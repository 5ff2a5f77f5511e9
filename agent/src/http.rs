//! The agent's HTTP API: `/metrics`, `/healthz`, `/v1/events`, `/v1/plugins` (in
//! [`plugins`]), `/v1/commands` and, with fake GPUs only, `/v1/fake/inject` and
//! `/v1/fake/clear`. Every error the API answers is JSON
//! `{"error":{"code":…,"message":…}}`; a request too malformed to route (a bad request
//! line, a URI or head over hyper's limits) gets hyper's own 400/414/431 with no body.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tower::util::MapResponse;

pub mod body;
mod commands;
mod fake;
mod plugins;
pub mod serve;
mod state;

pub use state::{ApiError, AppState, Peer};

/// Content type of the Prometheus text format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";
const MAX_EVENTS_PAGE: usize = 10_000;

/// The agent's routes. A path the agent does not serve, or a method a path does not take,
/// gets a JSON 404 (as the agent answered under actix-web).
pub fn router(state: AppState) -> Router {
    let fake = state.fake.is_some();
    // HEAD is not served (axum would answer it from GET): 404, as before.
    let mut r = Router::new()
        .route("/metrics", get(metrics).head(no_route))
        .route("/healthz", get(healthz).head(no_route))
        .route("/v1/events", get(events).head(no_route))
        .route("/v1/plugins", get(plugins::list).head(no_route))
        .route("/v1/plugins/{name}/run", post(plugins::run))
        .route(
            "/v1/commands",
            post(commands::submit).get(commands::list).head(no_route),
        );
    if fake {
        r = r
            .route("/v1/fake/inject", post(fake::inject))
            .route("/v1/fake/clear", post(fake::clear));
    }
    let routes = r
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .with_state(state);
    // axum lists a known path's methods on its method-not-allowed answer; that answer is the
    // 404 above, as under actix-web, so the list goes.
    Router::new().fallback_service(MapResponse::new(routes, |mut resp: Response| {
        if resp.status() == StatusCode::NOT_FOUND {
            resp.headers_mut().remove(header::ALLOW);
        }
        resp
    }))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {}", uri.path()),
    )
}

/// 400 for a query string that does not parse.
fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        format!(
            "invalid query: {}",
            // The field and what is wrong with it, without axum's preamble.
            e.body_text()
                .trim_start_matches("Failed to deserialize query string: ")
        ),
    )
}

/// Whether `Accept-Encoding` lists gzip.
/// Whether `Accept-Encoding` takes gzip (RFC 9110 §12.5.3): `gzip` or `x-gzip` in any case
/// with a weight above 0, or `*` above 0 when gzip is not listed itself; `gzip;q=0` refuses it.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (mut gzip, mut any) = (None, None);
    for item in v.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(gzip.unwrap_or(0.0f32).max(q));
        } else if coding == "*" {
            any = Some(q);
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let snap = Arc::clone(&state.snapshot.read().unwrap_or_else(|p| p.into_inner()));
    let text = HeaderValue::from_static(TEXT_FORMAT);
    // The answer depends on Accept-Encoding: caches must not hand one form for the other.
    let vary = HeaderValue::from_static("accept-encoding");
    if accepts_gzip(&headers) {
        let gzip = HeaderValue::from_static("gzip");
        (
            [
                (header::CONTENT_TYPE, text),
                (header::CONTENT_ENCODING, gzip),
                (header::VARY, vary),
            ],
            snap.body_gzip(),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, text), (header::VARY, vary)],
            snap.body(),
        )
            .into_response()
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    let snap = Arc::clone(&state.snapshot.read().unwrap_or_else(|p| p.into_inner()));
    let lost = snap.gpus.iter().filter(|g| g.1.is_none()).count();
    Json(serde_json::json!({
        "status": "ok",
        "gpus": snap.gpus.len(),
        "gpus_lost": lost,
        "last_collection": snap.taken.map(|t| humantime::format_rfc3339_millis(t).to_string()),
        // A config file that no longer loads: the running configuration stays, and says so.
        "config_reload": state.reload.as_ref().map(|r| r.health()),
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

async fn events(
    State(state): State<AppState>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_EVENTS_PAGE {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("limit must be between 1 and {MAX_EVENTS_PAGE}"),
        ));
    }
    let page = state
        .events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .page(q.after, limit);
    Ok(Json(page).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use std::sync::Mutex;
    use std::time::Duration;
    use tower::ServiceExt;

    use crate::backend::fake::FakeBackend;
    use crate::events::EventLog;

    pub(super) fn state(fake: Option<Arc<FakeBackend>>) -> AppState {
        let (tx, _rx) = std::sync::mpsc::channel();
        AppState {
            snapshot: Arc::default(),
            events: Arc::new(Mutex::new(EventLog::new(10, "t".into()))),
            fake,
            collector: tx,
            plugins: None,
            commands: Some(crate::commands::Commands::new(
                crate::config::CommandsConfig::default(),
                "n1".into(),
                Arc::default(),
                None,
                None,
            )),
            command_auth: Arc::default(),
            reload: None,
        }
    }

    /// Answers `req` as the server would (without a socket).
    pub(super) async fn call(app: &Router, req: Request<Body>) -> Response {
        match app.clone().oneshot(req).await {
            Ok(r) => r,
            Err(e) => match e {},
        }
    }

    /// The body of `resp` as JSON.
    pub(super) async fn json(resp: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("the body");
        serde_json::from_slice(&bytes).expect("a JSON body")
    }

    /// A request; `peer` is what the server would put in its extensions.
    pub(super) fn request(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        peer: Option<&str>,
        body: impl Into<Body>,
    ) -> Request<Body> {
        let mut r = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(p) = peer {
            r = r.extension(Peer(p.parse().expect("a socket address")));
        }
        r.body(body.into()).expect("a request")
    }

    #[tokio::test]
    async fn commands_need_the_node_token_digest_and_run_once() {
        use sha2::Digest;
        let st = state(None);
        let auth = st.command_auth.clone();
        let app = router(st);
        let body = r#"{"id":"cmd-1","kind":"cordon","params":{"reason":"xid 79"}}"#;
        let post = |bearer: &str| {
            let auth = format!("Bearer {bearer}");
            request(
                "POST",
                "/v1/commands",
                &[("Authorization", &auth)],
                None,
                body,
            )
        };
        let r = call(&app, post("x")).await;
        assert_eq!(
            r.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "not registered yet"
        );
        auth.set_token("gwn_t");
        let digest: String = sha2::Sha256::digest(b"gwn_t")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let r = call(&app, post("gwn_t")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let first = json(call(&app, post(&digest)).await).await;
        assert_eq!(first["id"], "cmd-1");
        let mut last = first;
        for _ in 0..200 {
            last = json(call(&app, post(&digest)).await).await;
            if last["state"] != "running" {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(last["state"], "succeeded", "{last}");
        assert_eq!(
            last["message"],
            "recorded; no commands.cordon hook is configured"
        );
        let bearer = format!("Bearer {digest}");
        let r = call(
            &app,
            request(
                "POST",
                "/v1/commands",
                &[("Authorization", &bearer)],
                None,
                "{\"id\":\"cmd-2\"}",
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let list = json(
            call(
                &app,
                request(
                    "GET",
                    "/v1/commands",
                    &[("Authorization", &bearer)],
                    None,
                    Body::empty(),
                ),
            )
            .await,
        )
        .await;
        assert_eq!(list["commands"].as_array().map(Vec::len), Some(1));
    }

    /// gzip when the client takes it by the rules of `Accept-Encoding`: any case, `x-gzip`,
    /// weights (`q=0` refuses), `*`; and the answer says it varies with that header.
    #[tokio::test]
    async fn metrics_are_gzipped_as_accept_encoding_asks() {
        let app = router(state(None));
        for (accept, gzip) in [
            (None, false),
            (Some("gzip"), true),
            (Some("GZIP"), true),
            (Some("x-gzip"), true),
            (Some("br, gzip;q=0.5"), true),
            (Some("gzip;q=0"), false),
            (Some("gzip; q=0.0, identity"), false),
            (Some("*"), true),
            (Some("*;q=0"), false),
            (Some("gzip;q=0, *"), false),
            (Some("identity"), false),
            (Some("gzipped"), false),
        ] {
            let headers: Vec<(&str, &str)> =
                accept.map(|a| ("Accept-Encoding", a)).into_iter().collect();
            let resp = call(&app, request("GET", "/metrics", &headers, None, Vec::new())).await;
            assert_eq!(resp.status(), StatusCode::OK);
            let enc = resp.headers().get(header::CONTENT_ENCODING);
            assert_eq!(enc.is_some(), gzip, "{accept:?}");
            assert_eq!(
                resp.headers()
                    .get(header::VARY)
                    .and_then(|v| v.to_str().ok()),
                Some("accept-encoding"),
                "{accept:?}"
            );
        }
    }
}
