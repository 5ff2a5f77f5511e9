//! Hardening follow-up: anyone with the bootstrap token took over any node by naming it
//! (`POST /v1/nodes/register` repointed the scrape address, and the real agent's node
//! token got 401), an operator-created pending node included. The rule
//! (docs/controlplane.md, "Registration"): the bootstrap token creates nodes; it registers
//! an existing one again only when that node registered itself and is offline or
//! deregistered.

use actix_web::http::StatusCode;
use gpuwarden_controlplane::model::Connectivity;
use serde_json::json;

use crate::api::{app, env, error_code, send, ADMIN, BOOT};

#[actix_web::test]
async fn the_bootstrap_token_does_not_take_over_a_node_in_use_or_created_by_an_operator() {
    let e = env(true);
    let app = app!(e);
    let reg = |addr: &str| json!({"name": "gpu-a", "address": addr});
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(BOOT),
        Some(reg("http://gpu-a:9410")),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let id = v["node_id"].as_str().unwrap().to_string();
    let token = v["node_token"].as_str().unwrap().to_string();
    let now = gpuwarden_controlplane::clock::Clock::now_ms(&e.clock);
    e.store
        .set_connectivity(&id, Connectivity::Online, "scraped", now)
        .unwrap();

    // Online: refused, nothing changes, the real agent's token still works.
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(BOOT),
        Some(reg("http://evil:9410")),
    )
    .await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::CONFLICT, "conflict"),
        "{v}"
    );
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("online") && m.contains("gpuwarden nodes token gpu-a"),
        "{m}"
    );
    let (st, n) = send(&app, "GET", &format!("/v1/nodes/{id}"), Some(&token), None).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "the agent's node token still works: {n}"
    );
    assert_eq!(n["address"], "http://gpu-a:9410");
    // Its own node token re-registers it, as before.
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(&token),
        Some(reg("http://gpu-a:9410")),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // An operator-created pending node joins with its join token only.
    let (st, _) = send(
        &app,
        "POST",
        "/v1/nodes",
        Some(ADMIN),
        Some(json!({"name": "gpu-p"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(BOOT),
        Some(json!({"name": "gpu-p", "address": "http://evil:9410"})),
    )
    .await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::CONFLICT, "conflict"),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("created by an operator"),
        "{v}"
    );
    let (_, n) = send(&app, "GET", "/v1/nodes/gpu-p", Some(ADMIN), None).await;
    assert_eq!(n["status"], "pending", "{n}");
    assert_ne!(n["address"], "http://evil:9410", "{n}");

    // Offline (the machine was re-imaged and lost its token): the bootstrap token re-registers it.
    e.store
        .set_connectivity(&id, Connectivity::Offline, "missed scrapes", now)
        .unwrap();
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(BOOT),
        Some(reg("http://gpu-a2:9410")),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["node_id"].as_str(), Some(id.as_str()), "the same node");
}
