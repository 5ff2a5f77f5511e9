//! `[console]`: the web console at `/ui/` (docs/console.md).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[console]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console at `/ui/` (default true).
    pub enabled: bool,
    /// How long a console session lasts after sign-in (default 12h; 1m to 30d).
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Sessions held at once (default 10000); past it the oldest is signed out.
    pub max_sessions: usize,
    /// How far back the node page's charts reach (default 1h; 1m to 24h).
    #[serde(with = "humantime_serde")]
    pub history: Duration,
    /// Shortest time between two chart points of a node (default 30s; 1s to `history`).
    #[serde(with = "humantime_serde")]
    pub history_step: Duration,
    /// Memory for every node's chart points together (default 64 MiB; 0 keeps none). At
    /// 8 GPUs a node, a point is about 190 bytes: 1 h at 30 s is ~23 KiB a node, so the
    /// default holds ~2,800 nodes; nodes past it show no chart unless `prometheus_url` is set.
    pub history_max_bytes: usize,
    /// A Prometheus server that scrapes the agents (`http://host:9090`): when set, the charts
    /// come from its `query_range` API instead of the memory ring. Empty: the ring.
    pub prometheus_url: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_ttl: Duration::from_secs(12 * 3600),
            max_sessions: 10_000,
            history: Duration::from_secs(3600),
            history_step: Duration::from_secs(30),
            history_max_bytes: 64 << 20,
            prometheus_url: String::new(),
        }
    }
}

impl ConsoleConfig {
    /// Every problem, a line each with its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let within = |d: Duration, lo: u64, hi: u64| (lo..=hi).contains(&d.as_secs());
        if !within(self.session_ttl, 60, 30 * 86_400) {
            p.push("console.session_ttl: must be between 1m and 30d".into());
        }
        if !(1..=1_000_000).contains(&self.max_sessions) {
            p.push(format!(
                "console.max_sessions: {} is not between 1 and 1000000",
                self.max_sessions
            ));
        }
        if !within(self.history, 60, 86_400) {
            p.push("console.history: must be between 1m and 24h".into());
        }
        if self.history_step < Duration::from_secs(1) || self.history_step > self.history {
            p.push("console.history_step: must be at least 1s and at most console.history".into());
        }
        if !self.prometheus_url.is_empty() {
            if let Err(e) = crate::validate::base_url(&self.prometheus_url) {
                p.push(format!("console.prometheus_url: {e}"));
            }
        }
        p
    }
}
