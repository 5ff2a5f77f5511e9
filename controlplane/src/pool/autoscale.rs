//! Autoscalers: each a small pure type behind [`Autoscale`], built once from its spec by
//! [`build`]. An autoscaler recommends a node count; the pool's bounds, cooldowns and
//! nodes in flight are [`decide`](super::decide)'s business, not theirs.

use std::fmt;

use crate::model::pool::{AutoscalerSpec, PoolError};

mod composite;
mod predictive;
mod queue;
mod reactive;
mod scheduled;

pub use composite::Composite;
pub use predictive::Predictive;
pub use queue::Queue;
pub use reactive::Reactive;
pub use scheduled::Scheduled;

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

/// The autoscaler a validated spec describes; an error only for what validation reports
/// too (an unknown time zone, a bad duration or clock time), under the field `at`.
pub fn build(spec: &AutoscalerSpec, at: &str) -> Result<Box<dyn Autoscale>, PoolError> {
    let err = |field: &str, message: String| PoolError {
        field: format!("{at}.{field}"),
        message,
    };
    Ok(match spec {
        AutoscalerSpec::Reactive(r) => Box::new(Reactive::new(r)),
        AutoscalerSpec::Queue(q) => Box::new(Queue::new(q)),
        AutoscalerSpec::Scheduled(s) => Box::new(Scheduled::new(s, at)?),
        AutoscalerSpec::Predictive(p) => Box::new(Predictive::new(p).map_err(|(f, m)| err(f, m))?),
        AutoscalerSpec::Composite(c) => {
            let children = c
                .autoscalers
                .iter()
                .enumerate()
                .map(|(i, a)| build(a, &format!("{at}.autoscalers[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Box::new(Composite::new(c.mode, children))
        }
    })
}
