//! A plugin assigned to the nodes of a pool: how `PUT /v1/pools/{name}/plugins` and a pool's
//! `plugins` (in the config file's `[[pools]]` or `POST /v1/pools`) give it, and its checks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The largest memory cap an assignment may give, MiB (the agent's own limit).
pub const MAX_MEMORY_MIB: u32 = 256;
/// Most config values of one assigned plugin.
pub const MAX_CONFIG_VALUES: usize = 64;
/// Longest config value, bytes.
pub const MAX_CONFIG_VALUE_BYTES: usize = 4096;

/// One plugin for the nodes of a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginAssign {
    /// The plugin's name on the agents (1–64 letters, digits, `-`, `_`).
    pub name: String,
    /// The component, `sha256:<64 hex>` (`gpuwarden plugins push` prints it). Through
    /// `PUT /v1/pools/{name}/plugins` it may be left out: the newest pushed under `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Config values (`host.config()`): strings, numbers or booleans, at most 64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub config: BTreeMap<String, serde_json::Value>,
    /// Run interval, e.g. `30s` (1s to 24h; absent: the agent's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Deadline of a run, e.g. `2s` (10ms to 10m; absent: the agent's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Memory cap, MiB (1 to 256; absent: the agent's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_mib: Option<u32>,
}

/// A [`PluginAssign`] that passed its checks.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedAssign {
    /// Its name.
    pub name: String,
    /// Its digest, when given.
    pub digest: Option<String>,
    /// Its config values as text.
    pub config: BTreeMap<String, String>,
    /// Interval, ms.
    pub interval_ms: Option<i64>,
    /// Timeout, ms.
    pub timeout_ms: Option<i64>,
    /// Memory cap, MiB.
    pub memory_limit_mib: Option<u32>,
}

/// Plugin names, as the agent takes them: 1–64 letters, digits, `-` and `_`.
pub fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn duration_ms(s: &str, min: Duration, max: Duration) -> Result<i64, String> {
    let d =
        humantime::parse_duration(s).map_err(|e| format!("{:?}: {e} (e.g. 30s)", clip(s, 40)))?;
    if d < min || d > max {
        return Err(format!(
            "{s}: must be {} to {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl PluginAssign {
    /// Every problem as (field, message), the field relative to this entry (`name`,
    /// `config.window`); `digest_required` for a pool spec, which pins each plugin.
    pub fn check(&self, digest_required: bool) -> Result<CheckedAssign, Vec<(String, String)>> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut add = |f: &str, m: String| p.push((f.to_string(), m));
        if !valid_name(&self.name) {
            add(
                "name",
                format!(
                    "{:?}: use 1 to 64 letters, digits, '-' and '_'",
                    clip(&self.name, 80)
                ),
            );
        }
        match &self.digest {
            Some(d) if !gpuwarden_wire::plugin_sync::valid_digest(d) => add(
                "digest",
                format!(
                    "{:?}: expected sha256: and 64 lower-case hex digits",
                    clip(d, 80)
                ),
            ),
            None if digest_required => add(
                "digest",
                "is required: pin the component (gpuwarden plugins push prints its digest)".into(),
            ),
            _ => {}
        }
        if self.config.len() > MAX_CONFIG_VALUES {
            add(
                "config",
                format!("{} values, at most {MAX_CONFIG_VALUES}", self.config.len()),
            );
        }
        let mut config = BTreeMap::new();
        for (k, v) in self.config.iter().take(MAX_CONFIG_VALUES + 1) {
            if k.is_empty() || k.len() > 64 || k.chars().any(char::is_control) {
                add(
                    "config",
                    format!(
                        "key {:?} must be 1 to 64 characters, no control characters",
                        clip(k, 80)
                    ),
                );
                continue;
            }
            let text = match v {
                serde_json::Value::String(t) if t.len() <= MAX_CONFIG_VALUE_BYTES => t.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => {
                    add(
                        &format!("config.{k}"),
                        format!(
                            "a string (at most {MAX_CONFIG_VALUE_BYTES} bytes), a number or a boolean"
                        ),
                    );
                    continue;
                }
            };
            config.insert(k.clone(), text);
        }
        let mut ms = |f: &str, v: &Option<String>, min, max| match v {
            None => None,
            Some(s) => duration_ms(s, min, max).map_err(|e| add(f, e)).ok(),
        };
        let interval_ms = ms(
            "interval",
            &self.interval,
            Duration::from_secs(1),
            Duration::from_secs(24 * 3600),
        );
        let timeout_ms = ms(
            "timeout",
            &self.timeout,
            Duration::from_millis(10),
            Duration::from_secs(600),
        );
        if let Some(m) = self.memory_limit_mib {
            if !(1..=MAX_MEMORY_MIB).contains(&m) {
                add(
                    "memory_limit_mib",
                    format!("{m}: must be 1 to {MAX_MEMORY_MIB}"),
                );
            }
        }
        if !p.is_empty() {
            return Err(p);
        }
        Ok(CheckedAssign {
            name: self.name.clone(),
            digest: self.digest.clone(),
            config,
            interval_ms,
            timeout_ms,
            memory_limit_mib: self.memory_limit_mib,
        })
    }
}
