//! The REST API in-process, continued: what a node token may do, registration input, and
//! the meta endpoints (health, readiness, metrics, OpenAPI, service discovery).

use actix_web::http::StatusCode;
use serde_json::json;

use crate::api::{app, counts, env, error_code, send, ADMIN, BOOT};

#[actix_web::test]
async fn a_node_token_acts_only_for_its_own_node() {
    let e = env(true);
    let app = app!(e);
    let mut tokens = Vec::new();
    for name in ["gpu-a", "gpu-b"] {
        let (st, v) = send(
            &app,
            "POST",
            "/v1/nodes/register",
            Some(BOOT),
            Some(json!({"name": name, "address": format!("http://{name}:9410")})),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        tokens.push((
            v["node_id"].as_str().unwrap().to_string(),
            v["node_token"].as_str().unwrap().to_string(),
        ));
    }
    let (a_id, a_tok) = &tokens[0];
    let (b_id, _) = &tokens[1];
    let (st, v) = send(&app, "GET", &format!("/v1/nodes/{a_id}"), Some(a_tok), None).await;
    assert_eq!((st, v["name"].as_str()), (StatusCode::OK, Some("gpu-a")));
    let before = counts(&e.store);
    let (st, v) = send(&app, "GET", &format!("/v1/nodes/{b_id}"), Some(a_tok), None).await;
    assert_eq!((st, error_code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (st, _) = send(
        &app,
        "DELETE",
        &format!("/v1/nodes/{b_id}"),
        Some(a_tok),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    for (m, p) in [
        ("GET", "/v1/nodes".to_string()),
        ("POST", format!("/v1/nodes/{a_id}/cordon")),
        ("GET", "/v1/audit".into()),
    ] {
        let (st, _) = send(&app, m, &p, Some(a_tok), None).await;
        assert_eq!(
            st,
            StatusCode::UNAUTHORIZED,
            "a node token is not an admin token: {m} {p}"
        );
    }
    assert_eq!(counts(&e.store), before, "nothing written");
    // The bootstrap token is not an admin token either.
    let (st, _) = send(&app, "GET", "/v1/nodes", Some(BOOT), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // The agent's graceful shutdown: its own DELETE deregisters the node (not scraped, offline).
    let (st, _) = send(
        &app,
        "DELETE",
        &format!("/v1/nodes/{a_id}"),
        Some(a_tok),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = send(&app, "GET", &format!("/v1/nodes/{a_id}"), Some(ADMIN), None).await;
    assert_eq!(
        (
            v["deregistered"].as_bool(),
            v["connectivity"].as_str(),
            v["status"].as_str()
        ),
        (Some(true), Some("offline"), Some("active"))
    );
    // The restarted agent comes back with the token it kept, under the same id.
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(a_tok),
        Some(json!({"name": "gpu-a", "address": "http://gpu-a:9410"})),
    )
    .await;
    assert_eq!(
        (
            st,
            v["node_id"].as_str(),
            v["node"]["deregistered"].as_bool()
        ),
        (StatusCode::OK, Some(a_id.as_str()), Some(false))
    );
}

#[actix_web::test]
async fn registration_validates_what_the_agent_sends() {
    let e = env(true);
    let app = app!(e);
    for (body, want) in [
        (json!({"name": "gpu-a"}), StatusCode::BAD_REQUEST),
        (
            json!({"name": "gpu-a", "address": "gpu-a:9410"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "gpu a", "address": "http://gpu-a:9410"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "gpu-a", "address": "http://gpu-a:9410", "capabilities": {"gpus": [{"index": 0}]}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "gpu-a", "address": "http://gpu-a:9410", "extra": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            // Found by schemathesis: more than i64 can hold was stored.
            json!({"name": "gpu-a", "address": "http://gpu-a:9410", "capabilities": {"gpus": [
                {"index": 0, "uuid": "GPU-0", "model": "m", "memory_bytes": 9_223_372_036_854_775_808_u64}]}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "gpu-a", "address": "http://gpu-a:9410", "capabilities": {"gpus": [
                {"index": 2_147_483_648_u64, "uuid": "GPU-0", "model": "m", "memory_bytes": 0}]}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (st, v) = send(
            &app,
            "POST",
            "/v1/nodes/register",
            Some(BOOT),
            Some(body.clone()),
        )
        .await;
        assert_eq!(st, want, "{body}: {v}");
        assert!(v["error"]["message"].is_string());
    }
    assert_eq!(e.store.count("nodes").unwrap(), 0);
}

#[actix_web::test]
async fn health_readiness_metrics_openapi_and_service_discovery() {
    let e = env(true);
    let app = app!(e);
    let (st, v) = send(&app, "GET", "/healthz", None, None).await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (st, _) = send(&app, "GET", "/readyz", None, None).await;
    assert_eq!(st, StatusCode::OK);
    send(&app, "POST", "/v1/nodes/register", Some(BOOT), Some(json!({"name": "gpu-a", "address": "https://gpu-a:9443/agent", "labels": {"rack": "r7"}, "pool": "train"}))).await;
    send(
        &app,
        "POST",
        "/v1/nodes",
        Some(ADMIN),
        Some(json!({"name": "pending-one", "address": "http://p:9410"})),
    )
    .await;

    let (st, v) = send(&app, "GET", "/metrics", None, None).await;
    assert_eq!(st, StatusCode::OK);
    let text = v.as_str().unwrap();
    let samples = gpuwarden_wire::exposition::parse(text.as_bytes())
        .expect("own /metrics is valid exposition");
    let nodes: f64 = samples
        .iter()
        .filter(|s| s.name == "gpuwarden_cp_nodes")
        .map(|s| s.value)
        .sum();
    assert_eq!(nodes, 2.0);
    assert!(samples
        .iter()
        .any(|s| s.name == "gpuwarden_cp_nodes"
            && s.labels.get("status").as_deref() == Some("pending")));

    let (st, v) = send(&app, "GET", "/v1/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(v["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/v1/nodes",
        "/v1/nodes/{id}",
        "/v1/nodes/register",
        "/v1/nodes/{id}/{action}",
        "/v1/sd",
        "/readyz",
    ] {
        assert!(v["paths"][p].is_object(), "openapi.json lacks {p}");
    }
    assert!(v["components"]["schemas"]["Node"].is_object());
    assert!(v["components"]["securitySchemes"]["bearer"].is_object());

    let (st, v) = send(&app, "GET", "/v1/sd", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK);
    let groups = v.as_array().unwrap();
    assert_eq!(
        groups.len(),
        2,
        "a pending node created with an address is scraped too: {v}"
    );
    let g = groups
        .iter()
        .find(|g| g["labels"]["node"] == "gpu-a")
        .unwrap();
    assert_eq!(g["targets"], json!(["gpu-a:9443"]));
    let l = &g["labels"];
    assert_eq!(
        (
            l["__scheme__"].as_str(),
            l["__metrics_path__"].as_str(),
            l["node"].as_str(),
            l["pool"].as_str(),
            l["rack"].as_str()
        ),
        (
            Some("https"),
            Some("/agent/metrics"),
            Some("gpu-a"),
            Some("train"),
            Some("r7")
        )
    );

    let (st, v) = send(&app, "GET", "/v1/nothing", Some(ADMIN), None).await;
    assert_eq!((st, error_code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    // A known path with another method: 405, saying which methods it takes.
    for (m, p, allow) in [
        ("POST", "/healthz", "GET"),
        ("DELETE", "/v1/sd", "GET"),
        ("PUT", "/v1/nodes/gpu-a", "DELETE, GET"),
    ] {
        let (st, v) = send(&app, m, p, Some(ADMIN), None).await;
        assert_eq!(
            (st, error_code(&v)),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            "{m} {p}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().ends_with(allow),
            "{v}"
        );
    }
}

#[actix_web::test]
async fn one_rule_for_labels_and_addresses_and_credentials_never_show() {
    let e = env(true);
    let app = app!(e);
    // Refused where they come in: a label Prometheus would refuse, an address with
    // credentials (create and registration alike).
    for (path, token, body) in [
        (
            "/v1/nodes",
            ADMIN,
            json!({"name": "a", "labels": {"ignore-tls": "true"}}),
        ),
        (
            "/v1/nodes",
            ADMIN,
            json!({"name": "a", "address": "http://agent:s3cret@10.0.0.5:9410"}),
        ),
        (
            "/v1/nodes/register",
            BOOT,
            json!({"name": "a", "address": "http://agent:s3cret@10.0.0.5:9410"}),
        ),
        (
            "/v1/nodes/register",
            BOOT,
            json!({"name": "a", "address": "http://10.0.0.5:9410", "labels": {"ignore-tls": "1"}}),
        ),
    ] {
        let (st, v) = send(&app, "POST", path, Some(token), Some(body.clone())).await;
        assert_eq!(
            (st, error_code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            "{body}"
        );
        assert!(!v.to_string().contains("s3cret"), "{v}");
    }
    // A node stored before those rules (an older release): its password is not shown, and
    // its bad label does not reach Prometheus.
    let now = gpuwarden_controlplane::clock::Clock::now_ms(&e.clock);
    let labels = [
        ("ignore-tls".to_string(), "true".to_string()),
        ("rack".to_string(), "r1".to_string()),
    ]
    .into();
    let row = gpuwarden_controlplane::store::rows::NodeRow::fresh(
        "node-old".into(),
        "old",
        "default",
        &labels,
        Some("http://agent:s3cret@10.0.0.9:9410".into()),
        gpuwarden_controlplane::model::Status::Active,
        gpuwarden_controlplane::model::Source::Static,
        now,
    );
    e.store.upsert_static(&row).unwrap();
    e.data.fleet.sync(&e.store.node("old").unwrap(), now);
    for path in ["/v1/nodes", "/v1/nodes/old", "/v1/sd"] {
        let (st, v) = send(&app, "GET", path, Some(ADMIN), None).await;
        assert_eq!(st, StatusCode::OK);
        assert!(!v.to_string().contains("s3cret"), "{path}: {v}");
    }
    let (_, v) = send(&app, "GET", "/v1/sd", Some(ADMIN), None).await;
    let g = &v.as_array().unwrap()[0];
    assert_eq!(g["targets"], json!(["10.0.0.9:9410"]));
    assert_eq!(g["labels"]["rack"], "r1");
    assert!(g["labels"].get("ignore-tls").is_none(), "{g}");
    let (_, n) = send(&app, "GET", "/v1/nodes/old", Some(ADMIN), None).await;
    assert_eq!(n["address"], "http://agent:***@10.0.0.9:9410");
}
