//! What an autoscaler sees, what it answers, and the trait they all implement.

use std::fmt;

/// What an autoscaler sees of its pool.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Serving nodes: active, online, not unhealthy.
    pub capacity: u32,
    /// Instances asked for whose nodes have not joined yet.
    pub booting: u32,
    /// Pool-average GPU utilization of the serving nodes, 0 to 1 (none: no samples).
    pub utilization: Option<f64>,
    /// Free workload slots summed over the pool (`gpuwarden_workload_slots{state="free"}`).
    pub slots_free: Option<u64>,
    /// Busy workload slots summed over the pool.
    pub slots_busy: Option<u64>,
    /// Pending jobs pushed by the operator's scheduler (`PUT /v1/pools/{name}/demand`).
    pub pending_jobs: Option<u64>,
    /// The pool's own utilization over time: `(Unix ms, pool-average utilization)`, oldest
    /// first; one sample per evaluation, not the nodes' histories put together.
    pub history: Vec<(i64, f64)>,
}

impl Metrics {
    /// The size the pool is heading to: serving plus booting.
    pub fn nodes(&self) -> u32 {
        self.capacity.saturating_add(self.booting)
    }
}

/// An autoscaler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommendation {
    /// Nodes the pool should have (before its bounds); none: no opinion (keep the size).
    pub nodes: Option<u32>,
    /// Why, in words for the API.
    pub reason: String,
}

impl Recommendation {
    /// An opinion.
    pub fn nodes(nodes: u32, reason: impl Into<String>) -> Recommendation {
        Recommendation {
            nodes: Some(nodes),
            reason: reason.into(),
        }
    }

    /// No opinion, and why.
    pub fn none(reason: impl Into<String>) -> Recommendation {
        Recommendation {
            nodes: None,
            reason: reason.into(),
        }
    }
}

/// A pure autoscaler: the same inputs give the same answer.
pub trait Autoscale: fmt::Debug + Send + Sync {
    /// The node count this autoscaler wants at `now_ms` (Unix milliseconds).
    fn recommend(&self, m: &Metrics, now_ms: i64) -> Recommendation;
}
