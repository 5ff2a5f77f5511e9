//! The REST API in-process, continued: refused admin actions in the audit log, why a node is
//! unhealthy, and pending nodes created with an address.

use actix_web::http::StatusCode;
use gpuwarden_controlplane::model::Health;
use serde_json::{json, Value};

use crate::api::{app, counts, create_node, env, send, ADMIN};

/// The newest audit entry: (action, target, result).
async fn last_audit<S>(app: &S) -> (String, String, String)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
{
    let (_, v) = send(app, "GET", "/v1/audit?limit=1", Some(ADMIN), None).await;
    let e = &v["entries"][0];
    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
    (s("action"), s("target"), s("result"))
}

#[actix_web::test]
async fn refused_admin_actions_are_audited_with_their_reason() {
    let e = env(false);
    let app = app!(e);
    let a = Some(ADMIN);
    let (st, _) = send(
        &app,
        "POST",
        "/v1/nodes",
        a,
        Some(json!({"name": "gpu-01"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let cases: Vec<(&str, &str, Value, StatusCode, &str, &str)> = vec![
        (
            "/v1/nodes",
            "node.create",
            json!({"name": "gpu-01"}),
            StatusCode::CONFLICT,
            "gpu-01",
            "refused (conflict): a node named \"gpu-01\" exists",
        ),
        (
            "/v1/nodes",
            "node.create",
            json!({"name": "bad name"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad name",
            "refused (invalid): name \"bad name\" must be",
        ),
        (
            "/v1/nodes",
            "node.create",
            json!({"name": "gpu-02", "address": "10.0.0.1:9410"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "gpu-02",
            "refused (invalid): address",
        ),
        (
            "/v1/nodes/gpu-01/token",
            "node.token",
            json!({"ttl": "1s"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "gpu-01",
            "refused (invalid): ttl \"1s\" must be between 1m and 365d",
        ),
        (
            "/v1/nodes/gpu-01/token",
            "node.token",
            json!({"ttl": "400d"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "gpu-01",
            "refused (invalid): ttl",
        ),
        (
            "/v1/nodes/nope/token",
            "node.token",
            json!({}),
            StatusCode::NOT_FOUND,
            "nope",
            "refused (not_found): node nope not found",
        ),
        (
            "/v1/nodes/gpu-01/drain",
            "node.drain",
            json!({"timeout": "forever"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "gpu-01",
            "refused (invalid): timeout",
        ),
        (
            "/v1/nodes/gpu-01/cordon",
            "node.cordon",
            json!({}),
            StatusCode::CONFLICT,
            "node-",
            "cannot cordon a node that is pending",
        ),
        (
            "/v1/nodes/gpu-01/diagnose",
            "node.diagnose",
            json!({"plugin": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "gpu-01",
            "refused (invalid): plugin",
        ),
    ];
    for (path, action, body, status, target, result) in cases {
        let before = e.store.count("audit").unwrap();
        let (st, v) = send(&app, "POST", path, a, Some(body.clone())).await;
        assert_eq!(st, status, "{path} {body}: {v}");
        assert_eq!(
            e.store.count("audit").unwrap(),
            before + 1,
            "{path} {body}: one entry"
        );
        let (got_action, got_target, got_result) = last_audit(&app).await;
        assert_eq!(got_action, action, "{path} {body}");
        assert!(got_target.starts_with(target), "{path}: {got_target}");
        assert!(
            got_result.starts_with(result),
            "{path} {body}: {got_result}"
        );
    }
    let (st, _) = send(&app, "DELETE", "/v1/nodes/nope", a, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(
        last_audit(&app).await,
        (
            "node.delete".to_string(),
            "nope".to_string(),
            "refused (not_found): node nope not found".to_string()
        )
    );
}

#[actix_web::test]
async fn nodes_get_says_why_a_node_is_unhealthy_and_since_when() {
    let e = env(false);
    let app = app!(e);
    let id = create_node(&app, "gpu-01").await;
    let (_, v) = send(&app, "GET", "/v1/nodes/gpu-01", Some(ADMIN), None).await;
    assert!(v.get("health_reason").is_none(), "unknown: no reason {v}");
    e.store
        .set_health(
            &id,
            Health::Degraded,
            "rule gpu-hot: GPU 1 at 91 °C",
            "policy:gpu-hot",
            1_795_000_000_000,
        )
        .unwrap();
    e.store
        .set_health(
            &id,
            Health::Unhealthy,
            "rule fatal-xid: XID 79 on GPU 3",
            "policy:fatal-xid",
            1_795_000_060_000,
        )
        .unwrap();
    let (st, v) = send(&app, "GET", "/v1/nodes/gpu-01", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        v["health_reason"],
        json!({"rule": "fatal-xid", "reason": "rule fatal-xid: XID 79 on GPU 3",
               "since": "2026-11-18T11:07:40.000Z", "by": "policy:fatal-xid"})
    );
    let text = gpuwarden_controlplane::cli::node_view(&v);
    for want in [
        "health.rule",
        "fatal-xid",
        "XID 79 on GPU 3",
        "2026-11-18T11:07:40.000Z",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
}

#[actix_web::test]
async fn a_node_created_with_an_address_is_scraped_while_pending() {
    let e = env(false);
    let app = app!(e);
    let before = counts(&e.store);
    let (st, n) = send(
        &app,
        "POST",
        "/v1/nodes",
        Some(ADMIN),
        Some(json!({"name": "gpu-01", "address": "http://10.0.0.5:9410/"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{n}");
    assert_eq!(n["status"], "pending");
    assert_eq!(n["address"], "http://10.0.0.5:9410");
    let id = n["id"].as_str().unwrap();
    let t = e.data.fleet.get(id).expect("a scrape target");
    assert_eq!(t.address, "http://10.0.0.5:9410");
    assert_eq!(counts(&e.store)[0], before[0] + 1);
    // Without an address there is nothing to scrape.
    let (_, n) = send(
        &app,
        "POST",
        "/v1/nodes",
        Some(ADMIN),
        Some(json!({"name": "gpu-02"})),
    )
    .await;
    assert!(e.data.fleet.get(n["id"].as_str().unwrap()).is_none());
}

#[actix_web::test]
async fn event_times_with_an_utc_offset_are_rfc_3339_too() {
    let e = env(false);
    let app = app!(e);
    send(
        &app,
        "POST",
        "/v1/nodes",
        Some(ADMIN),
        Some(json!({"name": "gpu-01"})),
    )
    .await;
    // Found by schemathesis: a valid date-time with an offset was refused with 400.
    for since in ["2026-01-01T00:00:00%2B01:00", "4910-02-03T20:53:25-15:17"] {
        let (st, v) = send(
            &app,
            "GET",
            &format!("/v1/nodes/gpu-01/events?since={since}"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{since}: {v}");
    }
}

/// A node the pool manager holds in service (its remediation budget is full) says so and why
/// in `GET /v1/nodes/{id}`; released, the field is gone.
#[actix_web::test]
async fn a_held_node_shows_why_it_is_held() {
    let e = env(false);
    let app = app!(e);
    let id = create_node(&app, "held-1").await;
    let (_, v) = send(&app, "GET", &format!("/v1/nodes/{id}"), Some(ADMIN), None).await;
    assert!(v.get("held").is_none(), "{v}");
    let reason = "pool remediation budget full: 2 of the pool's nodes already out of service";
    e.data
        .links
        .held
        .set_pool("default", &[(id.clone(), reason.to_string())], 0);
    let (st, v) = send(&app, "GET", &format!("/v1/nodes/{id}"), Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["held"], reason);
    e.data.links.held.set_pool("default", &[], 1);
    let (_, v) = send(&app, "GET", &format!("/v1/nodes/{id}"), Some(ADMIN), None).await;
    assert!(v.get("held").is_none(), "{v}");
}
