//! What rules see: health events, GPUs and nodes (as CEL values: `vals.rs`).
//!
//! - `event`: `seq`, `kind`, `code` (int, 0 when none), `gpu` (int, -1 for the node),
//!   `uuid`, `message`, `severity`, `action`, `source`.
//! - `gpu`: `index`, `uuid`, `model`, `up`, every value the agent reports for it under its
//!   short name (`temperature_celsius`, `power_watts`, `power_limit_watts`,
//!   `pcie_link_width`, `pcie_link_max_width`, `remapped_rows_pending`, `recovery_action`, …;
//!   a value the GPU does not support is absent: test with `has(gpu.x)`), `xid_errors`
//!   (map code → count), `ecc_corrected`, `ecc_uncorrected` (volatile),
//!   `ecc_corrected_per_hour`, `nvlink_down` (links down), `nvlink_errors`,
//!   `nvlink_errors_delta`, `pcie_replays_delta` (growth since the previous observation),
//!   `clock_events` (active reasons).
//! - `node`: `name`, `pool`, `labels`, `gpu_count` (GPUs observed), `expected_gpus` (GPUs
//!   registered), `connectivity`, `health_checks` (plugin check → 0 healthy, 1 degraded,
//!   2 unhealthy, 3 unknown), `driver_version`.

use std::collections::BTreeMap;

use crate::observation::{GpuObservation, NodeObservation};

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

/// The node, as rules see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInput {
    /// Name.
    pub name: String,
    /// Pool.
    pub pool: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// GPUs it registered with (0: unknown).
    pub expected_gpus: usize,
    /// `online` | `offline`.
    pub connectivity: String,
}

pub(crate) fn ecc(g: &GpuObservation, ty: &str) -> f64 {
    g.ecc_errors
        .get(&(ty.to_string(), "volatile".to_string()))
        .copied()
        .unwrap_or(0.0)
}

pub(crate) fn growth(now: f64, before: Option<f64>) -> f64 {
    // A counter that went down started over (agent or driver restart): count from zero.
    match before {
        Some(b) if now >= b => now - b,
        Some(_) => now,
        None => 0.0,
    }
}

/// For people: the GPU's values that the rule's expression names.
pub(crate) fn gpu_detail(g: &GpuObservation, when: &str) -> String {
    let mut parts: Vec<String> = g
        .values
        .iter()
        .filter(|(k, _)| when.contains(&format!("gpu.{k}")))
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    if when.contains("gpu.up") && !g.up {
        parts.push("up = false".into());
    }
    if when.contains("clock_events") && !g.clock_events.is_empty() {
        parts.push(format!("clock_events = {:?}", g.clock_events));
    }
    if when.contains("nvlink_down") {
        let down: Vec<u32> = g
            .nvlink_up
            .iter()
            .filter(|(_, up)| !**up)
            .map(|(l, _)| *l)
            .collect();
        parts.push(format!("links down = {down:?}"));
    }
    if when.contains("ecc_") {
        parts.push(format!(
            "ecc corrected = {}, uncorrected = {}",
            ecc(g, "corrected"),
            ecc(g, "uncorrected")
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
        up: true,
        ..Default::default()
    };
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
        g.values.insert(k.into(), 1.0);
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
