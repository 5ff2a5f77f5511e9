//! A node's whole life through the REST API: created (with the errors an operator can
//! make), listed, joined with a join token, cordoned, drained and terminated (commands,
//! transitions and audit entries), its events and observation read, and deleted.

use actix_web::http::StatusCode;
use actix_web::test::{call_service, read_body, TestRequest};
use serde_json::{json, Value};

use crate::api::{app, env, error_code, send, ADMIN};

#[actix_web::test]
async fn a_node_goes_from_created_to_joined_to_terminated_through_the_api() {
    let e = env(false);
    let app = app!(e);
    let a = Some(ADMIN);

    // Create, with the errors an operator can make.
    let (st, n) = send(
        &app,
        "POST",
        "/v1/nodes",
        a,
        Some(json!({"name": "gpu-01", "pool": "train", "labels": {"rack": "r1"}})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{n}");
    assert_eq!(
        (
            n["status"].as_str(),
            n["health"].as_str(),
            n["connectivity"].as_str()
        ),
        (Some("pending"), Some("unknown"), Some("offline"))
    );
    let id = n["id"].as_str().unwrap().to_string();
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes",
        a,
        Some(json!({"name": "gpu-01"})),
    )
    .await;
    assert_eq!((st, error_code(&v)), (StatusCode::CONFLICT, "conflict"));
    for bad in [
        json!({"name": "bad name"}),
        json!({"name": "x", "address": "10.0.0.1:9410"}),
        json!({"name": "x", "labels": {"__name__": "v"}}),
        json!({"name": "x", "pool": "a/b"}),
    ] {
        let (st, v) = send(&app, "POST", "/v1/nodes", a, Some(bad.clone())).await;
        assert_eq!(
            (st, error_code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            "{bad}"
        );
    }
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes",
        a,
        Some(json!({"name": "x", "colour": "red"})),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused: {v}"
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("colour"));
    let raw = TestRequest::post()
        .uri("/v1/nodes")
        .insert_header(("Authorization", format!("Bearer {ADMIN}")))
        .insert_header(("Content-Type", "application/json"))
        .set_payload("{not json")
        .to_request();
    let resp = call_service(&app, raw).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = serde_json::from_slice(&read_body(resp).await).unwrap();
    assert_eq!(error_code(&v), "bad_request");

    // Lists: filters, pagination, bad filters.
    for i in 0..3 {
        send(
            &app,
            "POST",
            "/v1/nodes",
            a,
            Some(json!({"name": format!("infer-{i}"), "pool": "infer"})),
        )
        .await;
    }
    let (st, v) = send(
        &app,
        "GET",
        "/v1/nodes?pool=infer&limit=2&offset=1",
        a,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["total"], 3);
    let names: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["infer-1", "infer-2"]);
    let (st, v) = send(&app, "GET", "/v1/nodes?status=sick", a, None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pending, active"),
        "{v}"
    );
    let (st, _) = send(&app, "GET", "/v1/nodes?limit=0", a, None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = send(&app, "GET", "/v1/nodes?limit=abc", a, None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Get by id and by name; 404 for neither.
    let (st, v) = send(&app, "GET", &format!("/v1/nodes/{id}"), a, None).await;
    assert_eq!((st, v["name"].as_str()), (StatusCode::OK, Some("gpu-01")));
    let (_, v) = send(&app, "GET", "/v1/nodes/gpu-01", a, None).await;
    assert_eq!(v["id"].as_str(), Some(id.as_str()));
    let (st, v) = send(&app, "GET", "/v1/nodes/nope", a, None).await;
    assert_eq!((st, error_code(&v)), (StatusCode::NOT_FOUND, "not_found"));

    // A join token with an install snippet; without a bootstrap token, only it can join.
    let (st, v) = send(
        &app,
        "POST",
        &format!("/v1/nodes/{id}/token"),
        a,
        Some(json!({"ttl": "2h"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let join = v["token"].as_str().unwrap().to_string();
    let cfg = v["agent_config"].as_str().unwrap();
    assert!(
        cfg.contains("url = \"http://cp.example:8410\"")
            && cfg.contains(&join)
            && cfg.contains("id = \"gpu-01\""),
        "{cfg}"
    );
    assert!(v["systemd_unit"]
        .as_str()
        .unwrap()
        .contains("ExecStart=/usr/local/bin/gpuwarden-agent"));
    let (st, _) = send(
        &app,
        "POST",
        &format!("/v1/nodes/{id}/token"),
        a,
        Some(json!({"ttl": "soon"})),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let reg = json!({"name": "gpu-01", "address": "http://10.0.0.1:9410", "labels": {"zone": "z1"},
        "capabilities": {"gpus": [{"index": 0, "uuid": "GPU-0", "model": "NVIDIA H100 80GB HBM3", "memory_bytes": 85_899_345_920_u64}], "driver_version": "550.54.15"}});
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some("not-a-token-at-all"),
        Some(reg.clone()),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("self-registration is off"),
        "{v}"
    );
    let mut other = reg.clone();
    other["name"] = json!("gpu-99");
    let (st, v) = send(&app, "POST", "/v1/nodes/register", Some(&join), Some(other)).await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "a join token joins its own node only"
    );
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(&join),
        Some(reg.clone()),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["node_id"].as_str(), Some(id.as_str()));
    assert_eq!(v["scrape_interval_seconds"], 15.0);
    assert_eq!(v["node"]["status"], "active");
    assert_eq!(v["node"]["labels"], json!({"rack": "r1", "zone": "z1"}));
    assert_eq!(v["node"]["gpus"][0]["uuid"], "GPU-0");
    let node_token = v["node_token"].as_str().unwrap().to_string();
    let (st, _) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(&join),
        Some(reg.clone()),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "the join token is exchanged for the node token"
    );
    let (st, _) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(&node_token),
        Some(reg.clone()),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "the node token re-registers its node");

    // Lifecycle steps become commands, transitions and audit entries.
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/gpu-01/cordon",
        a,
        Some(json!({"reason": "bad fan"})),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(
        (
            v["node"]["status"].as_str(),
            v["command"]["kind"].as_str(),
            v["command"]["state"].as_str()
        ),
        (Some("cordoned"), Some("cordon"), Some("pending"))
    );
    e.clock.advance(1_000);
    let (st, v) = send(
        &app,
        "POST",
        &format!("/v1/nodes/{id}/drain"),
        a,
        Some(json!({"timeout": "30m"})),
    )
    .await;
    assert_eq!(
        (st, v["node"]["status"].as_str()),
        (StatusCode::ACCEPTED, Some("draining"))
    );
    assert_eq!(v["command"]["params"]["timeout"], "30m");
    let (st, _) = send(
        &app,
        "POST",
        &format!("/v1/nodes/{id}/drain"),
        a,
        Some(json!({"timeout": "a while"})),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _) = send(&app, "POST", &format!("/v1/nodes/{id}/reboot"), a, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    e.clock.advance(1_000);
    let (st, _) = send(&app, "POST", &format!("/v1/nodes/{id}/terminate"), a, None).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let (st, v) = send(&app, "POST", &format!("/v1/nodes/{id}/uncordon"), a, None).await;
    assert_eq!((st, error_code(&v)), (StatusCode::CONFLICT, "conflict"));
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot uncordon a node that is terminating"));
    let (_, v) = send(&app, "GET", &format!("/v1/nodes/{id}/commands"), a, None).await;
    let kinds: Vec<&str> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["terminate", "drain", "cordon"]);
    let (_, v) = send(&app, "GET", &format!("/v1/nodes/{id}/transitions"), a, None).await;
    let hist: Vec<String> = v["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}>{} {}",
                t["from"].as_str().unwrap(),
                t["to"].as_str().unwrap(),
                t["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        hist[..],
        [
            "draining>terminating terminate requested by an operator".to_string(),
            "cordoned>draining drain requested by an operator".into(),
            "active>cordoned bad fan".into(),
            "pending>active agent registered".into()
        ]
    );
    let (_, v) = send(&app, "GET", "/v1/audit?limit=3", a, None).await;
    let actions: Vec<(&str, &str)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["result"].as_str().unwrap()))
        .collect();
    assert_eq!(actions[0].0, "node.uncordon");
    assert!(
        actions[0].1.contains("cannot uncordon"),
        "a refused action is audited with its reason"
    );
    assert_eq!(actions[1], ("node.terminate", "ok"));
    assert!(v["entries"][1]["actor"]
        .as_str()
        .unwrap()
        .starts_with("admin:"));

    // Events and observation of a node never scraped; bad queries.
    let (st, v) = send(
        &app,
        "GET",
        &format!("/v1/nodes/{id}/events?since=2026-01-01T00:00:00Z&limit=5"),
        a,
        None,
    )
    .await;
    assert_eq!(
        (st, v["events"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    let (st, _) = send(
        &app,
        "GET",
        &format!("/v1/nodes/{id}/events?since=yesterday"),
        a,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, v) = send(&app, "GET", &format!("/v1/nodes/{id}/observation"), a, None).await;
    assert_eq!(
        (st, v["observation"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );

    // Delete: gone, and audited.
    let (st, _) = send(&app, "DELETE", &format!("/v1/nodes/{id}"), a, None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = send(&app, "GET", &format!("/v1/nodes/{id}"), a, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = send(&app, "GET", "/v1/audit?limit=1", a, None).await;
    assert_eq!(v["entries"][0]["action"], "node.delete");
}
