//! `[remediation]`, `[commands]` and `[[webhooks]]`: what the control plane does about an
//! unhealthy node, how it delivers commands to the agents, and whom it tells.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::model::pool::Plan;

/// The plan of one pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolRemediation {
    /// What to do (default: the global `action`).
    #[serde(default)]
    pub action: Option<Plan>,
    /// Longest a drain may take (default: the global `drain_timeout`).
    #[serde(default, with = "humantime_serde")]
    pub drain_timeout: Option<Duration>,
}

/// `[remediation]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemediationConfig {
    /// What to do with an unhealthy node: `nothing`, `cordon`, `cordon_drain` or
    /// `cordon_drain_terminate`.
    pub action: Plan,
    /// Longest a drain may take before the next step goes ahead anyway.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Per-pool plans (`[remediation.pools.NAME]`), over the global one.
    pub pools: BTreeMap<String, PoolRemediation>,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        Self {
            action: Plan::Cordon,
            drain_timeout: Duration::from_secs(30 * 60),
            pools: BTreeMap::new(),
        }
    }
}

impl RemediationConfig {
    /// The plan and drain timeout of `pool`.
    pub fn for_pool(&self, pool: &str) -> (Plan, Duration) {
        let p = self.pools.get(pool);
        (
            p.and_then(|p| p.action).unwrap_or(self.action),
            p.and_then(|p| p.drain_timeout)
                .unwrap_or(self.drain_timeout),
        )
    }
}

/// `[commands]`: delivering commands to the agents' `POST /v1/commands`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandsConfig {
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Longest one delivery may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Longest wait between attempts to reach an agent (they back off from 1s).
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How often a command the agent is still running (a drain) is asked about again.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// A command no agent took within this long fails.
    #[serde(with = "humantime_serde")]
    pub expire_after: Duration,
}

impl Default for CommandsConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            timeout: Duration::from_secs(10),
            retry_max: Duration::from_secs(60),
            poll_interval: Duration::from_secs(2),
            expire_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// `[[webhooks]]`: where health transitions, remediation steps and command results go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// URL that receives `POST`s of JSON.
    pub url: String,
    /// Key of the `X-Gpuwarden-Signature` HMAC-SHA256; empty: unsigned.
    #[serde(default)]
    pub secret: String,
    /// Which notifications: `health`, `remediation`, `command` (default: all).
    #[serde(default)]
    pub events: Vec<String>,
    /// Attempts per notification before it is dropped (with a log line and a metric).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Longest one attempt may take.
    #[serde(default = "default_webhook_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_attempts() -> u32 {
    5
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The notification kinds.
pub const NOTIFICATION_KINDS: &[&str] = &["health", "remediation", "command"];

/// Problems of these sections, each naming its key.
pub fn problems(r: &RemediationConfig, c: &CommandsConfig, hooks: &[WebhookConfig]) -> Vec<String> {
    let mut p = Vec::new();
    if r.drain_timeout < Duration::from_secs(1) {
        p.push("remediation.drain_timeout: must be at least 1s".into());
    }
    for (name, pr) in &r.pools {
        if pr.drain_timeout.is_some_and(|d| d < Duration::from_secs(1)) {
            p.push(format!(
                "remediation.pools.{name}.drain_timeout: must be at least 1s"
            ));
        }
    }
    if !(1..=1024).contains(&c.concurrency) {
        p.push(format!(
            "commands.concurrency: {} is not between 1 and 1024",
            c.concurrency
        ));
    }
    if c.timeout < Duration::from_millis(100) || c.poll_interval < Duration::from_millis(100) {
        p.push("commands.timeout and commands.poll_interval: must be at least 100ms".into());
    }
    if c.retry_max < Duration::from_secs(1) {
        p.push("commands.retry_max: must be at least 1s".into());
    }
    if c.expire_after < Duration::from_secs(60) {
        p.push("commands.expire_after: must be at least 1m".into());
    }
    for (i, w) in hooks.iter().enumerate() {
        if let Err(e) = crate::validate::webhook_url(&w.url) {
            p.push(format!("webhooks[{i}].url: {e}"));
        }
        for e in &w.events {
            if !NOTIFICATION_KINDS.contains(&e.as_str()) {
                p.push(format!(
                    "webhooks[{i}].events: unknown {e:?}; use {}",
                    NOTIFICATION_KINDS.join(", ")
                ));
            }
        }
        if !(1..=100).contains(&w.max_attempts) {
            p.push(format!(
                "webhooks[{i}].max_attempts: must be between 1 and 100"
            ));
        }
    }
    p
}
