//! `/v1/fake/inject` and `/v1/fake/clear` (fake GPUs only): who may call them, and the
//! handlers.

use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::state::{collect_now, ApiError, AppState, Peer};
use crate::backend::fake::{FakeBackend, InjectRequest};

fn fake_of(state: &AppState) -> Result<&Arc<FakeBackend>, ApiError> {
    state
        .fake
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "fake GPUs are off"))
}

/// Who may inject and clear faults: anyone on the node itself (a loopback peer, as the quick
/// start's `curl localhost` is), and from elsewhere only the holder of the node credential
/// that `/v1/commands` takes. An agent listening on `0.0.0.0` with fake GPUs does not hand
/// fault injection to the network.
fn fake_caller<'s>(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    state: &'s AppState,
) -> Result<&'s Arc<FakeBackend>, ApiError> {
    let fake = fake_of(state)?;
    let local = peer.is_some_and(|a| a.ip().to_canonical().is_loopback());
    if local {
        return Ok(fake);
    }
    match super::state::node_credential(headers, state) {
        Some(true) => Ok(fake),
        Some(false) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "from another host, /v1/fake/* needs the node credential that /v1/commands takes (the digest of this node's token) as the bearer",
        )),
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "from another host, /v1/fake/* needs the node credential, and this agent has none (it has not joined a control plane): call it from the node itself",
        )),
    }
}

pub(super) async fn inject(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    body: super::body::JsonBody,
) -> Result<Response, ApiError> {
    let fake = fake_caller(peer.map(|p| p.0 .0), &headers, &state)?;
    let body: InjectRequest = serde_json::from_slice(&body.0).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid JSON body: {e}"),
        )
    })?;
    let fault = body
        .to_fault()
        .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_fault", m))?;
    fake.inject(body.gpu, fault.clone()).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_fault",
            e.to_string(),
        )
    })?;
    tracing::info!(gpu = body.gpu, fault = ?fault, "fault injected");
    collect_now(&state).await?;
    Ok(
        Json(serde_json::json!({"gpu": body.gpu, "fault": body.fault, "injected": true}))
            .into_response(),
    )
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ClearRequest {
    gpu: Option<u32>,
}

pub(super) async fn clear(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    body: super::body::JsonBody,
) -> Result<Response, ApiError> {
    let fake = fake_caller(peer.map(|p| p.0 .0), &headers, &state)?;
    let req: ClearRequest = if body.is_blank() {
        ClearRequest::default()
    } else {
        serde_json::from_slice(&body.0).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("invalid JSON body: {e}"),
            )
        })?
    };
    fake.clear(req.gpu).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_fault",
            e.to_string(),
        )
    })?;
    tracing::info!(gpu = ?req.gpu, "faults cleared");
    collect_now(&state).await?;
    Ok(
        Json(serde_json::json!({"cleared": req.gpu.map_or("all".to_string(), |g| g.to_string())}))
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::router;
    use super::super::tests::{call, json, request, state};
    use super::*;

    const JSON: (&str, &str) = ("Content-Type", "application/json");

    #[tokio::test]
    async fn fake_endpoints_exist_only_with_the_fake_backend() {
        let app = router(state(None));
        let body = serde_json::json!({"gpu":0,"fault":"xid","code":79}).to_string();
        let req = request("POST", "/v1/fake/inject", &[JSON], None, body);
        let resp = call(&app, req).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let body = json(resp).await;
        assert_eq!(body["error"]["code"], "not_found");
    }

    /// A body its `Content-Encoding` cannot decode gets a clear JSON 400, not the
    /// decoder's debug text.
    #[tokio::test]
    async fn an_undecodable_body_gets_a_clear_json_error() {
        use crate::backend::fake::DEFAULT_MODEL;
        let fake = Arc::new(FakeBackend::new(1, DEFAULT_MODEL, 1));
        let app = router(state(Some(fake)));
        let req = request(
            "POST",
            "/v1/fake/inject",
            &[JSON, ("Content-Encoding", "gzip")],
            Some("127.0.0.1:40000"),
            b"\x1f\x8b\x08\x00not gzip".to_vec(),
        );
        let resp = call(&app, req).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body = json(resp).await;
        let m = body["error"]["message"].as_str().unwrap();
        assert!(
            m.contains("decoded") && !m.contains("Custom") && !m.contains("Some("),
            "{m}"
        );
    }

    #[tokio::test]
    async fn a_stopped_collector_turns_injection_into_a_clear_error() {
        use crate::backend::fake::DEFAULT_MODEL;
        let fake = Arc::new(FakeBackend::new(1, DEFAULT_MODEL, 1));
        let app = router(state(Some(fake)));
        let body = serde_json::json!({"gpu":0,"fault":"temperature","value":90}).to_string();
        let req = request(
            "POST",
            "/v1/fake/inject",
            &[JSON],
            Some("127.0.0.1:40000"),
            body,
        );
        let resp = call(&app, req).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    /// Issue: an agent with fake GPUs listening on 0.0.0.0 offered fault injection to the
    /// network without a credential. The node itself keeps it without one; other hosts need
    /// the node credential of `/v1/commands`.
    #[tokio::test]
    async fn fault_injection_from_another_host_needs_the_node_credential() {
        use crate::backend::fake::DEFAULT_MODEL;
        use sha2::Digest;
        let fake = Arc::new(FakeBackend::new(1, DEFAULT_MODEL, 1));
        let st = state(Some(fake));
        let auth = st.command_auth.clone();
        let app = router(st);
        let req = |peer: &str, path: &str, bearer: Option<&str>| {
            let body = if path.ends_with("inject") {
                serde_json::json!({"gpu":0,"fault":"xid","code":79})
            } else {
                serde_json::json!({"gpu":0})
            };
            let auth = bearer.map(|b| format!("Bearer {b}"));
            let mut headers = vec![JSON];
            headers.extend(auth.as_deref().map(|a| ("Authorization", a)));
            request("POST", path, &headers, Some(peer), body.to_string())
        };
        // The test's collector is stopped: 503 means the caller was let through.
        let through = StatusCode::SERVICE_UNAVAILABLE;
        for path in ["/v1/fake/inject", "/v1/fake/clear"] {
            for local in ["127.0.0.1:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"] {
                let r = call(&app, req(local, path, None)).await;
                assert_eq!(r.status(), through, "{path} from {local}");
            }
            // Not joined yet: no credential exists, other hosts are refused.
            let r = call(&app, req("10.1.2.3:5000", path, None)).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
            let body = json(r).await;
            assert_eq!(body["error"]["code"], "forbidden");
        }
        auth.set_token("gwn_node_token");
        let digest: String = sha2::Sha256::digest(b"gwn_node_token")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        for path in ["/v1/fake/inject", "/v1/fake/clear"] {
            let r = call(&app, req("10.1.2.3:5000", path, None)).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
            let r = call(&app, req("10.1.2.3:5000", path, Some("gwn_node_token"))).await;
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "the token itself is not the credential"
            );
            let r = call(&app, req("10.1.2.3:5000", path, Some(&digest))).await;
            assert_eq!(r.status(), through, "{path} with the credential");
        }
    }
}
