//! `POST /v1/nodes/{id}/token`: a join token for a pre-created node, with the agent config
//! and systemd unit that use it (shown once; only the digest is kept).

use std::time::Duration;

use actix_web::{post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::body::OptJson;
use super::caller::Admin;
use super::error::ApiError;
use super::nodes::load;
use super::state::{audited, blocking, clip, AppState};
use crate::clock::rfc3339;
use crate::model::Status;
use crate::store::rows::{NewAudit, NodeTokenRow};
use crate::token::{self, TokenKind};
use crate::validate;

/// Shortest and longest join token lifetime.
const TTL_RANGE: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(365 * 86_400));

/// Body of `POST /v1/nodes/{id}/token`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Lifetime, like `24h` (default `auth.join_token_ttl`).
    #[serde(default)]
    pub ttl: Option<String>,
}

/// Answer of `POST /v1/nodes/{id}/token`: shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    /// The node.
    pub node_id: String,
    /// The token; only its digest is kept.
    pub token: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
    /// Agent config that joins this node (`/etc/gpuwarden/agent.toml`).
    pub agent_config: String,
    /// A systemd unit that runs the agent with it.
    pub systemd_unit: String,
}

/// The agent config of an install snippet.
pub fn agent_config_snippet(name: &str, pool: &str, url: &str, token: &str) -> String {
    format!(
        "# gpuwarden agent config for node {name}: /etc/gpuwarden/agent.toml (mode 0600)\n\
         [node]\nid = \"{name}\"\n\
         # What the agent keeps across restarts. The node token that registration issues is\n\
         # kept here (node-token, mode 0600): the join token below works once, and every later\n\
         # start rejoins with the kept node token.\n\
         state_dir = \"/var/lib/gpuwarden-agent\"\n\n\
         [control_plane]\n\
         # Where the agent registers; it then serves /metrics for the control plane to scrape.\n\
         url = \"{url}\"\n\
         # Join token for this node only. Registration exchanges it for a node token.\n\
         token = \"{token}\"\n\
         pool = \"{pool}\"\n\
         # The URL the control plane scrapes; empty derives it from server.listen.\n\
         advertise = \"\"\n\n\
         [gpu]\nbackend = \"nvml\"\n"
    )
}

/// The systemd unit of an install snippet.
pub const SYSTEMD_UNIT: &str = "# /etc/systemd/system/gpuwarden-agent.service\n\
[Unit]\n\
Description=gpuwarden agent (GPU health and metrics)\n\
Wants=network-online.target\n\
After=network-online.target nvidia-persistenced.service\n\n\
[Service]\n\
ExecStart=/usr/local/bin/gpuwarden-agent --config /etc/gpuwarden/agent.toml\n\
# /var/lib/gpuwarden-agent (node.state_dir): the node token and the agent's other state.\n\
StateDirectory=gpuwarden-agent\n\
StateDirectoryMode=0700\n\
Restart=always\n\
RestartSec=5\n\
# 78: the control plane refused every credential (a spent join token and no kept node\n\
# token); restarting cannot help: see `journalctl -u gpuwarden-agent`, issue a new join token.\n\
RestartPreventExitStatus=78\n\
# Graceful stop deregisters the node.\n\
KillSignal=SIGTERM\n\
TimeoutStopSec=30\n\n\
[Install]\n\
WantedBy=multi-user.target\n";

#[utoipa::path(
    post, path = "/v1/nodes/{id}/token",
    params(("id" = String, Path, description = "Node id or name")),
    request_body(content = Option<TokenRequest>, description = "Optional: none means the defaults"),
    description = "Issues a join token for the node (ttl 1m to 365d). A refused request is audited with its reason.",
    responses((status = 201, body = IssuedToken), (status = 400), (status = 401), (status = 404), (status = 409, description = "The node is terminated"), (status = 422, description = "Bad ttl"))
)]
#[post("/v1/nodes/{id}/token")]
pub(super) async fn issue_token(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: OptJson<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = id.into_inner();
    let ttl = body.0.ttl;
    let details = json!({"ttl": ttl.as_deref().map(|t| clip(t, 64))});
    audited(&state, &admin.0, "node.token", &key, details, async {
        let ttl = match ttl {
            Some(s) => validate::duration(&s, TTL_RANGE.0, TTL_RANGE.1)
                .map_err(|e| ApiError::invalid(format!("ttl {e}")))?,
            None => state.settings.join_token_ttl,
        };
        let row = load(&state, &key).await?;
        if row.status()? == Status::Terminated {
            return Err(ApiError::new(
                actix_web::http::StatusCode::CONFLICT,
                "conflict",
                "the node is terminated; create a new one",
            ));
        }
        let now = state.clock.now_ms();
        let expires = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let issued = token::issue(TokenKind::Node)?;
        let t = NodeTokenRow {
            digest: issued.digest.clone(),
            node_id: row.id.clone(),
            created_at: now,
            expires_at: Some(expires),
        };
        let entry = NewAudit::ok(
            &admin.0,
            "node.token",
            &row.id,
            json!({"expires_at": rfc3339(expires)}),
            now,
        );
        let store = state.store.clone();
        blocking(move || store.add_node_token(&t, entry)).await?;
        Ok(HttpResponse::Created().json(IssuedToken {
            node_id: row.id.clone(),
            agent_config: agent_config_snippet(
                &row.name,
                &row.pool,
                &state.settings.external_url,
                &issued.secret,
            ),
            token: issued.secret,
            expires_at: rfc3339(expires),
            systemd_unit: SYSTEMD_UNIT.to_string(),
        }))
    })
    .await
}
