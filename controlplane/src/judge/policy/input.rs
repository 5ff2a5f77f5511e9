//! What rules see: health events, GPUs and nodes (as CEL values: `vals.rs`).
//!
//! - `event`: `seq`, `kind`, `code` (int, 0 when none), `gpu` (int, -1 for the node),
//!   `uuid`, `message`, `severity`, `action`, `source`.
//! - `gpu`: `index`, `uuid`, `model`, `up`, every value the agent reports for it under its
//!   short name (`temperature_celsius`, `power_watts`, `power_limit_watts`,
//!   `pcie_link_width`, `pcie_link_max_width`, `remapped_rows_pending`, `recovery_action`, …),
//!   `xid_errors` (map code → count), `ecc_corrected`, `ecc_uncorrected` (volatile),
//!   `ecc_corrected_per_hour`, `nvlink_down` (links down), `nvlink_errors`,
//!   `nvlink_errors_delta`, `pcie_replays_delta` (growth since the previous observation),
//!   `clock_events` (active reasons).
//! - `node`: `name`, `pool`, `labels`, `gpu_count` (GPUs observed), `expected_gpus` (GPUs
//!   the node is expected to have), `connectivity`, `health_checks` (plugin check →
//!   0 healthy, 1 degraded, 2 unhealthy, 3 unknown), `driver_version`.
//!
//! Absent data is unknown, never a value: a field whose data the body did not carry (no
//! `gpuwarden_gpu_up` series, no ECC or NVLink counters, no previous observation for a
//! growth, no observation for `gpu_count`, `expected_gpus` not known) is absent, not `false`
//! or `0`. Rules test it with `has(gpu.x)`; a rule that reads an absent field without
//! `has()` fails (counted in `gpuwarden_cp_rule_failures_total`) and does not match.
//! Event fields `code` and `uuid` are absent when the event has none; `gpu` is `-1` for a
//! node-level event; `action` is `ignore` when the agent recommended none.

use std::collections::BTreeMap;

use crate::model::observation::{GpuObservation, NodeObservation};

/// A health event, as rules see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventInput {
    /// Agent sequence.
    pub seq: i64,
    /// `xid`, `ecc`, `thermal`, …
    pub kind: String,
    /// XID or other code.
    pub code: Option<i64>,
    /// GPU index.
    pub gpu: Option<u32>,
    /// GPU UUID.
    pub uuid: Option<String>,
    /// Detail.
    pub message: String,
    /// `info` | `warning` | `fatal`.
    pub severity: String,
    /// The agent's recommended action.
    pub action: Option<String>,
    /// `nvml`, `kmsg`, `plugin`, …
    pub source: String,
}

impl EventInput {
    /// An agent's event as rules see it, on the live path. The policy simulation builds the
    /// same input from the stored row (`simulate::event_input`), field for field: every field
    /// here is kept by the store. An event without an action reads `ignore` on both paths.
    pub fn from_event(e: &gpuwarden_wire::HealthEvent) -> Self {
        EventInput {
            seq: i64::try_from(e.seq).unwrap_or(i64::MAX),
            kind: e.kind.as_str().to_string(),
            code: e.code.and_then(|c| i64::try_from(c).ok()),
            gpu: e.gpu,
            uuid: e.uuid.clone(),
            message: e.message.clone(),
            severity: e.severity.as_str().to_string(),
            action: Some(
                e.action
                    .map_or(gpuwarden_wire::Action::Ignore, |a| a)
                    .as_str()
                    .to_string(),
            ),
            source: e.source.clone(),
        }
    }
}

/// The node, as rules see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInput {
    /// Name.
    pub name: String,
    /// Pool.
    pub pool: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// GPUs it is expected to have: the most it ever registered with, unless an operator
    /// lowered it (0: unknown).
    pub expected_gpus: usize,
    /// `online` | `offline`.
    pub connectivity: String,
}

/// The volatile ECC count of `ty` (`corrected`, `uncorrected`); `None` when the GPU does not
/// report it (no ECC, or not exported): unknown, not zero.
pub(crate) fn ecc(g: &GpuObservation, ty: &str) -> Option<f64> {
    g.ecc_errors
        .iter()
        .find(|((t, c), _)| &**t == ty && &**c == "volatile")
        .map(|(_, v)| *v)
}

/// A counter's growth from `before` to `now`; `None` when either is unknown.
pub(crate) fn growth(now: Option<f64>, before: Option<f64>) -> Option<f64> {
    // A counter that went down started over (agent or driver restart): count from zero.
    match (now?, before?) {
        (n, b) if n >= b => Some(n - b),
        (n, _) => Some(n),
    }
}

/// NVLink errors of all links summed; `None` when the GPU reports no NVLink counters.
pub(crate) fn nvlink_errors(g: &GpuObservation) -> Option<f64> {
    (!g.nvlink_errors.is_empty()).then(|| g.nvlink_errors.values().sum())
}

/// For people: the GPU's values that the rule's expression names.
pub(crate) fn gpu_detail(g: &GpuObservation, when: &str) -> String {
    let mut parts: Vec<String> = g
        .values
        .iter()
        .filter(|(k, _)| when.contains(&format!("gpu.{k}")))
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    match g.up {
        Some(false) if when.contains("gpu.up") => parts.push("up = false".into()),
        None if when.contains("gpu.up") => parts.push("up = unknown".into()),
        _ => {}
    }
    if when.contains("clock_events") && !g.clock_events.is_empty() {
        parts.push(format!("clock_events = {:?}", g.clock_events));
    }
    if when.contains("nvlink_down") {
        let down: Vec<u32> = g
            .nvlink_up
            .iter()
            .filter(|(_, up)| !*up)
            .map(|(l, _)| l)
            .collect();
        parts.push(format!("links down = {down:?}"));
    }
    if when.contains("ecc_") {
        let show = |v: Option<f64>| v.map_or_else(|| "unknown".to_string(), |v| v.to_string());
        parts.push(format!(
            "ecc corrected = {}, uncorrected = {}",
            show(ecc(g, "corrected")),
            show(ecc(g, "uncorrected"))
        ));
    }
    format!("GPU {}: {}", g.index, parts.join(", "))
}

/// Inputs with every documented field, for the dry run at validation.
pub(crate) fn samples() -> (EventInput, GpuObservation, NodeObservation, NodeInput) {
    let event = EventInput {
        seq: 1,
        kind: "xid".into(),
        code: Some(79),
        gpu: Some(0),
        uuid: Some("GPU-0".into()),
        message: "XID 79".into(),
        severity: "fatal".into(),
        action: Some("reboot_node".into()),
        source: "nvml".into(),
    };
    let mut g = GpuObservation {
        index: 0,
        uuid: "GPU-0".into(),
        model: "H100".into(),
        up: Some(true),
        ..Default::default()
    };
    for ty in ["corrected", "uncorrected"] {
        g.ecc_errors.insert((ty.into(), "volatile".into()), 0.0);
    }
    g.nvlink_up.insert(0, true);
    g.nvlink_errors.insert(0, 0.0);
    for k in [
        "temperature_celsius",
        "memory_temperature_celsius",
        "power_watts",
        "power_limit_watts",
        "utilization_ratio",
        "memory_used_bytes",
        "memory_total_bytes",
        "pcie_link_generation",
        "pcie_link_max_generation",
        "pcie_link_width",
        "pcie_link_max_width",
        "pcie_replays_total",
        "remapped_rows_pending",
        "remapped_rows_failure",
        "recovery_action",
        "fan_speed_ratio",
        "sm_clock_hertz",
        "memory_clock_hertz",
        "energy_joules_total",
    ] {
        g.values.insert(k, 1.0);
    }
    let mut obs = NodeObservation::default();
    obs.gpus.insert(0, g.clone());
    obs.health_checks.insert("xid".into(), 0.0);
    let node = NodeInput {
        name: "n".into(),
        pool: "default".into(),
        expected_gpus: 1,
        connectivity: "online".into(),
        ..Default::default()
    };
    (event, g, obs, node)
}
