//! The REST API in-process (actix test service) over a real SQLite file: the environment
//! and request helpers the other API modules share, and who may call the admin endpoints.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{call_service, read_body, TestRequest};
use actix_web::web;
use gpuwarden_controlplane::api::{auth_digest, ApiSettings, AppState, Auth};
use gpuwarden_controlplane::clock::FakeClock;
use gpuwarden_controlplane::metrics::Metrics;
use gpuwarden_controlplane::scrape::fleet::{Fleet, FleetSettings};
use gpuwarden_controlplane::store::Store;
use serde_json::{json, Value};

use crate::util::{sqlite_store, TempDir};

pub(crate) const ADMIN: &str = "admin-token-for-tests-0001";
pub(crate) const BOOT: &str = "bootstrap-token-for-tests-1";

pub(crate) struct Env {
    _dir: TempDir,
    pub(crate) clock: FakeClock,
    pub(crate) store: Arc<Store>,
    pub(crate) data: web::Data<AppState>,
}

impl Env {
    /// The URL of the environment's SQLite file.
    pub(crate) fn db_url(&self) -> String {
        format!("sqlite://{}", self._dir.path().join("gw.db").display())
    }
}

pub(crate) fn env(bootstrap: bool) -> Env {
    crate::util::logs();
    let dir = TempDir::new("api");
    let store = Arc::new(sqlite_store(&dir));
    let clock = FakeClock::at(1_795_000_000_000);
    let data = web::Data::new(AppState {
        store: store.clone(),
        fleet: Arc::new(Fleet::new(FleetSettings {
            interval: Duration::from_secs(15),
            offline_after: 3,
            replica: "test".into(),
            health: Default::default(),
        })),
        clock: Arc::new(clock.clone()),
        metrics: Metrics::new(),
        auth: Auth::new(
            vec![auth_digest(ADMIN)],
            if bootstrap {
                vec![auth_digest(BOOT)]
            } else {
                vec![]
            },
        ),
        policy: Arc::new(std::sync::RwLock::new(Arc::new(
            gpuwarden_controlplane::judge::policy::Policy::default_policy(),
        ))),
        policy_file: std::path::PathBuf::new(),
        settings: ApiSettings {
            external_url: "http://cp.example:8410".into(),
            scrape_interval: Duration::from_secs(15),
            join_token_ttl: Duration::from_secs(86_400),
            node_token_ttl: Duration::ZERO,
        },
        links: Default::default(),
    });
    Env {
        _dir: dir,
        clock,
        store,
        data,
    }
}

pub(crate) async fn send<S>(
    app: &S,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let mut req = match method {
        "GET" => TestRequest::get(),
        "POST" => TestRequest::post(),
        "DELETE" => TestRequest::delete(),
        "PUT" => TestRequest::put(),
        _ => unreachable!(),
    }
    .uri(path);
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    if let Some(b) = body {
        req = req.set_json(b);
    }
    let resp = call_service(app, req.to_request()).await;
    let status = resp.status();
    let bytes = read_body(resp).await;
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

/// Creates node `name` through the API as the admin (asserting 201) and returns its id.
pub(crate) async fn create_node<S>(app: &S, name: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let (st, n) = send(
        app,
        "POST",
        "/v1/nodes",
        Some(ADMIN),
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{n}");
    n["id"]
        .as_str()
        .expect("a created node has an id")
        .to_string()
}

macro_rules! app {
    ($env:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .app_data($env.data.clone())
                .configure(gpuwarden_controlplane::api::configure),
        )
        .await
    };
}
pub(crate) use app;

pub(crate) fn error_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON error: {v}"))
}

pub(crate) fn counts(s: &Store) -> Vec<i64> {
    [
        "nodes",
        "node_tokens",
        "audit",
        "commands",
        "transitions",
        "events",
    ]
    .iter()
    .map(|t| s.count(t).unwrap())
    .collect()
}

#[actix_web::test]
async fn every_admin_endpoint_refuses_missing_and_wrong_tokens_and_writes_nothing() {
    let e = env(true);
    let app = app!(e);
    let id = create_node(&app, "gpu-01").await;
    let before = counts(&e.store);
    let endpoints: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/v1/nodes".into(), None),
        ("POST", "/v1/nodes".into(), Some(json!({"name": "gpu-02"}))),
        ("GET", format!("/v1/nodes/{id}"), None),
        ("DELETE", format!("/v1/nodes/{id}"), None),
        ("POST", format!("/v1/nodes/{id}/token"), Some(json!({}))),
        ("POST", format!("/v1/nodes/{id}/cordon"), Some(json!({}))),
        ("POST", format!("/v1/nodes/{id}/uncordon"), Some(json!({}))),
        ("POST", format!("/v1/nodes/{id}/drain"), Some(json!({}))),
        ("POST", format!("/v1/nodes/{id}/terminate"), Some(json!({}))),
        ("GET", format!("/v1/nodes/{id}/events"), None),
        ("GET", format!("/v1/nodes/{id}/transitions"), None),
        ("GET", format!("/v1/nodes/{id}/commands"), None),
        ("GET", format!("/v1/nodes/{id}/observation"), None),
        ("GET", "/v1/audit".into(), None),
        ("GET", "/v1/sd".into(), None),
        ("POST", format!("/v1/nodes/{id}/clear-health"), None),
        ("POST", "/v1/policies/validate".into(), None),
        ("GET", "/v1/policies".into(), None),
        ("PUT", "/v1/policies".into(), None),
        (
            "POST",
            "/v1/nodes/register".into(),
            Some(json!({"name": "gpu-09", "address": "http://h:9410"})),
        ),
    ];
    for (m, p, b) in &endpoints {
        for token in [None, Some("wrong-token-wrong-token"), Some("")] {
            let (st, v) = send(&app, m, p, token, b.clone()).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{m} {p} with {token:?}: {v}");
            assert_eq!(error_code(&v), "unauthorized");
        }
    }
    assert_eq!(counts(&e.store), before, "refused requests wrote nothing");
}
