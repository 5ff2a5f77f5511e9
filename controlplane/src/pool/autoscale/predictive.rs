//! `predictive`: fits a line through the pool's own utilization over `window` (least
//! squares), extrapolates it `horizon` ahead, and sizes the pool so the forecast load runs
//! at `target_utilization`. Bounded three ways: the forecast is clamped to 0..=1, one
//! evaluation moves at most `max_step` nodes, and without `min_samples` samples in the
//! window it has no opinion.
//!
//! The input is the pool-average series, one sample per evaluation: a series made by
//! putting the nodes' own histories one after another (Navarch) fits a line through
//! unrelated machines and forecasts noise.

use std::time::Duration;

use super::metrics::{Autoscale, Metrics, Recommendation};
use crate::model::pool::PredictiveSpec;

/// A linear forecast of the pool's utilization.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictive {
    window_ms: i64,
    horizon_ms: i64,
    target: f64,
    max_step: u32,
    min_samples: usize,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Predictive {
    /// From its (validated) spec; an error names the field whose duration is bad.
    pub fn new(s: &PredictiveSpec) -> Result<Predictive, (&'static str, String)> {
        Ok(Predictive {
            window_ms: millis(s.window.parse().map_err(|e| ("window", e))?),
            horizon_ms: millis(s.horizon.parse().map_err(|e| ("horizon", e))?),
            target: s.target_utilization,
            max_step: s.max_step,
            min_samples: s.min_samples as usize,
        })
    }

    /// The utilization forecast `horizon` after `now_ms`, clamped to 0..=1, from the
    /// samples within the window; none with too few samples.
    pub fn forecast(&self, history: &[(i64, f64)], now_ms: i64) -> Option<f64> {
        let from = now_ms.saturating_sub(self.window_ms);
        let pts: Vec<(f64, f64)> = history
            .iter()
            .filter(|(t, u)| *t >= from && *t <= now_ms && u.is_finite())
            // Seconds relative to now keep the sums small and exact enough.
            .map(|(t, u)| ((t - now_ms) as f64 / 1000.0, *u))
            .collect();
        if pts.len() < self.min_samples.max(2) {
            return None;
        }
        let n = pts.len() as f64;
        let mean_t = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_u = pts.iter().map(|p| p.1).sum::<f64>() / n;
        let var: f64 = pts.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
        let cov: f64 = pts.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_u)).sum();
        let slope = if var > 0.0 { cov / var } else { 0.0 };
        let at = self.horizon_ms as f64 / 1000.0;
        Some((mean_u + slope * (at - mean_t)).clamp(0.0, 1.0))
    }
}

impl Autoscale for Predictive {
    fn recommend(&self, m: &Metrics, now_ms: i64) -> Recommendation {
        let Some(f) = self.forecast(&m.history, now_ms) else {
            return Recommendation::none(format!(
                "predictive: fewer than {} samples in the window",
                self.min_samples
            ));
        };
        let n = m.nodes();
        // The forecast load of the serving nodes, spread at the target utilization.
        // Less a hair, so a float error (12.000000000000002) does not add a node.
        let want = (f64::from(m.capacity) * f / self.target - 1e-9)
            .ceil()
            .max(0.0) as u32;
        let to = want.clamp(
            n.saturating_sub(self.max_step),
            n.saturating_add(self.max_step),
        );
        Recommendation::nodes(
            to,
            format!(
                "predictive: utilization forecast {:.0}% ({} ahead): {want} nodes at {:.0}%, {n} → {to}",
                f * 100.0,
                humantime::format_duration(Duration::from_millis(self.horizon_ms as u64)),
                self.target * 100.0
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn p(max_step: u32) -> Predictive {
        Predictive::new(&PredictiveSpec {
            window: "30m".into(),
            horizon: "10m".into(),
            target_utilization: 0.5,
            max_step,
            min_samples: 3,
        })
        .expect("valid")
    }

    /// One sample a minute over `mins` minutes up to `now`, from `u0` rising by `per_min`.
    fn series(now: i64, mins: i64, u0: f64, per_min: f64) -> Vec<(i64, f64)> {
        (0..=mins)
            .map(|i| (now - (mins - i) * MIN, u0 + per_min * i as f64))
            .collect()
    }

    #[test]
    fn a_rising_trend_is_extrapolated_and_bounded() {
        let now = 1_800_000_000_000;
        // 0.2 → 0.5 over 30 minutes: +0.01/min, forecast 0.6 in 10 minutes.
        let rising = series(now, 30, 0.2, 0.01);
        let f = p(10).forecast(&rising, now).expect("enough samples");
        assert!((f - 0.6).abs() < 1e-9, "{f}");
        // (trend, serving, max_step) → nodes: 10 serving at a forecast 0.6 need 12 at 0.5.
        for (hist, cap, step, want) in [
            (rising.clone(), 10, 10, Some(12)),
            (rising.clone(), 10, 1, Some(11)),
            (series(now, 30, 0.5, 0.0), 10, 10, Some(10)),
            (series(now, 30, 0.5, -0.01), 10, 10, Some(2)),
            (series(now, 30, 0.5, -0.01), 10, 1, Some(9)),
            // Steep: the forecast is clamped at 100 % (20 nodes), not 160 %.
            (series(now, 30, 0.1, 0.04), 10, 100, Some(20)),
            (series(now, 30, 0.9, -0.05), 10, 100, Some(0)),
            (series(now, 1, 0.9, 0.0), 10, 100, None),
        ] {
            let m = Metrics {
                capacity: cap,
                history: hist,
                ..Metrics::default()
            };
            let got = p(step).recommend(&m, now);
            assert_eq!(got.nodes, want, "{}", got.reason);
        }
    }

    #[test]
    fn samples_outside_the_window_or_not_numbers_are_ignored() {
        let now = 1_800_000_000_000;
        let mut h = vec![
            (now - 90 * MIN, 1.0),
            (now - 60 * MIN, 1.0),
            (now + MIN, 1.0),
        ];
        h.push((now - 5 * MIN, f64::NAN));
        assert_eq!(p(1).forecast(&h, now), None);
        h.extend(series(now, 4, 0.3, 0.0));
        assert_eq!(p(1).forecast(&h, now), Some(0.3));
        // All samples at one instant: no slope, the mean.
        let same = vec![(now, 0.2), (now, 0.4), (now, 0.6)];
        assert!((p(1).forecast(&same, now).unwrap_or(0.0) - 0.4).abs() < 1e-9);
    }
}
