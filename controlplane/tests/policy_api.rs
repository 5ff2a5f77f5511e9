//! Policies through the API (validate, replace, simulate over events recorded in a real
//! store), clearing health, and the command endpoints (`diagnose`, `GET /v1/commands/{id}`).

use actix_web::http::StatusCode;
use actix_web::test::{call_service, read_body, TestRequest};
use gpuwarden_controlplane::clock::{rfc3339, Clock};
use gpuwarden_controlplane::judge::policy::DEFAULT_POLICY;
use gpuwarden_controlplane::store::rows::NewEvent;
use gpuwarden_controlplane::store::Registration;
use serde_json::{json, Value};

use crate::api::{app, create_node, env, send, ADMIN};

fn register(e: &crate::api::Env, name: &str) -> String {
    e.store
        .register(&Registration {
            new_id: format!("node-{name}"),
            name: name.into(),
            pool: Some(
                if name.starts_with("infer") {
                    "infer"
                } else {
                    "train"
                }
                .into(),
            ),
            labels: Default::default(),
            address: format!("http://{name}:9410"),
            capabilities: "{}".into(),
            token_digest: format!("d-{name}"),
            token_expires: None,
            actor: "bootstrap".into(),
            bootstrap: false,
            now: e.clock.now_ms(),
        })
        .unwrap()
        .node
        .id
}

fn xid(node: &str, code: i64, seq: i64, t: i64) -> NewEvent {
    NewEvent {
        node_id: node.into(),
        gpu: Some(0),
        uuid: Some("GPU-0".into()),
        kind: "xid".into(),
        code: Some(code),
        message: format!("XID {code}"),
        severity: "warning".into(),
        action: "ignore".into(),
        time: t,
        agent_instance: "i1".into(),
        agent_seq: seq,
        source: "nvml".into(),
    }
}

const STRICT: &str = r#"
[[rule]]
name = "xid-13-strict"
scope = "event"
when = 'event.kind == "xid" && event.code == 13'
verdict = "unhealthy"
"#;

#[actix_web::test]
async fn a_stricter_candidate_flags_exactly_the_expected_nodes_over_a_recorded_window() {
    let e = env(false);
    let app = app!(e);
    let now = e.clock.now_ms();
    let a = register(&e, "train-a");
    let b = register(&e, "train-b");
    register(&e, "infer-c");
    // Recorded: XID 13 on a (30 min ago), XID 79 on b (2 h ago, outside a 1 h window).
    e.store
        .ingest_events(&a, "i1", 1, &[xid(&a, 13, 1, now - 1_800_000)])
        .unwrap();
    e.store
        .ingest_events(&b, "i1", 1, &[xid(&b, 79, 1, now - 7_200_000)])
        .unwrap();
    let candidate = format!("{DEFAULT_POLICY}\n{STRICT}");

    let (st, v) = send(
        &app,
        "POST",
        "/v1/policies/simulate",
        Some(ADMIN),
        Some(json!({"policy": candidate, "since": "1h"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["nodes_evaluated"], 3, "{v}");
    assert_eq!(
        v["events_evaluated"], 1,
        "the XID 79 lies outside the window: {v}"
    );
    assert_eq!(v["changed"], 1, "{v}");
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
    let n = &v["nodes"][0];
    assert_eq!(n["name"], "train-a");
    assert_eq!(n["current"]["verdict"], "degraded");
    assert_eq!(n["candidate"]["verdict"], "unhealthy");
    assert_eq!(n["candidate"]["rules"][0]["rule"], "xid-13-strict");

    // A wider window sees b too, flagged by both policies; a pool narrows it.
    let since = rfc3339(now - 3 * 3_600_000);
    let (_, v) = send(
        &app,
        "POST",
        "/v1/policies/simulate",
        Some(ADMIN),
        Some(json!({"policy": candidate, "since": since})),
    )
    .await;
    assert_eq!(v["current"]["unhealthy"], 1);
    assert_eq!(v["candidate"]["unhealthy"], 2);
    let (_, v) = send(
        &app,
        "POST",
        "/v1/policies/simulate",
        Some(ADMIN),
        Some(json!({"policy": candidate, "since": since, "pool": "infer"})),
    )
    .await;
    assert_eq!(v["nodes_evaluated"], 1);
    assert_eq!(v["changed"], 0);

    // An invalid candidate: every problem, nothing evaluated; bad windows are refused.
    let (st, v) = send(
        &app,
        "POST",
        "/v1/policies/simulate",
        Some(ADMIN),
        Some(json!({"policy": STRICT.replace("== 13", "== == 13")})),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["rule"], "xid-13-strict");
    let (st, _) = send(
        &app,
        "POST",
        "/v1/policies/simulate",
        Some(ADMIN),
        Some(json!({"policy": STRICT, "since": "yesterday-ish"})),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "422 is for an invalid policy only (its documented shape)"
    );
    let (st, _) = send(
        &app,
        "POST",
        "/v1/policies/simulate",
        None,
        Some(json!({"policy": STRICT})),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn a_diagnostic_is_queued_as_a_command_and_readable_by_id() {
    let e = env(false);
    let app = app!(e);
    register(&e, "train-a");
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/train-a/diagnose",
        Some(ADMIN),
        Some(json!({"plugin": "gpu-burn", "args": {"seconds": "30"}})),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["command"]["kind"], "run_diagnostic");
    assert_eq!(v["command"]["state"], "pending");
    assert_eq!(
        v["node"]["status"], "active",
        "a diagnostic changes no status"
    );
    let id = v["command"]["id"].as_str().unwrap().to_string();
    let (st, c) = send(
        &app,
        "GET",
        &format!("/v1/commands/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(c["params"]["plugin"], "gpu-burn");
    assert_eq!(c["params"]["args"]["seconds"], "30");
    let (st, _) = send(&app, "GET", "/v1/commands/cmd-nope", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let audit = e.store.audit_log(5).unwrap();
    assert!(audit.iter().any(|a| a.action == "node.diagnose"));
    let (st, _) = send(
        &app,
        "POST",
        "/v1/nodes/train-a/diagnose",
        Some(ADMIN),
        Some(json!({"plugin": ""})),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    // Arguments the agent could never take (its body limit is 64 KiB) are refused here, not
    // queued to fail at every delivery.
    let many: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    let long = json!({"k": "x".repeat(1025)});
    for args in [Value::Object(many), long] {
        let (st, body) = send(
            &app,
            "POST",
            "/v1/nodes/train-a/diagnose",
            Some(ADMIN),
            Some(json!({"plugin": "gpu-sanity", "args": args})),
        )
        .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
}

#[actix_web::test]
async fn policies_are_validated_with_every_error_and_its_position() {
    let e = env(false);
    let app = app!(e);
    let post = |body: &'static str, token: Option<&'static str>| {
        let mut r = TestRequest::post()
            .uri("/v1/policies/validate")
            .insert_header(("Content-Type", "application/toml"));
        if let Some(t) = token {
            r = r.insert_header(("Authorization", format!("Bearer {t}")));
        }
        r.set_payload(body).to_request()
    };
    let resp = call_service(
        &app,
        post(
            gpuwarden_controlplane::judge::policy::DEFAULT_POLICY,
            Some(ADMIN),
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = serde_json::from_slice(&read_body(resp).await).unwrap();
    assert_eq!(v["valid"], true);
    assert!(v["rules"].as_u64().unwrap() >= 19);

    let bad = "[[rule]]\nname = \"x\"\nscope = \"gpu\"\nwhen = 'gpu.temprature > 1.0'\nverdict = \"severe\"\n";
    let resp = call_service(&app, post(bad, Some(ADMIN))).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = serde_json::from_slice(&read_body(resp).await).unwrap();
    let errs = v["errors"].as_array().unwrap();
    assert_eq!(errs.len(), 2, "{v}");
    assert!(errs.iter().all(|e| e["rule"] == "x"
        && e["line"].as_u64().unwrap() >= 4
        && e["column"].as_u64().unwrap() >= 1));
    let resp = call_service(&app, post(bad, None)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn clearing_the_health_of_a_node_is_audited() {
    let e = env(true);
    let app = app!(e);
    let id = create_node(&app, "gpu-01").await;
    e.store
        .set_health(
            &id,
            gpuwarden_controlplane::model::Health::Unhealthy,
            "rule fatal-xid: XID 79",
            "policy:fatal-xid",
            1,
        )
        .unwrap();
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/gpu-01/clear-health",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["health"], "unknown",
        "not scraped: nothing to recompute from"
    );
    let (_, h) = send(
        &app,
        "GET",
        &format!("/v1/nodes/{id}/transitions"),
        Some(ADMIN),
        None,
    )
    .await;
    assert!(h["transitions"][0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("cleared by admin:"));
    let (_, a) = send(&app, "GET", "/v1/audit?limit=1", Some(ADMIN), None).await;
    assert_eq!(a["entries"][0]["action"], "node.clear_health");
    assert_eq!(a["entries"][0]["details"]["before"], "unhealthy");
    let (st, _) = send(
        &app,
        "POST",
        "/v1/nodes/nope/clear-health",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_policy_is_replaced_only_by_a_valid_one_and_the_change_is_audited() {
    let e = env(false);
    let app = app!(e);
    let (st, v) = send(&app, "GET", "/v1/policies", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK);
    let before = v["rules"].as_array().unwrap().len();
    assert!(before >= 19);
    assert_eq!(v["rules"][0]["name"], "fatal-xid");
    assert_eq!(
        v["source"],
        gpuwarden_controlplane::judge::policy::DEFAULT_POLICY
    );
    let put = |body: &'static str| {
        TestRequest::put()
            .uri("/v1/policies")
            .insert_header(("Authorization", format!("Bearer {ADMIN}")))
            .set_payload(body)
            .to_request()
    };
    // A broken document changes nothing.
    let resp = call_service(
        &app,
        put(
            "[[rule]]\nname = \"x\"\nscope = \"gpu\"\nwhen = 'gpu.up &&'\nverdict = \"degraded\"\n",
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (_, v) = send(&app, "GET", "/v1/policies", Some(ADMIN), None).await;
    assert_eq!(
        v["rules"].as_array().unwrap().len(),
        before,
        "the running policy is kept"
    );
    // A valid one replaces it at once.
    let resp = call_service(&app, put("[[rule]]\nname = \"hot\"\nscope = \"gpu\"\nwhen = 'has(gpu.temperature_celsius) && gpu.temperature_celsius > 80.0'\nverdict = \"degraded\"\nfor = \"1m\"\n")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, v) = send(&app, "GET", "/v1/policies", Some(ADMIN), None).await;
    let rules = v["rules"].as_array().unwrap();
    assert_eq!(
        (
            rules.len(),
            rules[0]["name"].as_str(),
            rules[0]["for"].as_str()
        ),
        (1, Some("hot"), Some("1m"))
    );
    assert_eq!(
        gpuwarden_controlplane::judge::policy::current(&e.data.policy)
            .rules()
            .len(),
        1,
        "what the scraper evaluates"
    );
    let (_, a) = send(&app, "GET", "/v1/audit?limit=2", Some(ADMIN), None).await;
    assert_eq!(
        (
            a["entries"][0]["action"].as_str(),
            a["entries"][0]["result"].as_str()
        ),
        (Some("policy.put"), Some("ok"))
    );
    assert!(a["entries"][1]["result"]
        .as_str()
        .unwrap()
        .starts_with("rejected"));
}
