//! Pools and instances through the REST API, part two: deleting a pool, the instance
//! listing with its filters, and who may call these endpoints.

use actix_web::http::StatusCode;
use gpuwarden_controlplane::clock::Clock;
use gpuwarden_controlplane::model::pool::InstanceState;
use gpuwarden_controlplane::store::pool_rows::InstanceUpdate;
use serde_json::{json, Value};

use crate::api::{app, env, error_code, send, ADMIN};
use crate::pools_api::{contract, instance};

#[actix_web::test]
async fn a_pool_with_nodes_is_deleted_only_with_force_and_its_nodes_stay() {
    let e = env(false);
    let app = app!(e);
    send(&app, "POST", "/v1/pools", Some(ADMIN), Some(contract())).await;
    instance(&e, "p-1", "p", Some("p-node-1"));
    let (st, v) = send(&app, "DELETE", "/v1/pools/p", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("force=true"),
        "{v}"
    );
    let (st, _) = send(&app, "DELETE", "/v1/pools/p?force=true", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = send(&app, "GET", "/v1/pools/p", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, n) = send(&app, "GET", "/v1/nodes/p-node-1", Some(ADMIN), None).await;
    assert_eq!((st, n["pool"].as_str()), (StatusCode::OK, Some("p")));
    // An empty pool goes without force.
    send(&app, "POST", "/v1/pools", Some(ADMIN), Some(contract())).await;
    e.store
        .update_instance(
            "p-1",
            &InstanceUpdate {
                state: Some(InstanceState::Failed),
                ..Default::default()
            },
            e.clock.now_ms(),
        )
        .unwrap();
    e.store
        .delete_node(
            "node-p-node-1",
            gpuwarden_controlplane::store::rows::NewAudit::ok(
                "t",
                "node.delete",
                "x",
                json!({}),
                1,
            ),
        )
        .unwrap();
    let (st, v) = send(&app, "DELETE", "/v1/pools/p", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
}

#[actix_web::test]
async fn instances_are_listed_with_filters_and_one_by_id() {
    let e = env(false);
    let app = app!(e);
    instance(&e, "a-1", "a", None);
    instance(&e, "a-2", "a", None);
    instance(&e, "b-1", "b", None);
    let now = e.clock.now_ms();
    let running = InstanceUpdate {
        state: Some(InstanceState::Running),
        provider_id: Some("pid".into()),
        ..Default::default()
    };
    e.store.update_instance("a-2", &running, now).unwrap();
    let ids = |v: &Value| -> Vec<String> {
        v["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (st, v) = send(&app, "GET", "/v1/instances?pool=a", Some(ADMIN), None).await;
    assert_eq!(
        (st, ids(&v), v["total"].as_i64()),
        (StatusCode::OK, vec!["a-1".into(), "a-2".into()], Some(2))
    );
    let (_, v) = send(
        &app,
        "GET",
        "/v1/instances?state=running",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(ids(&v), vec!["a-2".to_string()]);
    assert_eq!(v["instances"][0]["provider_id"], "pid");
    for k in [
        "id",
        "pool",
        "state",
        "node_id",
        "provider",
        "provider_id",
        "error",
    ] {
        assert!(v["instances"][0].get(k).is_some(), "{k} in {v}");
    }
    let (_, v) = send(
        &app,
        "GET",
        "/v1/instances?pool=a&state=provisioning,running&limit=1&offset=1",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (ids(&v), v["total"].as_i64()),
        (vec!["a-2".to_string()], Some(2))
    );
    let (st, v) = send(
        &app,
        "GET",
        "/v1/instances?state=booting",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("provisioning"),
        "names the states: {v}"
    );
    let (st, v) = send(&app, "GET", "/v1/instances/b-1", Some(ADMIN), None).await;
    assert_eq!(
        (st, v["pool"].as_str(), v["state"].as_str()),
        (StatusCode::OK, Some("b"), Some("provisioning"))
    );
    let (st, _) = send(&app, "GET", "/v1/instances/zzz", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn every_pool_and_instance_endpoint_needs_the_admin_token() {
    let e = env(false);
    let app = app!(e);
    for (m, p, b) in [
        ("GET", "/v1/pools", None),
        ("POST", "/v1/pools", Some(contract())),
        ("GET", "/v1/pools/p", None),
        ("PUT", "/v1/pools/p", Some(contract())),
        ("DELETE", "/v1/pools/p", None),
        ("POST", "/v1/pools/p/scale", Some(json!({"nodes":2}))),
        ("PUT", "/v1/pools/p/demand", Some(json!({"pending_jobs":2}))),
        ("GET", "/v1/instances", None),
        ("GET", "/v1/instances/x", None),
    ] {
        for token in [None, Some("wrong-token-wrong-token")] {
            let (st, v) = send(&app, m, p, token, b.clone()).await;
            assert_eq!(
                (st, error_code(&v)),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{m} {p}"
            );
        }
    }
    assert!(e.store.pools().unwrap().is_empty());
}
