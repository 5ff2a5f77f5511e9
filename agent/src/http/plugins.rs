//! `GET /v1/plugins` (read-only, open) and `POST /v1/plugins/{name}/run`, which acts on the
//! node and so needs the credential of `/v1/commands`: the SHA-256 (hex) of this node's
//! token as the bearer ([`CommandAuth`](crate::commands::CommandAuth)).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::state::{ApiError, AppState};
use crate::plugin::manager::{PluginManager, RunError};

fn plugins_of(state: &AppState) -> Result<&Arc<PluginManager>, ApiError> {
    state
        .plugins
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "plugins are off"))
}

/// `GET /v1/plugins`.
pub(super) async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(serde_json::json!({ "plugins": plugins_of(&state)?.list() })).into_response())
}

/// Checks the bearer of an on-demand run: 401 without the node token's digest, and 401 with
/// how to go on when this agent has no node token at all (a standalone agent).
fn authorize(headers: &HeaderMap, state: &AppState) -> Result<(), ApiError> {
    match super::state::node_credential(headers, state) {
        Some(true) => Ok(()),
        Some(false) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "running a plugin needs the credential of /v1/commands: the SHA-256 (hex) of this node's token as the bearer",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no_node_token",
            "this agent has no node token, so it runs no plugin on request: register it with a control plane \
             (its run-diagnostic commands, or the SHA-256 of the node token as the bearer), or put a token of \
             your own in the file named by [control_plane] token_file and send its SHA-256 as the bearer; \
             to try a plugin against fake GPUs instead, run `gpuwarden-agent plugin test FILE`",
        )),
    }
}

/// 400 for a plugin name that does not decode.
fn bad_path(e: PathRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        format!("invalid path: {}", e.body_text()),
    )
}

/// Diagnostic parameters: a JSON object of strings, numbers and booleans.
fn params_of(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m);
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("parameters must be a JSON object".into()))?;
    obj.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
            serde_json::Value::Number(n) => Ok((k.clone(), n.to_string())),
            serde_json::Value::Bool(b) => Ok((k.clone(), b.to_string())),
            _ => Err(bad(format!(
                "parameter \"{k}\" must be a string, number or boolean"
            ))),
        })
        .collect()
}

/// `POST /v1/plugins/{name}/run`: 200 with the outcome (a failed run is an `unknown`
/// report, not an HTTP error), 401 without the credential, 404 no such plugin, 409 not
/// loaded, 429 busy. A run whose caller went away is stopped: the server drops this
/// handler when the client closes its connection (hyper's `half_close(false)`, see
/// [`serve`](super::serve)), and the run ends at its deadline in any case.
pub(super) async fn run(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: super::body::JsonBody,
) -> Result<Response, ApiError> {
    authorize(&headers, &state)?;
    let Path(name) = path.map_err(bad_path)?;
    let params = params_of(&body.0)?;
    match plugins_of(&state)?.run_now(&name, params).await {
        Ok(outcome) => Ok(Json(outcome).into_response()),
        Err(e @ RunError::NotFound(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            e.to_string(),
        )),
        Err(e @ RunError::NotLoaded(..)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_loaded",
            e.to_string(),
        )),
        Err(e @ RunError::Busy(_)) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            e.to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Body;

    use super::super::tests::{call, json, request};
    use super::*;
    use crate::events::EventLog;

    #[tokio::test]
    async fn an_on_demand_run_needs_the_node_token_digest() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let state = AppState {
            snapshot: Arc::default(),
            events: Arc::new(Mutex::new(EventLog::new(10, "t".into()))),
            fake: None,
            collector: tx,
            plugins: None,
            commands: None,
            command_auth: Arc::default(),
            reload: None,
        };
        let auth = Arc::clone(&state.command_auth);
        let app = super::super::router(state);
        let run = |bearer: Option<&str>| {
            let auth = bearer.map(|b| format!("Bearer {b}"));
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| ("Authorization", a))
                .into_iter()
                .collect();
            request(
                "POST",
                "/v1/plugins/gpu-sanity/run",
                &headers,
                None,
                Body::empty(),
            )
        };
        macro_rules! call {
            ($req:expr) => {{
                let resp = call(&app, $req).await;
                let status = resp.status();
                (status, json(resp).await)
            }};
        }
        // A standalone agent (no node token) refuses and says how to go on.
        let (s, body) = call!(run(None));
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "no_node_token", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("plugin test") && m.contains("token_file")),
            "{body}"
        );
        auth.set_token("gwn_t");
        for bearer in [None, Some("gwn_t"), Some("wrong")] {
            let (s, body) = call!(run(bearer));
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{bearer:?}");
            assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        }
        // With the digest, the request gets past the credential (this app has no plugins).
        let digest: String = <sha2::Sha256 as sha2::Digest>::digest(b"gwn_t")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (s, body) = call!(run(Some(&digest)));
        assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["message"], "plugins are off");
    }
}
