//! Health events: what the agent saw happen to a GPU, in the order it saw it.

use serde::{Deserialize, Serialize};

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth recording; needs no action (for example a row remap that succeeded).
    Info,
    /// The GPU still works but something is wrong or getting worse.
    Warning,
    /// The GPU (or node) cannot be trusted with work until the recommended action is taken.
    Fatal,
}

impl Severity {
    /// The lower-case name used in JSON, metrics and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Fatal => "fatal",
        }
    }
}

/// The immediate action NVIDIA (or gpuwarden, for non-XID events) recommends.
///
/// The vocabulary follows the "resolution buckets" of NVIDIA's XID catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing to do.
    Ignore,
    /// Restart the application that hit the error; the GPU is fine.
    RestartApp,
    /// Drain the GPU and reset it (`nvidia-smi -r`).
    ResetGpu,
    /// Reboot the node.
    RebootNode,
    /// Escalate to NVIDIA support / hardware replacement.
    ContactSupport,
}

impl Action {
    /// The snake_case name used in JSON, metrics and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Ignore => "ignore",
            Action::RestartApp => "restart_app",
            Action::ResetGpu => "reset_gpu",
            Action::RebootNode => "reboot_node",
            Action::ContactSupport => "contact_support",
        }
    }
}

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An XID error reported by the driver (`code` is the XID).
    Xid,
    /// An ECC error (`code` is 1 for single-bit/corrected, 2 for double-bit/uncorrected).
    Ecc,
    /// The temperature crossed a warning or critical threshold.
    Thermal,
    /// An NVLink went down (`code` is the link number).
    Nvlink,
    /// The PCIe link runs below its maximum generation or width.
    Pcie,
    /// Power draw above the enforced power limit.
    Power,
    /// A hardware or thermal clock slowdown started.
    Throttle,
    /// The GPU can no longer be read (fell off the bus).
    GpuLost,
    /// NVML's GPU recovery action asks for a reset or reboot (`code` is NVML's value).
    RecoveryAction,
    /// A row remap is pending a reset (`code` 1) or failed (`code` 2).
    RowRemap,
    /// A verdict from a health-check plugin.
    Plugin,
}

impl EventKind {
    /// The snake_case name used in JSON, metrics and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Xid => "xid",
            EventKind::Ecc => "ecc",
            EventKind::Thermal => "thermal",
            EventKind::Nvlink => "nvlink",
            EventKind::Pcie => "pcie",
            EventKind::Power => "power",
            EventKind::Throttle => "throttle",
            EventKind::GpuLost => "gpu_lost",
            EventKind::RecoveryAction => "recovery_action",
            EventKind::RowRemap => "row_remap",
            EventKind::Plugin => "plugin",
        }
    }
}

/// One health event, as served by the agent at `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthEvent {
    /// Monotonically increasing sequence number, unique within one agent run.
    pub seq: u64,
    /// When the agent recorded it (RFC 3339, UTC).
    pub time: String,
    /// GPU index, absent for node-level events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
    /// GPU UUID, absent for node-level events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// What happened.
    pub kind: EventKind,
    /// Kind-specific code: the XID, the link number, NVML's recovery action, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u64>,
    /// Human-readable description.
    pub message: String,
    /// How serious it is.
    pub severity: Severity,
    /// Recommended immediate action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Where the agent learned of it: `nvml`, `kmsg`, `collector`, `fake`, `plugin:<name>`.
    pub source: String,
}

/// The body of `GET /v1/events?after=SEQ`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    /// Events with `seq > after`, oldest first.
    pub events: Vec<HealthEvent>,
    /// The cursor to pass as `after` next time.
    pub next: u64,
    /// Identifies this run of the agent: when it changes, sequence numbers restarted.
    pub instance: String,
    /// True when events after the cursor were already evicted from the agent's ring.
    pub truncated: bool,
    /// True when the agent holds events after this page: the page ended at its `limit` or
    /// at the agent's byte budget per page. Read again from `next`. Absent (false) from
    /// agents older than this field, whose pages end only at `limit`.
    #[serde(default)]
    pub more: bool,
}
