//! `POST /v1/nodes/{id}/token`: a join token for a pre-created node, with the agent config,
//! systemd unit and install script that use it (shown once; only the digest is kept).

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

/// A join token lifetime as given (`24h`), checked: 1m to 365d, else 422.
pub fn join_ttl(s: &str) -> Result<Duration, ApiError> {
    validate::duration(s, TTL_RANGE.0, TTL_RANGE.1)
        .map_err(|e| ApiError::invalid(format!("ttl {e}")))
}

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
    /// A `sh` script that installs both and starts the agent (run as root on the node;
    /// `ROOT=DIR` writes under DIR instead, `GPUWARDEN_AGENT_BIN=PATH` copies the binary).
    pub install_script: String,
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

/// The systemd unit of an install snippet: `config/systemd/gpuwarden-agent.service`.
pub const SYSTEMD_UNIT: &str = include_str!("../../../config/systemd/gpuwarden-agent.service");

/// A POSIX `sh` script that installs the agent on a node with `agent_config` and
/// [`SYSTEMD_UNIT`]: it writes `/etc/gpuwarden/agent.toml` (0600) and
/// `/etc/systemd/system/gpuwarden-agent.service` (0644), then enables and starts the unit.
///
/// The agent binary must be at `/usr/local/bin/gpuwarden-agent`, or be named by
/// `GPUWARDEN_AGENT_BIN` (copied there). `ROOT=DIR` installs under `DIR` instead of `/` and
/// leaves systemd alone (to look before installing, and for tests). Run twice, it rewrites
/// the same files. Exit 1, with nothing written, when the binary is missing.
pub fn install_script(name: &str, agent_config: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # Installs the gpuwarden agent for node {name}. Run as root on the node:\n\
         #   sh install.sh                                  (agent at /usr/local/bin/gpuwarden-agent)\n\
         #   GPUWARDEN_AGENT_BIN=./gpuwarden-agent sh install.sh   (copies it there)\n\
         #   ROOT=/tmp/look sh install.sh                   (writes under /tmp/look; systemd untouched)\n\
         # It holds a join token: keep it secret, and run it once.\n\
         set -eu\n\
         ROOT=\"${{ROOT:-}}\"\n\
         BIN=\"$ROOT/usr/local/bin/gpuwarden-agent\"\n\
         if [ -n \"${{GPUWARDEN_AGENT_BIN:-}}\" ]; then\n\
         \x20 [ -x \"$GPUWARDEN_AGENT_BIN\" ] || {{ echo \"install: GPUWARDEN_AGENT_BIN=$GPUWARDEN_AGENT_BIN is not an executable file\" >&2; exit 1; }}\n\
         \x20 mkdir -p \"$ROOT/usr/local/bin\"\n\
         \x20 [ \"$GPUWARDEN_AGENT_BIN\" -ef \"$BIN\" ] || install -m 0755 \"$GPUWARDEN_AGENT_BIN\" \"$BIN\"\n\
         fi\n\
         [ -x \"$BIN\" ] || {{ echo \"install: no agent at $BIN: copy gpuwarden-agent there or set GPUWARDEN_AGENT_BIN=PATH\" >&2; exit 1; }}\n\
         mkdir -p \"$ROOT/etc/gpuwarden\" \"$ROOT/etc/systemd/system\"\n\
         umask 077\n\
         cat > \"$ROOT/etc/gpuwarden/agent.toml.new\" <<'GPUWARDEN_AGENT_TOML'\n\
         {agent_config}\
         GPUWARDEN_AGENT_TOML\n\
         chmod 0600 \"$ROOT/etc/gpuwarden/agent.toml.new\"\n\
         mv -f \"$ROOT/etc/gpuwarden/agent.toml.new\" \"$ROOT/etc/gpuwarden/agent.toml\"\n\
         cat > \"$ROOT/etc/systemd/system/gpuwarden-agent.service.new\" <<'GPUWARDEN_AGENT_UNIT'\n\
         {SYSTEMD_UNIT}\
         GPUWARDEN_AGENT_UNIT\n\
         chmod 0644 \"$ROOT/etc/systemd/system/gpuwarden-agent.service.new\"\n\
         mv -f \"$ROOT/etc/systemd/system/gpuwarden-agent.service.new\" \"$ROOT/etc/systemd/system/gpuwarden-agent.service\"\n\
         \"$BIN\" --check-config \"$ROOT/etc/gpuwarden/agent.toml\" >/dev/null\n\
         if [ -n \"$ROOT\" ]; then\n\
         \x20 echo \"installed under $ROOT (systemd not touched)\"\n\
         else\n\
         \x20 systemctl daemon-reload\n\
         \x20 systemctl enable --now gpuwarden-agent.service\n\
         \x20 echo \"gpuwarden-agent started; it joins as node {name}: journalctl -u gpuwarden-agent\"\n\
         fi\n"
    )
}

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
    let issued = issue_join_token(&state, &admin.0, &key, body.0).await?;
    Ok(HttpResponse::Created().json(issued))
}

/// A join token for node `key` (id or name), issued by `actor` with its install snippets
/// (shown once; only the digest is kept), audited (refusals too). 409 for a terminated node,
/// 422 for a ttl outside 1m to 365d. The REST API's `POST /v1/nodes/{id}/token` and the
/// console's "add a node".
pub async fn issue_join_token(
    state: &AppState,
    actor: &str,
    key: &str,
    req: TokenRequest,
) -> Result<IssuedToken, ApiError> {
    let ttl = req.ttl;
    let details = json!({"ttl": ttl.as_deref().map(|t| clip(t, 64))});
    audited(state, actor, "node.token", key, details, async {
        let ttl = match ttl {
            Some(s) => join_ttl(&s)?,
            None => state.settings.join_token_ttl,
        };
        let row = load(state, key).await?;
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
            actor,
            "node.token",
            &row.id,
            json!({"expires_at": rfc3339(expires)}),
            now,
        );
        let store = state.store.clone();
        blocking(move || store.add_node_token(&t, entry)).await?;
        let agent_config = agent_config_snippet(
            &row.name,
            &row.pool,
            &state.settings.external_url,
            &issued.secret,
        );
        Ok(IssuedToken {
            node_id: row.id.clone(),
            install_script: install_script(&row.name, &agent_config),
            agent_config,
            token: issued.secret,
            expires_at: rfc3339(expires),
            systemd_unit: SYSTEMD_UNIT.to_string(),
        })
    })
    .await
}
