//! The GPUs a node is expected to have: a re-registration with fewer GPUs keeps the count, so
//! `gpu-missing` fires; only an operator lowers it (`POST /v1/nodes/{id}/expected-gpus`,
//! audited).

use std::time::Duration;

use actix_web::http::StatusCode;
use gpuwarden_controlplane::judge::policy::Policy;
use gpuwarden_controlplane::model::observation::{GpuObservation, NodeObservation};
use serde_json::{json, Value};

use crate::api::{app, env, error_code, send, Env, ADMIN, BOOT};

fn registration(gpus: u32) -> Value {
    let gpus: Vec<Value> = (0..gpus)
        .map(
            |i| json!({"index": i, "uuid": format!("GPU-{i}"), "model": "H100", "memory_bytes": 1}),
        )
        .collect();
    json!({"name": "gpu-a", "address": "http://gpu-a:9410", "capabilities": {"gpus": gpus}})
}

fn observed(gpus: u32) -> NodeObservation {
    let mut o = NodeObservation::default();
    for i in 0..gpus {
        o.gpus.insert(
            i,
            GpuObservation {
                index: i,
                uuid: format!("GPU-{i}").into(),
                up: Some(true),
                ..Default::default()
            },
        );
    }
    o
}

/// The default policy's verdict on the node after a scrape that saw `gpus` GPUs.
fn gpu_missing_fires(e: &Env, id: &str, gpus: u32) -> bool {
    let now = gpuwarden_controlplane::clock::Clock::now_ms(&e.clock);
    e.data
        .fleet
        .succeeded(id, observed(gpus), Duration::from_millis(5), now);
    let (obs, _, node, _) = e.data.fleet.policy_input(id).unwrap();
    Policy::default_policy()
        .eval_observation(&obs.unwrap(), None, &node)
        .matches
        .iter()
        .any(|m| m.rule == "gpu-missing")
}

#[actix_web::test]
async fn a_gpu_that_vanished_is_missed_after_the_agent_registers_again() {
    let e = env(true);
    let app = app!(e);
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(BOOT),
        Some(registration(8)),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let id = v["node_id"].as_str().unwrap().to_string();
    assert_eq!(v["node"]["expected_gpus"], 8);
    assert!(!gpu_missing_fires(&e, &id, 8));

    // The issue: the agent restarts with 7 of its 8 GPUs and registers with 7.
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(BOOT),
        Some(registration(7)),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["node"]["expected_gpus"], 8,
        "the count never drops by itself"
    );
    assert!(gpu_missing_fires(&e, &id, 7), "gpu-missing fires");

    // An operator lowers it (the GPU was removed on purpose): audited, and the rule is quiet.
    let path = format!("/v1/nodes/{id}/expected-gpus");
    let (st, v) = send(&app, "POST", &path, Some(ADMIN), Some(json!({"gpus": 7}))).await;
    assert_eq!(
        (st, &v["expected_gpus"]),
        (StatusCode::OK, &json!(7)),
        "{v}"
    );
    assert!(!gpu_missing_fires(&e, &id, 7));
    let audit = e.store.audit_log(10).unwrap();
    let entry = audit
        .iter()
        .find(|a| a.action == "node.expected_gpus")
        .expect("audited");
    assert_eq!(entry.target, id);
    assert!(entry.details.contains("\"before\":8") && entry.details.contains("\"after\":7"));

    // A registration with more raises it again.
    let (_, v) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(BOOT),
        Some(registration(8)),
    )
    .await;
    assert_eq!(v["node"]["expected_gpus"], 8);
    let (_, v) = send(&app, "GET", &format!("/v1/nodes/{id}"), Some(ADMIN), None).await;
    assert_eq!(v["expected_gpus"], 8);
}

#[actix_web::test]
async fn setting_the_expected_gpus_refuses_bad_input_and_changes_nothing() {
    let e = env(true);
    let app = app!(e);
    let (_, v) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(BOOT),
        Some(registration(4)),
    )
    .await;
    let id = v["node_id"].as_str().unwrap().to_string();
    let path = format!("/v1/nodes/{id}/expected-gpus");
    for (body, status, code) in [
        (
            json!({"gpus": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            json!({"gpus": 5000}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (json!({"gpus": -1}), StatusCode::BAD_REQUEST, "bad_request"),
        (json!({"gpus": "7"}), StatusCode::BAD_REQUEST, "bad_request"),
        (json!({"count": 7}), StatusCode::BAD_REQUEST, "bad_request"),
    ] {
        let (st, v) = send(&app, "POST", &path, Some(ADMIN), Some(body.clone())).await;
        assert_eq!((st, error_code(&v)), (status, code), "{body}: {v}");
    }
    let (st, _) = send(&app, "POST", &path, None, Some(json!({"gpus": 2}))).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/nope/expected-gpus",
        Some(ADMIN),
        Some(json!({"gpus": 2})),
    )
    .await;
    assert_eq!((st, error_code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (_, v) = send(&app, "GET", &format!("/v1/nodes/{id}"), Some(ADMIN), None).await;
    assert_eq!(v["expected_gpus"], 4, "unchanged");
}
