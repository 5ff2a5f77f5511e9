//! Pools and instances through the REST API (in-process, real SQLite file): the contract
//! body, every problem of an invalid pool at once, config pools read-only, scale bounds,
//! pushed demand, deletion, and the instance listing with its filters.

use actix_web::http::StatusCode;
use gpuwarden_controlplane::clock::Clock;
use gpuwarden_controlplane::model::pool::PoolSpec;
use gpuwarden_controlplane::store::pool_rows::{InstanceNode, NewDecision, NewInstance};
use serde_json::{json, Value};

use crate::api::{app, env, error_code, send, Env, ADMIN};

pub(crate) fn contract() -> Value {
    json!({"name":"p","provider":"local","min_nodes":2,"max_nodes":4,"auto_replace":true})
}

pub(crate) fn instance(e: &Env, id: &str, pool: &str, node: Option<&str>) {
    let now = e.clock.now_ms();
    e.store
        .create_instance(&NewInstance {
            id: id.into(),
            pool: pool.into(),
            provider: "local".into(),
            node: node.map(|n| InstanceNode {
                id: format!("node-{n}"),
                name: n.into(),
                labels: Default::default(),
                token_digest: format!("join-{n}"),
                token_expires: None,
            }),
            now,
        })
        .unwrap();
}

/// The pool and audit rows: what a refused request must leave as they were, but for the
/// audit entry of the refusal.
fn pools_and_specs(e: &Env) -> Vec<(String, String)> {
    e.store
        .pools()
        .unwrap()
        .into_iter()
        .map(|p| (p.name, p.spec))
        .collect()
}

#[actix_web::test]
async fn the_contract_body_creates_a_pool_and_get_shows_its_nodes_target_and_decisions() {
    let e = env(false);
    let app = app!(e);
    let (st, v) = send(&app, "POST", "/v1/pools", Some(ADMIN), Some(contract())).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["source"].as_str()),
        (Some("p"), Some("api"))
    );
    assert_eq!(
        (v["nodes"].as_i64(), v["target"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(v["scale_up_cooldown"], "1m", "defaults are filled in");

    let (st, v) = send(&app, "GET", "/v1/pools", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["total"], 1);
    assert_eq!(v["pools"][0]["name"], "p");

    // What the pool manager records shows: decisions, instances in flight, a node.
    let d = NewDecision {
        pool: "p".into(),
        time: e.clock.now_ms(),
        target: 2,
        reasons: json!(["below min_nodes (0 of 2)"]).to_string(),
        actions: json!([{"kind":"provision","ids":["p-1"],"reason":"min"}]).to_string(),
        counts: json!({"serving":0,"remediating":1,"held":2}).to_string(),
    };
    e.store.record_decision(&d, 50).unwrap();
    instance(&e, "p-1", "p", Some("p-node-1"));
    let (st, v) = send(&app, "GET", "/v1/pools/p", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["nodes"].as_i64(), v["target"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(v["decisions"][0]["reasons"][0], "below min_nodes (0 of 2)");
    assert_eq!(v["decisions"][0]["actions"][0]["kind"], "provision");
    assert_eq!(v["instances_in_flight"][0]["id"], "p-1");
    assert_eq!(v["instances_in_flight"][0]["state"], "provisioning");
    assert_eq!(
        (
            v["budget_status"]["in_use"].as_u64(),
            v["budget_status"]["held"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(
        v["budget_status"]["limit"], 1,
        "10 % of one node, at least one"
    );
    assert_eq!(v["cooldowns"]["scale_up_seconds"], 0.0);
    assert_eq!(
        v["budget"]["max_nodes"], 2,
        "the spec's budget is not shadowed"
    );
    // The detail's body is a valid pool body again (what `pools update` sends back).
    let spec: serde_json::Map<String, Value> = v
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            serde_json::to_value(PoolSpec::new("p", "local", 2, 4))
                .unwrap()
                .get(k.as_str())
                .is_some()
                || k.as_str() == "provider"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        serde_json::from_value::<PoolSpec>(Value::Object(spec))
            .unwrap()
            .min_nodes,
        2
    );
    // The node carries its pool and instance.
    let (_, n) = send(&app, "GET", "/v1/nodes/p-node-1", Some(ADMIN), None).await;
    assert_eq!(
        (n["pool"].as_str(), n["instance_id"].as_str()),
        (Some("p"), Some("p-1"))
    );

    let (st, v) = send(&app, "GET", "/v1/pools/nope", Some(ADMIN), None).await;
    assert_eq!((st, error_code(&v)), (StatusCode::NOT_FOUND, "not_found"));
}

#[actix_web::test]
async fn invalid_pools_get_422_with_every_problem_and_change_nothing() {
    let e = env(false);
    let app = app!(e);
    // (what, body, fields that must be named)
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "min above max",
            json!({"name":"p","provider":"local","min_nodes":5,"max_nodes":4}),
            vec!["min_nodes"],
        ),
        (
            "unknown provider kind",
            json!({"name":"p","provider":"aws","min_nodes":0,"max_nodes":4}),
            vec!["provider"],
        ),
        (
            "bad autoscaler parameters",
            json!({"name":"p","provider":"local","min_nodes":0,"max_nodes":4,
                   "autoscaler":{"type":"reactive","scale_up_threshold":0.2,"scale_down_threshold":0.5,"step":0}}),
            vec!["autoscaler.scale_up_threshold", "autoscaler.step"],
        ),
        (
            "bad durations",
            json!({"name":"p","provider":"local","min_nodes":0,"max_nodes":4,
                   "scale_up_cooldown":"soon","registration_timeout":"0s"}),
            vec!["scale_up_cooldown", "registration_timeout"],
        ),
        (
            "a bad name",
            json!({"name":"bad name!","provider":"local","min_nodes":0,"max_nodes":4}),
            vec!["name"],
        ),
        (
            "everything at once",
            json!({"name":"-x","provider":"aws","min_nodes":9,"max_nodes":4,"scale_down_cooldown":"2 fortnights",
                   "autoscaler":{"type":"queue","jobs_per_node":0}}),
            vec![
                "name",
                "provider",
                "min_nodes",
                "scale_down_cooldown",
                "autoscaler.jobs_per_node",
            ],
        ),
    ];
    let before = pools_and_specs(&e);
    for (what, body, fields) in &cases {
        let (st, v) = send(&app, "POST", "/v1/pools", Some(ADMIN), Some(body.clone())).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {v}");
        assert_eq!(error_code(&v), "invalid_pool", "{what}");
        let named: Vec<&str> = v["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            named.len(),
            fields.len(),
            "{what}: exactly these problems: {v}"
        );
        for f in fields {
            assert!(named.contains(f), "{what}: {f} named in {v}");
        }
        assert!(v["error"]["details"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(pools_and_specs(&e), before, "nothing was created");

    // The shape of the body is checked like every body: 400 naming the field.
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools",
        Some(ADMIN),
        Some(json!({"name":"p","provider":"local","min_nodes":0,"max_nodes":4,"autoscaler":{"type":"magic"}})),
    )
    .await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::BAD_REQUEST, "bad_request"),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("autoscaler"),
        "{v}"
    );
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools",
        Some(ADMIN),
        Some(json!({"name":"p","min_nodes":-1,"max_nodes":4})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("min_nodes"),
        "{v}"
    );

    // An invalid update changes nothing either.
    send(&app, "POST", "/v1/pools", Some(ADMIN), Some(contract())).await;
    let before = pools_and_specs(&e);
    let mut bad = contract();
    bad["max_nodes"] = json!(1);
    let (st, v) = send(&app, "PUT", "/v1/pools/p", Some(ADMIN), Some(bad)).await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_pool"),
        "{v}"
    );
    let mut renamed = contract();
    renamed["name"] = json!("q");
    let (st, v) = send(&app, "PUT", "/v1/pools/p", Some(ADMIN), Some(renamed)).await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a pool is not renamed: {v}"
    );
    assert_eq!(pools_and_specs(&e), before);
    let mut wider = contract();
    wider["max_nodes"] = json!(8);
    let (st, v) = send(&app, "PUT", "/v1/pools/p", Some(ADMIN), Some(wider)).await;
    assert_eq!(
        (st, v["max_nodes"].as_u64()),
        (StatusCode::OK, Some(8)),
        "{v}"
    );
}

#[actix_web::test]
async fn config_pools_are_read_only_through_the_api_and_the_409_names_the_file() {
    let e = env(false);
    let app = app!(e);
    let file = "/etc/gpuwarden/controlplane.toml";
    e.store
        .apply_config_pools(
            &[PoolSpec::new("cfg", "local", 1, 3)],
            file,
            e.clock.now_ms(),
        )
        .unwrap();
    let before = pools_and_specs(&e);
    let mut body = contract();
    body["name"] = json!("cfg");
    for (m, p, b) in [
        ("POST", "/v1/pools", Some(body.clone())),
        ("PUT", "/v1/pools/cfg", Some(body.clone())),
        ("DELETE", "/v1/pools/cfg", None),
        ("DELETE", "/v1/pools/cfg?force=true", None),
    ] {
        let (st, v) = send(&app, m, p, Some(ADMIN), b).await;
        assert_eq!(
            (st, error_code(&v)),
            (StatusCode::CONFLICT, "conflict"),
            "{m} {p}: {v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains(file),
            "{m} {p}: {v}"
        );
    }
    assert_eq!(pools_and_specs(&e), before);
    let (_, v) = send(&app, "GET", "/v1/pools/cfg", Some(ADMIN), None).await;
    assert_eq!(
        (v["source"].as_str(), v["source_file"].as_str()),
        (Some("config"), Some(file))
    );
    // Scaling and demand are state, not the declaration: allowed.
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools/cfg/scale",
        Some(ADMIN),
        Some(json!({"nodes":2})),
    )
    .await;
    assert_eq!((st, v["target"].as_u64()), (StatusCode::OK, Some(2)), "{v}");
}

#[actix_web::test]
async fn scale_outside_the_bounds_is_422_and_demand_is_stored() {
    let e = env(false);
    let app = app!(e);
    send(&app, "POST", "/v1/pools", Some(ADMIN), Some(contract())).await;
    for n in [0, 1, 5, 10_000] {
        let (st, v) = send(
            &app,
            "POST",
            "/v1/pools/p/scale",
            Some(ADMIN),
            Some(json!({"nodes": n})),
        )
        .await;
        assert_eq!(
            (st, error_code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            "{n}: {v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains("2..4"),
            "{v}"
        );
    }
    assert_eq!(
        e.store.pool("p").unwrap().manual_target,
        None,
        "nothing changed"
    );
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools/p/scale",
        Some(ADMIN),
        Some(json!({"nodes": 3})),
    )
    .await;
    assert_eq!(
        (st, v["target"].as_u64(), v["manual_target"].as_u64()),
        (StatusCode::OK, Some(3), Some(3))
    );
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools/p/scale",
        Some(ADMIN),
        Some(json!({"nodes": null})),
    )
    .await;
    assert_eq!(
        (st, v["target"].as_u64()),
        (StatusCode::OK, Some(2)),
        "back to min_nodes: {v}"
    );
    let (st, _) = send(
        &app,
        "POST",
        "/v1/pools/nope/scale",
        Some(ADMIN),
        Some(json!({"nodes": 1})),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (st, _) = send(
        &app,
        "PUT",
        "/v1/pools/p/demand",
        Some(ADMIN),
        Some(json!({"pending_jobs": 12})),
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = send(&app, "GET", "/v1/pools/p", Some(ADMIN), None).await;
    assert_eq!(v["pending_jobs"], 12);
    assert!(v["demand_at"].is_string());
    let (st, _) = send(
        &app,
        "PUT",
        "/v1/pools/p/demand",
        Some(ADMIN),
        Some(json!({"pending_jobs": -1})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}
