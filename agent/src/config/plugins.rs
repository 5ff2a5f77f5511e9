//! `[plugin]` and `[[plugins]]`: the WebAssembly plugins and their limits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[plugin]`: limits and defaults shared by every plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginDefaults {
    /// Where compiled plugins are cached (by content hash) so restarts do not recompile.
    /// Empty: no cache.
    pub cache_dir: PathBuf,
    /// Deadline of a health check run, wall-clock (instantiation and call): the run is
    /// stopped then, whatever the plugin is doing.
    #[serde(with = "humantime_serde")]
    pub check_timeout: Duration,
    /// Deadline of a diagnostic run, wall-clock.
    #[serde(with = "humantime_serde")]
    pub diagnostic_timeout: Duration,
    /// How often health checks run.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Memory cap per plugin instance, MiB (at most 256).
    pub memory_limit_mib: u32,
    /// Largest report accepted, bytes of text.
    pub report_max_bytes: usize,
    /// Host `log` lines kept per run; more are dropped and counted.
    pub log_max_lines: usize,
    /// stdout + stderr bytes a run may write; more traps the plugin.
    pub output_max_bytes: usize,
    /// How often plugin files and the config file are checked for changes where their
    /// folder cannot be watched (inotify tells of changes everywhere else).
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    /// Use wasmtime's pooling allocator (falls back to on-demand when the host cannot
    /// reserve its address space).
    pub pooling: bool,
    /// On-demand runs (`POST /v1/plugins/{name}/run`, `run-diagnostic` commands) of one
    /// plugin that may be in progress at once (1 to [`MAX_CONCURRENT_RUNS`]); more are
    /// refused as busy (HTTP 429). All plugins' on-demand runs together hold at most 16
    /// instances, so the health checks always have theirs.
    pub max_concurrent_runs: u32,
}

/// The largest `[plugin] max_concurrent_runs`.
pub const MAX_CONCURRENT_RUNS: u32 = 16;

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// World `health-check`: runs on an interval.
    Check,
    /// World `diagnostic`: runs on demand.
    Diagnostic,
}

/// A plugin configuration value: string, number or boolean (passed to the plugin as text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PluginValue {
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Number.
    Float(f64),
    /// Text.
    Text(String),
}

impl std::fmt::Display for PluginValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginValue::Bool(b) => write!(f, "{b}"),
            PluginValue::Int(i) => write!(f, "{i}"),
            PluginValue::Float(x) => write!(f, "{x}"),
            PluginValue::Text(s) => f.write_str(s),
        }
    }
}

/// `[[plugins]]`: one plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    /// Unique name: the `check` label of its metrics and the `{name}` of its endpoints.
    pub name: String,
    /// The `.wasm` component; relative paths are relative to the config file.
    pub path: PathBuf,
    /// Its sha256 (hex), as `gpuwarden-agent plugin digest FILE` prints it. Required.
    pub sha256: String,
    /// Expected world; when set, a component of the other world is refused.
    #[serde(default)]
    pub kind: Option<PluginKind>,
    /// Run interval of a health check (default `[plugin] interval`).
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Wall-clock deadline per run (default by kind from `[plugin]`).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Memory cap, MiB (default `[plugin] memory_limit_mib`).
    #[serde(default)]
    pub memory_limit_mib: Option<u32>,
    /// Plugin-specific values, read by the plugin through `host.config()`.
    #[serde(default)]
    pub config: BTreeMap<String, PluginValue>,
    /// Assigned by the control plane (not in the config file): a new version must also
    /// pass a first run before it replaces the running one.
    #[serde(skip)]
    pub assigned: bool,
}

/// The largest memory cap a plugin may ask for, MiB.
pub const MAX_PLUGIN_MEMORY_MIB: u32 = 256;

/// Plugin names: 1–64 of letters, digits, `-`, `_`.
pub fn valid_plugin_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests;
