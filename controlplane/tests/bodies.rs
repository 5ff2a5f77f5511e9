//! Request bodies: every body-taking endpoint refuses a malformed, wrongly typed, unknown,
//! non-JSON or oversized body with a JSON error, and writes nothing (not even an audit
//! entry: the body is refused before the handler runs).

use actix_web::http::StatusCode;
use actix_web::test::{call_service, read_body, TestRequest};
use serde_json::{json, Value};

use crate::api::{app, counts, create_node, env, error_code, send, ADMIN, BOOT};

/// Sends `body` raw with `content_type`; the status and the answer as JSON (`Null` when
/// the answer is not JSON, which the callers treat as a failure).
pub(crate) async fn raw<S>(
    app: &S,
    method: &str,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
{
    let mut req = match method {
        "PUT" => TestRequest::put(),
        _ => TestRequest::post(),
    }
    .uri(path)
    .insert_header(("Authorization", format!("Bearer {token}")));
    if let Some(ct) = content_type {
        req = req.insert_header(("Content-Type", ct));
    }
    let resp = call_service(app, req.set_payload(body).to_request()).await;
    let status = resp.status();
    let bytes = read_body(resp).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// What a bad body is, its content type, the body, and the status and code it gets.
type Case = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    StatusCode,
    &'static str,
);

#[actix_web::test]
async fn every_body_taking_endpoint_refuses_bad_bodies_with_json_errors_and_writes_nothing() {
    let e = env(true);
    let app = app!(e);
    let id = create_node(&app, "gpu-01").await;
    // Each endpoint with a body of the right shape but a wrongly typed field.
    let endpoints: Vec<(&str, String, &str, Value)> = vec![
        ("POST", "/v1/nodes".into(), ADMIN, json!({"name": 5})),
        (
            "POST",
            format!("/v1/nodes/{id}/token"),
            ADMIN,
            json!({"ttl": 3600}),
        ),
        (
            "POST",
            format!("/v1/nodes/{id}/cordon"),
            ADMIN,
            json!({"reason": ["x"]}),
        ),
        (
            "POST",
            format!("/v1/nodes/{id}/uncordon"),
            ADMIN,
            json!({"reason": true}),
        ),
        (
            "POST",
            format!("/v1/nodes/{id}/drain"),
            ADMIN,
            json!({"timeout": 5, "reason": "drain with a number for a timeout"}),
        ),
        (
            "POST",
            format!("/v1/nodes/{id}/terminate"),
            ADMIN,
            json!({"reason": 1}),
        ),
        (
            "POST",
            format!("/v1/nodes/{id}/diagnose"),
            ADMIN,
            json!({"args": ["a"]}),
        ),
        (
            "POST",
            format!("/v1/nodes/{id}/clear-health"),
            ADMIN,
            json!({"force": true}),
        ),
        (
            "POST",
            format!("/v1/nodes/{id}/expected-gpus"),
            ADMIN,
            json!({"gpus": "eight"}),
        ),
        (
            "POST",
            "/v1/nodes/register".into(),
            BOOT,
            json!({"name": "gpu-02", "address": 9410}),
        ),
        (
            "POST",
            "/v1/policies/simulate".into(),
            ADMIN,
            json!({"policy": 1}),
        ),
        (
            "POST",
            "/v1/pools".into(),
            ADMIN,
            json!({"name": "p", "provider": "local", "min_nodes": "two", "max_nodes": 4}),
        ),
        (
            "PUT",
            "/v1/pools/p".into(),
            ADMIN,
            json!({"name": "p", "provider": "local", "min_nodes": 0, "max_nodes": [4]}),
        ),
        (
            "POST",
            "/v1/pools/p/scale".into(),
            ADMIN,
            json!({"nodes": "3"}),
        ),
        (
            "PUT",
            "/v1/pools/p/demand".into(),
            ADMIN,
            json!({"pending_jobs": 1.5}),
        ),
    ];
    let before = counts(&e.store);
    let huge = vec![b' '; 10 << 20];
    for (m, p, token, wrong) in &endpoints {
        let cases: Vec<Case> = vec![
            (
                "not JSON",
                Some("application/json"),
                b"{not json".to_vec(),
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "an array",
                Some("application/json"),
                b"[]".to_vec(),
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "an unknown field",
                Some("application/json"),
                br#"{"colour": "red"}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "a wrongly typed field",
                Some("application/json"),
                wrong.to_string().into_bytes(),
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "text/plain",
                Some("text/plain"),
                b"{}".to_vec(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            (
                "10 MB",
                Some("application/json"),
                huge.clone(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
            ),
        ];
        for (what, ct, body, want, code) in cases {
            let (st, v) = raw(&app, m, p, token, ct, body).await;
            assert_eq!(st, want, "{m} {p} with {what}: {v}");
            assert_eq!(error_code(&v), code, "{m} {p} with {what}");
        }
    }
    // The policy documents are text: the same limit, and UTF-8.
    for (m, p) in [("POST", "/v1/policies/validate"), ("PUT", "/v1/policies")] {
        let (st, v) = raw(&app, m, p, ADMIN, Some("application/toml"), huge.clone()).await;
        assert_eq!(
            (st, error_code(&v)),
            (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            "{p}"
        );
        let (st, v) = raw(&app, m, p, ADMIN, None, vec![0xff, 0xfe]).await;
        assert_eq!(
            (st, error_code(&v)),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{p}"
        );
    }
    assert_eq!(counts(&e.store), before, "refused bodies wrote nothing");
    let (_, n) = send(&app, "GET", &format!("/v1/nodes/{id}"), Some(ADMIN), None).await;
    assert_eq!(n["status"], "pending", "no step was taken");

    // Where a body is optional, none at all, `{}` and JSON null (the document marks optional
    // bodies nullable) still work.
    let optional: [(String, Option<&str>, &[u8], StatusCode); 4] = [
        (
            format!("/v1/nodes/{id}/token"),
            None,
            b"",
            StatusCode::CREATED,
        ),
        (
            format!("/v1/nodes/{id}/clear-health"),
            Some("application/json"),
            b"{}",
            StatusCode::OK,
        ),
        (
            format!("/v1/nodes/{id}/terminate"),
            None,
            b"",
            StatusCode::ACCEPTED,
        ),
        (
            format!("/v1/nodes/{id}/clear-health"),
            Some("application/json"),
            b"null",
            StatusCode::OK,
        ),
    ];
    for (path, ct, body, want) in optional {
        let (st, v) = raw(&app, "POST", &path, ADMIN, ct, body.to_vec()).await;
        assert_eq!(st, want, "{path} {:?}: {v}", String::from_utf8_lossy(body));
    }
    // A required body may not be left out.
    let (st, v) = raw(&app, "POST", "/v1/nodes", ADMIN, None, vec![]).await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
}

#[actix_web::test]
async fn a_drain_with_a_numeric_timeout_is_refused_not_run_with_the_defaults() {
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
    let (st, v) = send(
        &app,
        "POST",
        "/v1/nodes/gpu-01/drain",
        Some(ADMIN),
        Some(json!({"timeout": 5, "reason": "maintenance"})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("invalid type"), "{message}");
    let (_, c) = send(&app, "GET", "/v1/nodes/gpu-01/commands", Some(ADMIN), None).await;
    assert_eq!(c["commands"], json!([]), "nothing was queued");
}

/// Hardening follow-up: a body under `Content-Encoding: gzip` that is no gzip got the Rust
/// debug text of the decoder's error (`Some(Custom { kind: InvalidInput … })`).
#[actix_web::test]
async fn an_undecodable_body_gets_a_clear_json_error() {
    let e = env(true);
    let app = app!(e);
    let req = TestRequest::post()
        .uri("/v1/nodes")
        .insert_header(("Authorization", format!("Bearer {ADMIN}")))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Content-Encoding", "gzip"))
        .set_payload(b"\x1f\x8b\x08\x00not gzip at all".to_vec())
        .to_request();
    let resp = call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = serde_json::from_slice(&read_body(resp).await).unwrap();
    let m = v["error"]["message"].as_str().unwrap();
    assert_eq!(v["error"]["code"], "bad_request");
    assert!(m.contains("gzip") && m.contains("decoded"), "{m}");
    assert!(!m.contains("Custom") && !m.contains("Some("), "{m}");
}

/// Hardening follow-up: a cordon reason with a newline, ESC and BEL was stored and
/// printed raw by `gpuwarden nodes history`. Free text with control characters is refused.
#[actix_web::test]
async fn a_reason_with_control_characters_is_refused() {
    let e = env(true);
    let app = app!(e);
    let id = create_node(&app, "gpu-01").await;
    let (st, v) = send(
        &app,
        "POST",
        &format!("/v1/nodes/{id}/cordon"),
        Some(ADMIN),
        Some(json!({"reason": "line1\nFAKE-ROW\u{1b}[31mred\u{7}"})),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("control character"),
        "{v}"
    );
    let (_, n) = send(&app, "GET", &format!("/v1/nodes/{id}"), Some(ADMIN), None).await;
    assert_eq!(n["status"], "pending", "{n}");
}
