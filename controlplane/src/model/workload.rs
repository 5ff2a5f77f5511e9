//! What a node's agent says of its workload (`gpuwarden_workload_slots{state="free|busy"}`,
//! `gpuwarden_workload_ready`): kept with the node's latest observation, summed per pool
//! by the pool manager for the autoscalers (docs/POOLS.md, "queue").

use gpuwarden_wire::metric as m;

/// A node's workload series; `None` where the agent exposed none (no `[workload]` source,
/// or its source is bad).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WorkloadObservation {
    /// Free slots.
    pub slots_free: Option<f64>,
    /// Busy slots.
    pub slots_busy: Option<f64>,
    /// Whether the workload takes work.
    pub ready: Option<bool>,
}

impl WorkloadObservation {
    /// Takes one sample of either family (`state` is the sample's label); negative and
    /// non-finite values, and unknown states, are ignored.
    pub fn add(&mut self, name: &str, state: Option<&str>, value: Option<f64>) {
        let Some(v) = value.filter(|v| v.is_finite() && *v >= 0.0) else {
            return;
        };
        match (name, state) {
            (m::WORKLOAD_SLOTS, Some("free")) => self.slots_free = Some(v),
            (m::WORKLOAD_SLOTS, Some("busy")) => self.slots_busy = Some(v),
            (m::WORKLOAD_READY, _) => self.ready = Some(v >= 1.0),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_families_fill_their_fields_and_bad_values_are_left_out() {
        let mut w = WorkloadObservation::default();
        w.add(m::WORKLOAD_SLOTS, Some("free"), Some(3.0));
        w.add(m::WORKLOAD_SLOTS, Some("busy"), Some(5.0));
        w.add(m::WORKLOAD_SLOTS, Some("weird"), Some(9.0));
        w.add(m::WORKLOAD_READY, None, Some(1.0));
        assert_eq!(
            w,
            WorkloadObservation {
                slots_free: Some(3.0),
                slots_busy: Some(5.0),
                ready: Some(true)
            }
        );
        w.add(m::WORKLOAD_SLOTS, Some("busy"), Some(-1.0));
        w.add(m::WORKLOAD_SLOTS, Some("free"), None);
        assert_eq!(w.slots_busy, Some(5.0));
        assert_eq!(w.slots_free, Some(3.0));
    }

    #[test]
    fn a_scraped_body_carries_the_workload_and_a_body_without_it_none() {
        let body = "gpuwarden_gpu_up{gpu=\"0\",uuid=\"GPU-a\",model=\"M\"} 1\n\
            gpuwarden_workload_slots{state=\"free\"} 2\n\
            gpuwarden_workload_slots{state=\"busy\"} 6\n\
            gpuwarden_workload_ready 0\n";
        let o = crate::model::observation::observe(body.as_bytes(), 1000).unwrap();
        assert_eq!(
            o.workload,
            WorkloadObservation {
                slots_free: Some(2.0),
                slots_busy: Some(6.0),
                ready: Some(false)
            }
        );
        let bare = "gpuwarden_gpu_up{gpu=\"0\",uuid=\"GPU-a\",model=\"M\"} 1\n";
        let o = crate::model::observation::observe(bare.as_bytes(), 1000).unwrap();
        assert_eq!(o.workload, WorkloadObservation::default());
    }
}
