//! Names of the metrics the agent exposes, in one place.
//!
//! Native names follow Prometheus conventions: base units, `_total` for counters.
//! Per-GPU series carry the labels `gpu`, `uuid`, `model` and the node's configured labels.

/// Prefix of every per-GPU metric.
pub const GPU_PREFIX: &str = "gpuwarden_gpu_";
/// 1 when the GPU answered the last collection, 0 when it could not be read.
pub const GPU_UP: &str = "gpuwarden_gpu_up";
/// GPU temperature.
pub const GPU_TEMPERATURE: &str = "gpuwarden_gpu_temperature_celsius";
/// Memory (HBM) temperature.
pub const GPU_MEMORY_TEMPERATURE: &str = "gpuwarden_gpu_memory_temperature_celsius";
/// Power draw.
pub const GPU_POWER: &str = "gpuwarden_gpu_power_watts";
/// Enforced power limit.
pub const GPU_POWER_LIMIT: &str = "gpuwarden_gpu_power_limit_watts";
/// GPU utilization, 0..1.
pub const GPU_UTILIZATION: &str = "gpuwarden_gpu_utilization_ratio";
/// Memory used.
pub const GPU_MEMORY_USED: &str = "gpuwarden_gpu_memory_used_bytes";
/// XID errors by code (`xid` label).
pub const GPU_XID_ERRORS: &str = "gpuwarden_gpu_xid_errors_total";
/// ECC errors by `type` (corrected, uncorrected) and `counter` (volatile, aggregate).
pub const GPU_ECC_ERRORS: &str = "gpuwarden_gpu_ecc_errors_total";
/// Active clock-event (throttle) reasons, one series per `reason`.
pub const GPU_CLOCK_EVENT: &str = "gpuwarden_gpu_clock_event_active";
/// NVLink state per `link`: 1 up, 0 down.
pub const GPU_NVLINK_UP: &str = "gpuwarden_gpu_nvlink_up";
/// NVLink error counters per `link` and `type`.
pub const GPU_NVLINK_ERRORS: &str = "gpuwarden_gpu_nvlink_errors_total";
/// Current PCIe link generation.
pub const GPU_PCIE_LINK_GEN: &str = "gpuwarden_gpu_pcie_link_generation";
/// Current PCIe link width.
pub const GPU_PCIE_LINK_WIDTH: &str = "gpuwarden_gpu_pcie_link_width";
/// PCIe replay counter.
pub const GPU_PCIE_REPLAYS: &str = "gpuwarden_gpu_pcie_replays_total";
/// Remapped rows pending a GPU reset.
pub const GPU_REMAPPED_ROWS_PENDING: &str = "gpuwarden_gpu_remapped_rows_pending";
/// Row remapping failed.
pub const GPU_REMAPPED_ROWS_FAILURE: &str = "gpuwarden_gpu_remapped_rows_failure";
/// NVML's recovery action: 0 none, 1 GPU reset, 2 node reboot, 3 drain P2P, 4 drain and reset.
pub const GPU_RECOVERY_ACTION: &str = "gpuwarden_gpu_recovery_action";
/// Health-check status per `check`: 0 healthy, 1 degraded, 2 unhealthy, 3 unknown.
pub const HEALTH_CHECK_STATUS: &str = "gpuwarden_health_check_status";
/// Node info: driver, CUDA and agent versions as labels.
pub const NODE_INFO: &str = "gpuwarden_node_info";
/// Health events recorded by the agent, by `kind` and `severity`.
pub const AGENT_EVENTS: &str = "gpuwarden_agent_events_total";
/// Unix time the agent process started: a new value means a new event sequence.
pub const AGENT_START_TIME: &str = "gpuwarden_agent_start_time_seconds";
/// Workload slots on the node by `state` (`free`, `busy`), from the local workload source
/// (`[workload]` in the agent's config); absent when none is configured or it cannot be read.
pub const WORKLOAD_SLOTS: &str = "gpuwarden_workload_slots";
/// 1 when the node's workload is ready to take work (a pool ready and not draining), else 0;
/// absent like [`WORKLOAD_SLOTS`].
pub const WORKLOAD_READY: &str = "gpuwarden_workload_ready";
