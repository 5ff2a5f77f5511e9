//! Recent GPU values per node, for the console's charts (`/ui/nodes/{id}`): a bounded ring of
//! points in memory, fed by every successful scrape, so the last hour can be drawn without a
//! time-series database of our own.
//!
//! A point is taken at most once per `step` (default 30 s) and kept for `window` (default 1 h):
//! at most `window / step` points a node. All rings together are bounded by `max_bytes`
//! (`[console] history_max_bytes`): when a new node's ring would pass it, that node is not
//! recorded (counted in [`Recent::refused`]) and the console says so; the nodes already
//! recorded keep rolling, as a ring's size does not grow once it is full.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::model::observation::NodeObservation;

/// The values kept per GPU, as `(name in the observation without the gpuwarden_gpu_ prefix,
/// title, unit)`. The names are `gpuwarden-wire`'s metric names.
pub const SERIES: [(&str, &str, &str); 4] = [
    ("temperature_celsius", "Temperature", "°C"),
    ("power_watts", "Power", "W"),
    ("utilization_ratio", "Utilization", "ratio"),
    ("memory_used_bytes", "Memory used", "bytes"),
];

/// How much to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentSettings {
    /// How far back (default 1 h).
    pub window: Duration,
    /// Shortest time between two points of a node (default 30 s).
    pub step: Duration,
    /// Every node's points together, at most (default 64 MiB); zero keeps none.
    pub max_bytes: usize,
}

impl Default for RecentSettings {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(3600),
            step: Duration::from_secs(30),
            max_bytes: 64 << 20,
        }
    }
}

/// One point: when (Unix ms) and each GPU's [`SERIES`] values (`NaN`: not reported).
#[derive(Debug, Clone)]
struct Point {
    at: i64,
    gpus: Box<[(u32, [f32; 4])]>,
}

impl Point {
    fn bytes(&self) -> usize {
        std::mem::size_of::<Point>() + self.gpus.len() * std::mem::size_of::<(u32, [f32; 4])>()
    }
}

#[derive(Debug, Default)]
struct Ring {
    points: VecDeque<Point>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    nodes: HashMap<String, Ring>,
    bytes: usize,
    refused: u64,
}

/// The rings of every node.
#[derive(Debug)]
pub struct Recent {
    settings: RecentSettings,
    inner: Mutex<Inner>,
}

/// One GPU's recent values, for a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSeries {
    /// GPU index.
    pub index: u32,
    /// Per [`SERIES`] entry, a value per time of [`NodeSeries::times`] (`None`: no value).
    pub values: [Vec<Option<f64>>; 4],
}

/// A node's recent values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeSeries {
    /// Unix seconds, oldest first.
    pub times: Vec<f64>,
    /// Each GPU seen in the window, by index.
    pub gpus: Vec<GpuSeries>,
}

impl Default for Recent {
    fn default() -> Self {
        Self::new(RecentSettings::default())
    }
}

impl Recent {
    /// Empty rings.
    pub fn new(settings: RecentSettings) -> Self {
        Self {
            settings,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings.
    pub fn settings(&self) -> RecentSettings {
        self.settings
    }

    /// Takes a point of `obs` at `now` (Unix ms) unless the node's last one is younger
    /// than 90 % of `step` (scrapes a step apart that come a few ms early still count);
    /// drops points older than `window`.
    pub fn record(&self, id: &str, obs: &NodeObservation, now: i64) {
        let step = i64::try_from(self.settings.step.as_millis()).unwrap_or(i64::MAX);
        let window = i64::try_from(self.settings.window.as_millis()).unwrap_or(i64::MAX);
        let mut g = self.lock();
        // A tenth of a step of slack: scrapes every `step` that come a few ms early still
        // each make a point.
        if let Some(last) = g.nodes.get(id).and_then(|r| r.points.back()) {
            if now - last.at < step - step / 10 {
                return;
            }
        }
        let gpus: Box<[(u32, [f32; 4])]> = obs
            .gpus
            .iter()
            .map(|(i, gpu)| {
                let mut v = [f32::NAN; 4];
                for (slot, (name, _, _)) in v.iter_mut().zip(SERIES) {
                    if let Some(x) = gpu.values.get(name) {
                        *slot = *x as f32;
                    }
                }
                (*i, v)
            })
            .collect();
        let point = Point { at: now, gpus };
        let size = point.bytes();
        let inner = &mut *g;
        let known = inner.nodes.contains_key(id);
        if !known && inner.bytes + size > self.settings.max_bytes {
            inner.refused += 1;
            return;
        }
        let ring = inner.nodes.entry(id.to_string()).or_default();
        let mut freed = 0;
        while ring.points.front().is_some_and(|p| {
            now - p.at >= window || ring.bytes - freed + size > self.settings.max_bytes
        }) {
            if let Some(p) = ring.points.pop_front() {
                freed += p.bytes();
            }
        }
        ring.points.push_back(point);
        ring.bytes = ring.bytes + size - freed;
        inner.bytes = inner.bytes + size - freed;
    }

    /// Forgets a node (removed from the fleet).
    pub fn remove(&self, id: &str) {
        let mut g = self.lock();
        if let Some(r) = g.nodes.remove(id) {
            g.bytes -= r.bytes;
        }
    }

    /// The node's points within the window before `now`, or `None` when none is kept.
    pub fn series(&self, id: &str, now: i64) -> Option<NodeSeries> {
        let window = i64::try_from(self.settings.window.as_millis()).unwrap_or(i64::MAX);
        let g = self.lock();
        let ring = g.nodes.get(id)?;
        let points: Vec<&Point> = ring.points.iter().filter(|p| now - p.at < window).collect();
        if points.is_empty() {
            return None;
        }
        let mut indexes: Vec<u32> = points
            .iter()
            .flat_map(|p| p.gpus.iter().map(|(i, _)| *i))
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        let gpus = indexes
            .into_iter()
            .map(|index| GpuSeries {
                index,
                values: std::array::from_fn(|k| {
                    points
                        .iter()
                        .map(|p| {
                            p.gpus
                                .iter()
                                .find(|(i, _)| *i == index)
                                .map(|(_, v)| v[k])
                                .filter(|x| x.is_finite())
                                .map(f64::from)
                        })
                        .collect()
                }),
            })
            .collect();
        Some(NodeSeries {
            times: points.iter().map(|p| p.at as f64 / 1000.0).collect(),
            gpus,
        })
    }

    /// Whether node `id` has a ring (points are kept for it).
    pub fn holds(&self, id: &str) -> bool {
        self.lock().nodes.contains_key(id)
    }

    /// Bytes held by every ring.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Points not kept because the budget was full.
    pub fn refused(&self) -> u64 {
        self.lock().refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::observation::{GpuObservation, Values};

    fn obs(temps: &[f64]) -> NodeObservation {
        let mut o = NodeObservation::default();
        for (i, t) in temps.iter().enumerate() {
            let i = i as u32;
            o.gpus.insert(
                i,
                GpuObservation {
                    index: i,
                    values: Values::from_pairs(vec![
                        ("temperature_celsius", *t),
                        ("power_watts", 300.0),
                    ]),
                    ..Default::default()
                },
            );
        }
        o
    }

    #[test]
    fn points_are_taken_once_a_step_and_dropped_after_the_window() {
        let r = Recent::new(RecentSettings {
            window: Duration::from_secs(120),
            step: Duration::from_secs(30),
            max_bytes: 1 << 20,
        });
        // Scrapes a step apart that come a few ms early still each make a point.
        let drift = Recent::new(RecentSettings {
            window: Duration::from_secs(60),
            step: Duration::from_secs(5),
            max_bytes: 1 << 20,
        });
        for (k, at) in [0, 4_997, 9_995, 14_990].iter().enumerate() {
            drift.record("n1", &obs(&[k as f64]), *at);
        }
        assert_eq!(drift.series("n1", 15_000).unwrap().times.len(), 4);
        for s in 0..20 {
            // A scrape every 10 s: one in three is kept.
            r.record("n1", &obs(&[40.0 + s as f64, 50.0]), s * 10_000);
        }
        let s = r.series("n1", 190_000).unwrap();
        // Kept: 90, 120, 150, 180 s (0..60 fell out of the 120 s window).
        assert_eq!(s.times, vec![90.0, 120.0, 150.0, 180.0]);
        assert_eq!(s.gpus.len(), 2);
        assert_eq!(
            s.gpus[0].values[0],
            vec![Some(49.0), Some(52.0), Some(55.0), Some(58.0)]
        );
        assert_eq!(s.gpus[1].values[1], vec![Some(300.0); 4]);
        // Utilization was never reported: no value, not zero.
        assert_eq!(s.gpus[0].values[2], vec![None; 4]);
        assert!(r.series("n2", 190_000).is_none());
        r.remove("n1");
        assert!(r.series("n1", 190_000).is_none());
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn the_byte_budget_bounds_every_ring_together() {
        let one = Point {
            at: 0,
            gpus: vec![(0, [0.0; 4]); 8].into(),
        }
        .bytes();
        let r = Recent::new(RecentSettings {
            window: Duration::from_secs(3600),
            step: Duration::from_secs(1),
            max_bytes: one * 10,
        });
        for s in 0..100 {
            r.record("a", &obs(&[40.0; 8]), s * 1000);
        }
        // Node a holds at most the budget; node b finds it full and is refused.
        assert!(r.bytes() <= one * 10);
        r.record("b", &obs(&[40.0; 8]), 200_000);
        assert_eq!(r.refused(), 1);
        assert!(r.holds("a") && !r.holds("b"));
        assert!(r.series("b", 200_000).is_none());
        assert_eq!(r.series("a", 100_000).unwrap().times.len(), 10);
    }
}
