//! What every handler shares: the state ([`AppState`]), the JSON error ([`ApiError`]), the
//! node-credential check and asking the collector for a fresh snapshot.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::backend::fake::FakeBackend;
use crate::collector::{Msg, SharedSnapshot};
use crate::events::EventLog;
use crate::plugin::manager::PluginManager;

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Latest snapshot.
    pub snapshot: SharedSnapshot,
    /// Event log.
    pub events: Arc<Mutex<EventLog>>,
    /// The fake backend, when in use.
    pub fake: Option<Arc<FakeBackend>>,
    /// The collector's channel.
    pub collector: Sender<Msg>,
    /// The plugins.
    pub plugins: Option<Arc<PluginManager>>,
    /// The command runner.
    pub commands: Option<crate::commands::Commands>,
    /// Who may send commands.
    pub command_auth: Arc<crate::commands::CommandAuth>,
    /// How the reloads of the config file went (`/healthz`).
    pub reload: Option<Arc<crate::config::reload::ReloadStatus>>,
}

/// The address of the client of a request, put in its extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// An API error: status, machine code, human message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// Asks the collector for a fresh snapshot and waits until it is published, so the caller
/// sees the effect of what it just did.
pub(super) async fn collect_now(state: &AppState) -> Result<(), ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    state
        .collector
        .send(Msg::CollectNow(Some(tx)))
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the collector has stopped",
            )
        })?;
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the collector did not answer in 10s",
        )),
    }
}

/// Whether the request's bearer is the node credential that `/v1/commands` takes (the
/// SHA-256, hex, of this node's token): `None` when this agent has no node token yet.
/// Every endpoint that acts on the node checks it through here.
pub(super) fn node_credential(headers: &HeaderMap, state: &AppState) -> Option<bool> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    state.command_auth.check(presented.trim())
}
