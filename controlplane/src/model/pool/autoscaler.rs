//! The autoscaler of a pool, as declared: `type` names one of five, the other keys are its
//! parameters (`crate::pool::autoscale` runs them).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::duration::DurationText;

/// An autoscaler, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AutoscalerSpec {
    /// GPU utilization thresholds: one `step` up above the upper, down below the lower.
    Reactive(ReactiveSpec),
    /// Jobs per node, from the workload's slots or pending jobs pushed by a scheduler.
    Queue(QueueSpec),
    /// Time windows with their own bounds, in a named time zone.
    Scheduled(ScheduledSpec),
    /// The pool's utilization trend, extrapolated.
    Predictive(PredictiveSpec),
    /// Several autoscalers, combined.
    Composite(CompositeSpec),
}

impl AutoscalerSpec {
    /// The `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            AutoscalerSpec::Reactive(_) => "reactive",
            AutoscalerSpec::Queue(_) => "queue",
            AutoscalerSpec::Scheduled(_) => "scheduled",
            AutoscalerSpec::Predictive(_) => "predictive",
            AutoscalerSpec::Composite(_) => "composite",
        }
    }
}

/// `type = "reactive"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactiveSpec {
    /// Pool-average GPU utilization (0 to 1) above which it adds `step` nodes (default 0.8).
    #[serde(default = "d_up")]
    pub scale_up_threshold: f64,
    /// Below which it removes `step` nodes (default 0.3); less than the upper one.
    #[serde(default = "d_down")]
    pub scale_down_threshold: f64,
    /// Nodes per change, at least 1 (default 1).
    #[serde(default = "d_one")]
    pub step: u32,
}

/// `type = "queue"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    /// Jobs (busy slots plus pending jobs) one node should carry; more than 0 (default 1).
    #[serde(default = "d_one_f")]
    pub jobs_per_node: f64,
}

/// `type = "scheduled"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduledSpec {
    /// IANA time zone the windows are written in (default `UTC`).
    #[serde(default = "d_utc")]
    pub timezone: String,
    /// The windows; the first that contains the time applies.
    pub windows: Vec<WindowSpec>,
    /// What decides within a window (bounded by it) and outside every window; without
    /// one, a window holds the pool within its bounds and outside them the pool returns
    /// to its `min_nodes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub fallback: Option<Box<AutoscalerSpec>>,
}

/// One window of a scheduled autoscaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Days it starts on (`mon` … `sun`; default every day).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    /// Local start, `HH:MM` (inclusive).
    pub start: String,
    /// Local end, `HH:MM` (exclusive); earlier than `start`: the window crosses midnight
    /// and ends on the next day.
    pub end: String,
    /// Fewest nodes while it applies.
    pub min_nodes: u32,
    /// Most nodes while it applies.
    pub max_nodes: u32,
}

/// Day names of [`WindowSpec::days`], Monday first.
pub const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `type = "predictive"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictiveSpec {
    /// How far back the trend is fitted (default `30m`).
    #[serde(default = "d_window")]
    pub window: DurationText,
    /// How far ahead it is extrapolated (default `10m`).
    #[serde(default = "d_horizon")]
    pub horizon: DurationText,
    /// Utilization (0 to 1, not 0) the pool should run at (default 0.7).
    #[serde(default = "d_target")]
    pub target_utilization: f64,
    /// Most nodes one evaluation may add or remove, at least 1 (default 2).
    #[serde(default = "d_two")]
    pub max_step: u32,
    /// Fewest samples in the window for a forecast, at least 2 (default 3).
    #[serde(default = "d_three")]
    pub min_samples: u32,
}

/// `type = "composite"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompositeSpec {
    /// How the children's answers combine (default `max`).
    #[serde(default)]
    pub mode: CompositeMode,
    /// The children, at least one.
    #[schema(no_recursion)]
    pub autoscalers: Vec<AutoscalerSpec>,
}

/// How a composite autoscaler combines its children's node counts (children without an
/// answer are left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompositeMode {
    /// The largest: whoever needs the most nodes wins.
    #[default]
    Max,
    /// The smallest.
    Min,
    /// The mean, rounded up.
    Avg,
}

fn d_up() -> f64 {
    0.8
}
fn d_down() -> f64 {
    0.3
}
fn d_one() -> u32 {
    1
}
fn d_one_f() -> f64 {
    1.0
}
fn d_two() -> u32 {
    2
}
fn d_three() -> u32 {
    3
}
fn d_target() -> f64 {
    0.7
}
fn d_utc() -> String {
    "UTC".into()
}
fn d_window() -> DurationText {
    "30m".into()
}
fn d_horizon() -> DurationText {
    "10m".into()
}

impl WindowSpec {
    /// Minutes after local midnight of `start`.
    pub fn start_minute(&self) -> Result<u16, String> {
        clock_minute(&self.start)
    }

    /// Minutes after local midnight of `end`.
    pub fn end_minute(&self) -> Result<u16, String> {
        clock_minute(&self.end)
    }

    /// The days as a set: bit 0 Monday … bit 6 Sunday; every day when none are named.
    pub fn day_bits(&self) -> Result<u8, String> {
        if self.days.is_empty() {
            return Ok(0x7f);
        }
        let mut bits = 0u8;
        for d in &self.days {
            let i = WEEKDAYS
                .iter()
                .position(|w| w.eq_ignore_ascii_case(d))
                .ok_or_else(|| format!("{d:?} is not a day; use {}", WEEKDAYS.join(", ")))?;
            bits |= 1 << i;
        }
        Ok(bits)
    }
}

/// `HH:MM` (24-hour clock) as minutes after midnight.
fn clock_minute(s: &str) -> Result<u16, String> {
    let bad = || format!("{s:?} is not a time of day like 08:00 or 23:30");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if h.len() > 2 || m.len() != 2 || !digits(h) || !digits(m) {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}
