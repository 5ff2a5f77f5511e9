//! `reactive`: one step up above the upper utilization threshold, one down below the lower.

use super::metrics::{Autoscale, Metrics, Recommendation};
use crate::model::pool::ReactiveSpec;

/// Thresholds on the pool-average GPU utilization.
#[derive(Debug, Clone, PartialEq)]
pub struct Reactive {
    up: f64,
    down: f64,
    step: u32,
}

impl Reactive {
    /// From its (validated) spec.
    pub fn new(s: &ReactiveSpec) -> Reactive {
        Reactive {
            up: s.scale_up_threshold,
            down: s.scale_down_threshold,
            step: s.step,
        }
    }
}

impl Autoscale for Reactive {
    fn recommend(&self, m: &Metrics, _now_ms: i64) -> Recommendation {
        let Some(u) = m.utilization else {
            return Recommendation::none("reactive: no utilization samples");
        };
        let n = m.nodes();
        let pct = |v: f64| format!("{:.0}%", v * 100.0);
        if u > self.up {
            let to = n.saturating_add(self.step);
            Recommendation::nodes(
                to,
                format!(
                    "reactive: utilization {} above {}: {n} → {to}",
                    pct(u),
                    pct(self.up)
                ),
            )
        } else if u < self.down {
            let to = n.saturating_sub(self.step);
            Recommendation::nodes(
                to,
                format!(
                    "reactive: utilization {} below {}: {n} → {to}",
                    pct(u),
                    pct(self.down)
                ),
            )
        } else {
            Recommendation::nodes(
                n,
                format!(
                    "reactive: utilization {} within {}..{}",
                    pct(u),
                    pct(self.down),
                    pct(self.up)
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_up_above_and_down_below_the_thresholds_counting_booting_nodes() {
        let r = Reactive::new(&ReactiveSpec {
            scale_up_threshold: 0.8,
            scale_down_threshold: 0.3,
            step: 2,
        });
        // (serving, booting, utilization) → nodes
        for (cap, boot, u, want) in [
            (4, 0, Some(0.9), Some(6)),
            (4, 2, Some(0.9), Some(8)),
            (4, 0, Some(0.8), Some(4)),
            (4, 0, Some(0.5), Some(4)),
            (4, 0, Some(0.3), Some(4)),
            (4, 0, Some(0.1), Some(2)),
            (1, 0, Some(0.0), Some(0)),
            (4, 0, None, None),
        ] {
            let m = Metrics {
                capacity: cap,
                booting: boot,
                utilization: u,
                ..Metrics::default()
            };
            let got = r.recommend(&m, 0);
            assert_eq!(got.nodes, want, "{cap}+{boot} at {u:?}: {}", got.reason);
            assert!(got.reason.starts_with("reactive:"), "{}", got.reason);
        }
    }
}
