//! What a render reads: the per-GPU state the collector keeps, the collector and kernel-log
//! counters, and the input of one render. Every renderer (the native families, the agent's
//! own, dcgm-exporter's) reads these types and nothing else of its siblings.

use std::collections::BTreeMap;

use crate::backend::{GpuSample, Inventory};
use crate::system::SystemStats;
use crate::text::Text;

/// Metrics rendered by another part of the agent (the plugins), appended to the body.
pub trait ExtraMetrics: Send + Sync {
    /// Writes its families.
    fn render(&self, t: &mut Text);
}

/// One collector's last run, node_exporter style.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CollectorStat {
    /// Seconds the last run took.
    pub duration_seconds: f64,
    /// Whether the last run succeeded.
    pub success: bool,
    /// Failed runs since start.
    pub errors_total: u64,
}

/// Kernel-log reader counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KmsgStats {
    /// Whether the kernel log is being read.
    pub up: bool,
    /// XID lines read.
    pub xid_lines: u64,
    /// Lines that claimed to be XIDs but could not be parsed (skipped).
    pub malformed_lines: u64,
    /// XID lines whose PCI address matched no GPU.
    pub unmatched_lines: u64,
}

/// Per-GPU state kept by the collector.
#[derive(Debug, Clone, Default)]
pub struct GpuState {
    /// Pre-rendered labels: gpu, uuid, model and the node labels.
    pub labels: String,
    /// Pre-rendered dcgm-exporter labels.
    pub dcgm_labels: String,
    /// The latest sample; `None` when the GPU cannot be read.
    pub sample: Option<GpuSample>,
    /// XIDs counted per code.
    pub xids: BTreeMap<u32, u64>,
    /// The last XID seen (dcgm-exporter's `DCGM_FI_DEV_XID_ERRORS`), 0 for none.
    pub last_xid: u32,
}

/// Everything a render needs.
pub struct RenderInput<'a> {
    /// Node id.
    pub node_id: &'a str,
    /// Backend name.
    pub backend: &'a str,
    /// GPUs and driver.
    pub inventory: &'a Inventory,
    /// Per-GPU state, by index.
    pub gpus: &'a [GpuState],
    /// Node readings, when enabled.
    pub system: Option<&'a SystemStats>,
    /// Collector runs by name.
    pub collectors: &'a [(&'static str, CollectorStat)],
    /// Events by (kind, severity).
    pub event_counts: &'a BTreeMap<(&'static str, &'static str), u64>,
    /// Kernel-log counters.
    pub kmsg: KmsgStats,
    /// Whether the GPU backend's event stream (NVML's critical events) is being read.
    pub gpu_events_up: bool,
    /// Process RSS and CPU seconds.
    pub process: Option<(u64, f64)>,
    /// Unix time of the collection.
    pub timestamp_seconds: f64,
    /// Add dcgm-exporter series.
    pub dcgm_compat: bool,
    /// More families to append.
    pub extra: Option<&'a dyn ExtraMetrics>,
}

impl std::fmt::Debug for RenderInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderInput")
            .field("node_id", &self.node_id)
            .field("gpus", &self.gpus.len())
            .finish()
    }
}
