//! Plugins distributed from the control plane: what an agent runs and what it is asked to
//! run. The agent sends a [`PluginReport`] with `POST /v1/nodes/{id}/plugins` (its node
//! token) right after it registers and at every check of its registration; the answer is its
//! [`PluginAssignment`]. It fetches each component it lacks with `GET /v1/blobs/{digest}`
//! (the node token again) and verifies the SHA-256 before anything else.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most plugins one report or one assignment holds.
pub const MAX_PLUGINS: usize = 256;

/// Where a running plugin came from.
pub const SOURCE_ASSIGNED: &str = "assigned";
/// A plugin of the agent's own config file (`[[plugins]]`).
pub const SOURCE_LOCAL: &str = "local";

/// Body of `POST /v1/nodes/{id}/plugins`: every plugin of the agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PluginReport {
    /// At most [`MAX_PLUGINS`].
    pub plugins: Vec<RunningPlugin>,
}

/// One plugin as the agent runs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunningPlugin {
    /// Its name (the `check` label of its metrics).
    pub name: String,
    /// [`SOURCE_ASSIGNED`] or [`SOURCE_LOCAL`].
    pub source: String,
    /// The digest of the version running, `sha256:<64 hex>`; absent when none is loaded.
    #[serde(default)]
    pub running: Option<String>,
    /// The last result: `healthy`, `degraded`, `unhealthy` or `unknown`; absent before the
    /// first run.
    #[serde(default)]
    pub status: Option<String>,
    /// The last result's message.
    #[serde(default)]
    pub message: String,
    /// Why the version asked for does not run (a digest that does not match, a component
    /// that does not compile or whose first run failed); the previous version, if any,
    /// keeps running.
    #[serde(default)]
    pub error: Option<String>,
}

/// Answer of `POST /v1/nodes/{id}/plugins`: the plugins the control plane assigns to this
/// node (its pool's, and those assigned to every node).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginAssignment {
    /// At most [`MAX_PLUGINS`], by name.
    pub plugins: Vec<AssignedPlugin>,
}

/// One assigned plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssignedPlugin {
    /// Its name on the agent.
    pub name: String,
    /// The component, `sha256:<64 hex>`: `GET /v1/blobs/{digest}`.
    pub digest: String,
    /// Its config values (`host.config()`).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Run interval, seconds (absent: the agent's `[plugin] interval`).
    #[serde(default)]
    pub interval_seconds: Option<f64>,
    /// Deadline of a run, seconds (absent: the agent's default for its kind).
    #[serde(default)]
    pub timeout_seconds: Option<f64>,
    /// Memory cap, MiB (absent: the agent's `[plugin] memory_limit_mib`).
    #[serde(default)]
    pub memory_limit_mib: Option<u32>,
}

/// Whether `s` is `sha256:` and 64 lower-case hex digits.
pub fn valid_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(valid_sha256_hex)
}

/// Whether `h` is 64 lower-case hex digits: a SHA-256 as the agent names files by it
/// (fetched components `HEX.wasm`, compile-cache entries `HEX-ENGINE.cwasm`).
pub fn valid_sha256_hex(h: &str) -> bool {
    h.len() == 64 && lower_hex(h)
}

/// Whether every byte of `s` is a lower-case hex digit (`0-9a-f`).
pub fn lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
