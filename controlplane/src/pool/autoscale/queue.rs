//! `queue`: enough nodes for the jobs, at `jobs_per_node` each. The jobs are the busy
//! workload slots the agents report plus the pending jobs a scheduler pushed.

use super::metrics::{Autoscale, Metrics, Recommendation};
use crate::model::pool::QueueSpec;

/// Jobs per node.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    per_node: f64,
}

impl Queue {
    /// From its (validated) spec.
    pub fn new(s: &QueueSpec) -> Queue {
        Queue {
            per_node: s.jobs_per_node,
        }
    }
}

impl Autoscale for Queue {
    fn recommend(&self, m: &Metrics, _now_ms: i64) -> Recommendation {
        if m.slots_busy.is_none() && m.pending_jobs.is_none() {
            return Recommendation::none(
                "queue: no workload slots reported and no pending jobs pushed",
            );
        }
        let busy = m.slots_busy.unwrap_or(0);
        let pending = m.pending_jobs.unwrap_or(0);
        let jobs = busy.saturating_add(pending);
        // Saturates at u32::MAX; the pool's max_nodes bounds it anyway.
        let want = (jobs as f64 / self.per_node)
            .ceil()
            .min(f64::from(u32::MAX)) as u32;
        Recommendation::nodes(
            want,
            format!(
                "queue: {jobs} jobs ({busy} running, {pending} pending) at {} per node: {want}",
                self.per_node
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_follow_running_plus_pending_jobs() {
        let q = Queue::new(&QueueSpec { jobs_per_node: 4.0 });
        // (busy slots, pending) → nodes
        for (busy, pending, want) in [
            (None, None, None),
            (Some(0), None, Some(0)),
            (Some(8), None, Some(2)),
            (Some(9), None, Some(3)),
            (None, Some(1), Some(1)),
            (Some(8), Some(8), Some(4)),
            (Some(u64::MAX), Some(u64::MAX), Some(u32::MAX)),
        ] {
            let m = Metrics {
                capacity: 2,
                slots_free: Some(0),
                slots_busy: busy,
                pending_jobs: pending,
                ..Metrics::default()
            };
            let got = q.recommend(&m, 0);
            assert_eq!(got.nodes, want, "{busy:?}+{pending:?}: {}", got.reason);
        }
        let half = Queue::new(&QueueSpec { jobs_per_node: 0.5 });
        let m = Metrics {
            slots_busy: Some(3),
            ..Metrics::default()
        };
        assert_eq!(half.recommend(&m, 0).nodes, Some(6));
    }
}
