//! The agent's GPU facts and events in the contract's types.

use std::time::SystemTime;

use super::super::bindings::types as wit;
use crate::backend::{GpuInfo, GpuSample};
use crate::collector::Snapshot;

/// Converts the agent's GPU facts to the contract's.
pub fn gpu_info(i: &GpuInfo) -> wit::GpuInfo {
    wit::GpuInfo {
        index: i.index,
        uuid: i.uuid.clone(),
        model: i.model.clone(),
        pci_bus_id: i.pci_bus_id.clone(),
        serial: i.serial.clone(),
        memory_total_bytes: i.memory_total_bytes,
        power_limit_watts: i.power_limit_watts,
        pcie_max_generation: i.pcie_max_generation,
        pcie_max_width: i.pcie_max_width,
        nvlink_count: i.nvlink_count,
        slowdown_temperature_celsius: i.slowdown_temperature_celsius,
        shutdown_temperature_celsius: i.shutdown_temperature_celsius,
    }
}

/// Converts one GPU's sample (`None`: lost) to the contract's; NVLinks only when asked for.
pub fn gpu_sample(index: u32, s: Option<&GpuSample>, nvlinks: bool) -> wit::GpuSample {
    let Some(s) = s else {
        return wit::GpuSample {
            index,
            lost: true,
            utilization: None,
            memory_utilization: None,
            memory_used_bytes: None,
            memory_free_bytes: None,
            memory_reserved_bytes: None,
            temperature_celsius: None,
            memory_temperature_celsius: None,
            power_watts: None,
            energy_joules: None,
            sm_clock_hertz: None,
            memory_clock_hertz: None,
            clock_event_reasons: None,
            pcie_generation: None,
            pcie_width: None,
            pcie_replays: None,
            ecc: wit::EccCounts {
                corrected_volatile: None,
                uncorrected_volatile: None,
                corrected_aggregate: None,
                uncorrected_aggregate: None,
            },
            remapped_rows: None,
            nvlinks: Vec::new(),
            fan_speed: None,
            recovery_action: None,
            compute_processes: None,
            compute_processes_memory_bytes: None,
        };
    };
    wit::GpuSample {
        index,
        lost: false,
        utilization: s.utilization,
        memory_utilization: s.memory_utilization,
        memory_used_bytes: s.memory_used_bytes,
        memory_free_bytes: s.memory_free_bytes,
        memory_reserved_bytes: s.memory_reserved_bytes,
        temperature_celsius: s.temperature_celsius,
        memory_temperature_celsius: s.memory_temperature_celsius,
        power_watts: s.power_watts,
        energy_joules: s.energy_joules,
        sm_clock_hertz: s.sm_clock_hertz,
        memory_clock_hertz: s.memory_clock_hertz,
        clock_event_reasons: s.clock_event_reasons,
        pcie_generation: s.pcie_generation,
        pcie_width: s.pcie_width,
        pcie_replays: s.pcie_replays,
        ecc: wit::EccCounts {
            corrected_volatile: s.ecc.corrected_volatile,
            uncorrected_volatile: s.ecc.uncorrected_volatile,
            corrected_aggregate: s.ecc.corrected_aggregate,
            uncorrected_aggregate: s.ecc.uncorrected_aggregate,
        },
        remapped_rows: s.remapped_rows.map(|r| wit::RemappedRows {
            correctable: r.correctable,
            uncorrectable: r.uncorrectable,
            pending: r.pending,
            failure: r.failure,
        }),
        nvlinks: s
            .nvlinks
            .iter()
            .filter(|_| nvlinks)
            .map(|l| wit::Nvlink {
                link: l.link,
                up: l.up,
                replay_errors: l.replay_errors,
                recovery_errors: l.recovery_errors,
                crc_flit_errors: l.crc_flit_errors,
                crc_data_errors: l.crc_data_errors,
            })
            .collect(),
        fan_speed: s.fan_speed,
        recovery_action: s.recovery_action,
        compute_processes: s.compute_processes,
        compute_processes_memory_bytes: s.compute_processes_memory_bytes,
    }
}

pub(super) fn samples_of(snap: &Snapshot, nvlinks: bool) -> Vec<wit::GpuSample> {
    snap.gpus
        .iter()
        .map(|(i, s)| gpu_sample(i.index, s.as_ref(), nvlinks))
        .collect()
}

pub(super) fn action(a: Option<gpuwarden_wire::Action>) -> wit::Action {
    match a {
        None => wit::Action::None,
        Some(gpuwarden_wire::Action::Ignore) => wit::Action::Ignore,
        Some(gpuwarden_wire::Action::RestartApp) => wit::Action::RestartApp,
        Some(gpuwarden_wire::Action::ResetGpu) => wit::Action::ResetGpu,
        Some(gpuwarden_wire::Action::RebootNode) => wit::Action::RebootNode,
        Some(gpuwarden_wire::Action::ContactSupport) => wit::Action::ContactSupport,
    }
}

pub(super) fn unix_ms(rfc3339: &str) -> u64 {
    humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}
