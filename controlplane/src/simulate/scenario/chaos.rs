//! `[chaos]`: random faults at a rate per 1,000 nodes per hour, some of them correlated
//! across a whole rack or zone, drawn from the scenario's seed (the same seed, the same
//! faults). They are expanded into ordinary `[[faults]]` before the run, so the report
//! gives each one's detection and remediation like any other.

use std::time::Duration;

use serde::Deserialize;

use super::items::{Fault, SimNode, MAX_ITEMS};

/// The faults chaos draws from by default: each condemns a node under the default policy
/// at once (no `for`).
pub const CATALOGUE: &[&str] = &[
    "xid-79",
    "xid-48",
    "ecc-double-bit",
    "fell-off-bus",
    "row-remap-failure",
    "nvlink-down",
    "thermal-critical",
];

/// `[chaos]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chaos {
    /// Faults per 1,000 nodes per hour (above 0).
    pub rate: f64,
    /// From this time of the timeline (default 0).
    #[serde(default, with = "humantime_serde")]
    pub from: Duration,
    /// Until this time (default the scenario's duration).
    #[serde(default, with = "humantime_serde::option")]
    pub until: Option<Duration>,
    /// Share of the events that strike every node of one rack (0 to 1; default 0).
    #[serde(default)]
    pub rack_share: f64,
    /// Share of the events that strike every node of one zone (0 to 1; default 0).
    #[serde(default)]
    pub zone_share: f64,
    /// The faults drawn from, by name (default all of [`CATALOGUE`]).
    #[serde(default)]
    pub faults: Vec<String>,
}

/// The fault a catalogue name stands for.
fn fault(name: &str) -> Option<Fault> {
    let mut f = Fault::named("xid");
    match name {
        "xid-79" => f.code = Some(79),
        "xid-48" => f.code = Some(48),
        "ecc-double-bit" => {
            f.fault = "ecc".into();
            f.ecc_type = Some("double_bit".into());
            f.count = Some(1);
        }
        "fell-off-bus" => f.fault = "fell_off_bus".into(),
        "row-remap-failure" => f.fault = "row_remap_failure".into(),
        "nvlink-down" => {
            f.fault = "nvlink_down".into();
            f.link = Some(0);
        }
        "thermal-critical" => {
            f.fault = "temperature".into();
            f.value = Some(95.0);
        }
        _ => return None,
    }
    Some(f)
}

impl Chaos {
    /// Every problem, each with its place.
    pub(super) fn problems(&self, duration: Duration, nodes: usize) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.rate > 0.0 && self.rate <= 1e6) {
            p.push("chaos.rate: above 0 and at most 1000000 per 1,000 nodes per hour".into());
        }
        let until = self.until.unwrap_or(duration);
        if until > duration || self.from >= until {
            p.push("chaos: from before until, both within the duration".into());
        }
        for (k, v) in [
            ("rack_share", self.rack_share),
            ("zone_share", self.zone_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                p.push(format!("chaos.{k}: 0 to 1"));
            }
        }
        if self.rack_share + self.zone_share > 1.0 {
            p.push("chaos: rack_share and zone_share add up to at most 1".into());
        }
        for (i, f) in self.faults.iter().enumerate() {
            if fault(f).is_none() {
                p.push(format!(
                    "chaos.faults[{i}]: unknown {f:?} (one of {})",
                    CATALOGUE.join(", ")
                ));
            }
        }
        let expected = self.expected(duration, nodes);
        if expected > MAX_ITEMS as f64 / 2.0 {
            p.push(format!(
                "chaos: about {expected:.0} faults; at most {} (lower the rate)",
                MAX_ITEMS / 2
            ));
        }
        p
    }

    /// The number of faults expected over the window for `nodes` nodes.
    fn expected(&self, duration: Duration, nodes: usize) -> f64 {
        let until = self.until.unwrap_or(duration);
        let hours = until.saturating_sub(self.from).as_secs_f64() / 3600.0;
        self.rate * nodes as f64 / 1000.0 * hours
    }

    /// The faults drawn for `nodes` with `seed`: a Poisson process at the rate, each event
    /// a node, a rack or a zone (by the shares) and a fault of the list, on a random GPU
    /// below `gpus`.
    pub fn draw(&self, duration: Duration, nodes: &[SimNode], seed: u64) -> Vec<Fault> {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x0063_6861_6f73);
        let until = self.until.unwrap_or(duration);
        let per_sec = self.rate * nodes.len() as f64 / 1000.0 / 3600.0;
        let names: Vec<&str> = if self.faults.is_empty() {
            CATALOGUE.to_vec()
        } else {
            self.faults.iter().map(String::as_str).collect()
        };
        let gpus = nodes.iter().map(|n| n.gpus).min().unwrap_or(1).max(1);
        let mut out = Vec::new();
        if per_sec <= 0.0 || nodes.is_empty() {
            return out;
        }
        let mut t = self.from.as_secs_f64();
        loop {
            // Exponential gaps: -ln(U) / rate.
            t += -(1.0 - rng.f64()).ln() / per_sec;
            if t >= until.as_secs_f64() || out.len() >= MAX_ITEMS / 2 {
                break;
            }
            let Some(mut f) = fault(names[rng.usize(..names.len())]) else {
                continue;
            };
            f.at = Duration::from_millis((t * 1000.0) as u64);
            f.gpu = rng.u32(..gpus);
            let node = &nodes[rng.usize(..nodes.len())];
            let pick = rng.f64();
            if pick < self.rack_share {
                f.rack = node.labels.get("rack").cloned();
            } else if pick < self.rack_share + self.zone_share {
                f.zone = node.labels.get("zone").cloned();
            } else {
                f.node = Some(node.name.clone());
            }
            f.chaos = true;
            out.push(f);
        }
        out
    }
}
