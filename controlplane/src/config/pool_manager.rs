//! `[pool_manager]`: the pool manager's and the instance reconciler's loops (docs/POOLS.md,
//! "The pool manager").

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[pool_manager]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolManagerConfig {
    /// Between two evaluations of every pool.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Between two comparisons of the providers' machines with the database.
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// Longest a provider call may take (provision, terminate, list).
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// The `gpuwarden-agent` the `local` provider runs; empty: beside the `gpuwarden`
    /// executable, else on `PATH`. A pool's `agent_binary` param wins.
    pub agent_binary: PathBuf,
    /// Fleet-wide remediation budget: percentage of all nodes (more than 0, at most 100).
    pub fleet_budget_percent: f64,
    /// Fleet-wide remediation budget: count of nodes.
    pub fleet_budget_nodes: u32,
}

impl Default for PoolManagerConfig {
    fn default() -> Self {
        PoolManagerConfig {
            interval: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(60),
            call_timeout: Duration::from_secs(120),
            agent_binary: PathBuf::new(),
            fleet_budget_percent: 10.0,
            fleet_budget_nodes: 10,
        }
    }
}

impl PoolManagerConfig {
    /// Its problems, as `pool_manager.KEY: …` lines.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        for (key, d, min, max) in [
            (
                "interval",
                self.interval,
                Duration::from_millis(100),
                Duration::from_secs(3600),
            ),
            (
                "reconcile_interval",
                self.reconcile_interval,
                Duration::from_millis(100),
                Duration::from_secs(24 * 3600),
            ),
            (
                "call_timeout",
                self.call_timeout,
                Duration::from_secs(1),
                Duration::from_secs(3600),
            ),
        ] {
            if d < min || d > max {
                p.push(format!(
                    "pool_manager.{key}: {} is not between {} and {}",
                    fmt(d),
                    fmt(min),
                    fmt(max)
                ));
            }
        }
        if !(self.fleet_budget_percent > 0.0 && self.fleet_budget_percent <= 100.0) {
            p.push(format!(
                "pool_manager.fleet_budget_percent: {} is not more than 0 and at most 100",
                self.fleet_budget_percent
            ));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bad_value_is_named() {
        assert!(PoolManagerConfig::default().problems().is_empty());
        let bad = PoolManagerConfig {
            interval: Duration::from_millis(1),
            call_timeout: Duration::ZERO,
            fleet_budget_percent: 0.0,
            ..PoolManagerConfig::default()
        };
        let p = bad.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("pool_manager.interval:"));
        assert!(p[1].starts_with("pool_manager.call_timeout:"));
        assert!(p[2].starts_with("pool_manager.fleet_budget_percent:"));
    }
}
