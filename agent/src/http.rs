//! The agent's HTTP API: `/metrics`, `/healthz`, `/v1/events`, `/v1/plugins` (in
//! [`plugins`]), `/v1/commands` and, with fake GPUs only, `/v1/fake/inject` and
//! `/v1/fake/clear`. Every error is JSON
//! `{"error":{"code":…,"message":…}}`.

use std::sync::Arc;

use actix_web::http::header::{self, ContentEncoding};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

pub mod body;
mod commands;
mod fake;
mod plugins;
mod state;

pub use state::{ApiError, AppState};

/// Content type of the Prometheus text format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";
const MAX_EVENTS_PAGE: usize = 10_000;

/// Registers the routes on an actix app.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let fake = state.fake.is_some();
        cfg.app_data(web::Data::new(state))
            // Bodies go through `body::JsonBody`, which maps these limits to JSON errors.
            .app_data(web::PayloadConfig::new(body::BODY_LIMIT))
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("invalid query: {e}"),
                )
                .into()
            }))
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("invalid path: {e}"),
                )
                .into()
            }))
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/v1/events", web::get().to(events))
            .route("/v1/plugins", web::get().to(plugins::list))
            .route("/v1/plugins/{name}/run", web::post().to(plugins::run))
            .route("/v1/commands", web::post().to(commands::submit))
            .route("/v1/commands", web::get().to(commands::list));
        if fake {
            cfg.route("/v1/fake/inject", web::post().to(fake::inject))
                .route("/v1/fake/clear", web::post().to(fake::clear));
        }
        cfg.default_service(web::to(|req: HttpRequest| async move {
            Err::<HttpResponse, _>(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route for {} {}", req.method(), req.path()),
            ))
        }));
    }
}

async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let snap = Arc::clone(&state.snapshot.read().unwrap_or_else(|p| p.into_inner()));
    let gzip = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|e| e.trim().split(';').next() == Some("gzip"))
        });
    let mut resp = HttpResponse::Ok();
    resp.insert_header((header::CONTENT_TYPE, TEXT_FORMAT));
    if gzip {
        resp.insert_header(ContentEncoding::Gzip);
        resp.body(snap.body_gzip())
    } else {
        resp.body(snap.body())
    }
}

async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let snap = Arc::clone(&state.snapshot.read().unwrap_or_else(|p| p.into_inner()));
    let lost = snap.gpus.iter().filter(|g| g.1.is_none()).count();
    HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "gpus": snap.gpus.len(),
        "gpus_lost": lost,
        "last_collection": snap.taken.map(|t| humantime::format_rfc3339_millis(t).to_string()),
        // A config file that no longer loads: the running configuration stays, and says so.
        "config_reload": state.reload.as_ref().map(|r| r.health()),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

async fn events(
    q: web::Query<EventsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
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
    Ok(HttpResponse::Ok().json(page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test, App};
    use std::sync::Mutex;
    use std::time::Duration;

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

    #[actix_web::test]
    async fn commands_need_the_node_token_digest_and_run_once() {
        use sha2::Digest;
        let st = state(None);
        let auth = st.command_auth.clone();
        let app = test::init_service(App::new().configure(configure(st))).await;
        let body = r#"{"id":"cmd-1","kind":"cordon","params":{"reason":"xid 79"}}"#;
        let post = |bearer: &str| {
            test::TestRequest::post()
                .uri("/v1/commands")
                .insert_header(("Authorization", format!("Bearer {bearer}")))
                .set_payload(body)
                .to_request()
        };
        let r = test::call_service(&app, post("x")).await;
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
        let r = test::call_service(&app, post("gwn_t")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let first: serde_json::Value =
            test::read_body_json(test::call_service(&app, post(&digest)).await).await;
        assert_eq!(first["id"], "cmd-1");
        let mut last = first;
        for _ in 0..200 {
            last = test::read_body_json(test::call_service(&app, post(&digest)).await).await;
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
        let r = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/v1/commands")
                .insert_header(("Authorization", format!("Bearer {digest}")))
                .set_payload("{\"id\":\"cmd-2\"}")
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let list: serde_json::Value = test::read_body_json(
            test::call_service(
                &app,
                test::TestRequest::get()
                    .uri("/v1/commands")
                    .insert_header(("Authorization", format!("Bearer {digest}")))
                    .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(list["commands"].as_array().map(Vec::len), Some(1));
    }
}
