//! What rules see: health events, GPUs and nodes as CEL values.
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

use std::collections::{BTreeMap, HashMap};

use cel::Value;

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

fn s(v: &str) -> Value {
    Value::String(v.to_string().into())
}

impl EventInput {
    pub(crate) fn to_value(&self) -> Value {
        let mut m: HashMap<String, Value> = HashMap::with_capacity(9);
        m.insert("seq".into(), Value::Int(self.seq));
        m.insert("kind".into(), s(&self.kind));
        m.insert("code".into(), Value::Int(self.code.unwrap_or(0)));
        m.insert("gpu".into(), Value::Int(self.gpu.map_or(-1, i64::from)));
        m.insert("uuid".into(), s(self.uuid.as_deref().unwrap_or("")));
        m.insert("message".into(), s(&self.message));
        m.insert("severity".into(), s(&self.severity));
        m.insert(
            "action".into(),
            s(self.action.as_deref().unwrap_or("ignore")),
        );
        m.insert("source".into(), s(&self.source));
        m.into()
    }
}

impl NodeInput {
    pub(crate) fn to_value(&self, obs: Option<&NodeObservation>) -> Value {
        let mut m: HashMap<String, Value> = HashMap::with_capacity(9);
        m.insert("name".into(), s(&self.name));
        m.insert("pool".into(), s(&self.pool));
        let labels: HashMap<String, Value> =
            self.labels.iter().map(|(k, v)| (k.clone(), s(v))).collect();
        m.insert("labels".into(), labels.into());
        m.insert(
            "expected_gpus".into(),
            Value::Int(i64::try_from(self.expected_gpus).unwrap_or(0)),
        );
        m.insert("connectivity".into(), s(&self.connectivity));
        let (count, checks, driver) = match obs {
            Some(o) => (
                o.gpus.len(),
                o.health_checks
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::Float(*v)))
                    .collect(),
                o.driver_version.clone().unwrap_or_default(),
            ),
            None => (self.expected_gpus, HashMap::new(), String::new()),
        };
        m.insert(
            "gpu_count".into(),
            Value::Int(i64::try_from(count).unwrap_or(0)),
        );
        m.insert("health_checks".into(), checks.into());
        m.insert("driver_version".into(), s(&driver));
        m.into()
    }
}

fn ecc(g: &GpuObservation, ty: &str) -> f64 {
    g.ecc_errors
        .get(&(ty.to_string(), "volatile".to_string()))
        .copied()
        .unwrap_or(0.0)
}

fn growth(now: f64, before: Option<f64>) -> f64 {
    // A counter that went down started over (agent or driver restart): count from zero.
    match before {
        Some(b) if now >= b => now - b,
        Some(_) => now,
        None => 0.0,
    }
}

/// One GPU as a CEL map; `prev` is the same GPU in the previous observation and the seconds
/// between the two.
pub(crate) fn gpu_value(g: &GpuObservation, prev: Option<(&GpuObservation, f64)>) -> Value {
    let mut m: HashMap<String, Value> = HashMap::with_capacity(g.values.len() + 14);
    for (k, v) in &g.values {
        m.insert(k.clone(), Value::Float(*v));
    }
    m.insert("index".into(), Value::Int(i64::from(g.index)));
    m.insert("uuid".into(), s(&g.uuid));
    m.insert("model".into(), s(&g.model));
    m.insert("up".into(), Value::Bool(g.up));
    let xids: HashMap<String, Value> = g
        .xid_errors
        .iter()
        .map(|(c, n)| (c.to_string(), Value::Float(*n)))
        .collect();
    m.insert("xid_errors".into(), xids.into());
    let (corr, unc) = (ecc(g, "corrected"), ecc(g, "uncorrected"));
    m.insert("ecc_corrected".into(), Value::Float(corr));
    m.insert("ecc_uncorrected".into(), Value::Float(unc));
    let nv_err: f64 = g.nvlink_errors.values().sum();
    m.insert("nvlink_errors".into(), Value::Float(nv_err));
    let down = g.nvlink_up.values().filter(|up| !**up).count();
    m.insert(
        "nvlink_down".into(),
        Value::Int(i64::try_from(down).unwrap_or(0)),
    );
    let replays = g.values.get("pcie_replays_total").copied().unwrap_or(0.0);
    let (per_hour, nv_delta, replay_delta) = match prev {
        Some((p, dt)) => {
            let corr_growth = growth(corr, Some(ecc(p, "corrected")));
            (
                if dt > 0.0 {
                    corr_growth * 3600.0 / dt
                } else {
                    0.0
                },
                growth(nv_err, Some(p.nvlink_errors.values().sum())),
                growth(replays, p.values.get("pcie_replays_total").copied()),
            )
        }
        None => (0.0, 0.0, 0.0),
    };
    m.insert("ecc_corrected_per_hour".into(), Value::Float(per_hour));
    m.insert("nvlink_errors_delta".into(), Value::Float(nv_delta));
    m.insert("pcie_replays_delta".into(), Value::Float(replay_delta));
    let clocks: Vec<Value> = g.clock_events.iter().map(|r| s(r)).collect();
    m.insert("clock_events".into(), clocks.into());
    m.into()
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
