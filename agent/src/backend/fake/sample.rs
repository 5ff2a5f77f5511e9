//! What the fake GPUs read: a bounded random walk in utilization that the other readings
//! follow, with injected faults laid over it.

use std::sync::Arc;
use std::time::Instant;

use super::{FakeBackend, MIB};
use crate::backend::{
    clock_event, BackendError, EccCounts, EventSink, GpuBackend, GpuSample, Inventory,
    NvLinkSample, ProfSample, RemappedRows,
};

impl GpuBackend for Arc<FakeBackend> {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn inventory(&self) -> Result<Inventory, BackendError> {
        Ok(self.inventory.clone())
    }

    fn sample(&self, gpu: u32) -> Result<GpuSample, BackendError> {
        let info = self
            .inventory
            .gpus
            .get(gpu as usize)
            .ok_or(BackendError::NoSuchGpu(gpu))?;
        let mut gpus = self.lock();
        let g = gpus
            .get_mut(gpu as usize)
            .ok_or(BackendError::NoSuchGpu(gpu))?;
        if g.lost {
            return Err(BackendError::GpuLost(gpu));
        }
        // Drift: a bounded random walk in utilization; the rest follows it.
        let step = (g.rng.f64() - 0.5) * 0.1;
        g.utilization = (g.utilization + step).clamp(0.3, 0.98);
        let mem_step = (g.rng.f64() - 0.5) * 2000.0 * MIB as f64;
        g.memory_used = (g.memory_used as f64 + mem_step)
            .clamp(10_000.0 * MIB as f64, 78_000.0 * MIB as f64) as u64;
        let u = g.utilization;
        let power = g.power.unwrap_or(120.0 + 520.0 * u + g.rng.f64() * 10.0);
        let now = Instant::now();
        let dt = g
            .last_sample
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        g.last_sample = Some(now);
        g.energy_joules += power * dt;
        let temperature = g.temperature.unwrap_or(38.0 + 30.0 * u + g.rng.f64());
        let reserved = 600 * MIB;
        let nvlinks = (0..info.nvlink_count)
            .map(|link| NvLinkSample {
                link,
                up: !g.nvlink_down.contains(&link),
                replay_errors: Some(0),
                recovery_errors: Some(0),
                crc_flit_errors: Some(g.nvlink_errors.get(link as usize).copied().unwrap_or(0)),
                crc_data_errors: Some(0),
            })
            .collect();
        // Fake GPUs run no compute process unless one is injected (drains need to know).
        let processes = g.processes;
        Ok(GpuSample {
            utilization: Some(u),
            memory_utilization: Some(u * 0.6),
            encoder_utilization: Some(0.0),
            decoder_utilization: Some(0.0),
            memory_used_bytes: Some(g.memory_used),
            memory_free_bytes: Some(info.memory_total_bytes - g.memory_used - reserved),
            memory_reserved_bytes: Some(reserved),
            temperature_celsius: Some(temperature.round()),
            memory_temperature_celsius: Some((temperature + 6.0).round()),
            power_watts: Some(power),
            energy_joules: Some(g.energy_joules),
            sm_clock_hertz: Some(if g.throttle & clock_event::HARDWARE != 0 {
                1_095e6
            } else {
                1_980e6
            }),
            memory_clock_hertz: Some(2_619e6),
            clock_event_reasons: Some(g.throttle),
            pcie_generation: Some(if g.pcie_degraded { 3 } else { 5 }),
            pcie_width: Some(if g.pcie_degraded { 8 } else { 16 }),
            pcie_replays: Some(g.pcie_replays),
            ecc: EccCounts {
                corrected_volatile: Some(g.ecc_corrected),
                uncorrected_volatile: Some(g.ecc_uncorrected),
                corrected_aggregate: Some(g.ecc_corrected),
                uncorrected_aggregate: Some(g.ecc_uncorrected),
            },
            remapped_rows: Some(RemappedRows {
                correctable: 0,
                uncorrectable: g.ecc_uncorrected.min(1),
                pending: g.remap_pending,
                failure: g.remap_failure,
            }),
            nvlinks,
            nvlink_bandwidth_total: Some((g.energy_joules * 1000.0) as u64),
            // SXM boards have no fans of their own.
            fan_speed: None,
            recovery_action: Some(g.recovery_action),
            compute_processes: Some(processes),
            compute_processes_memory_bytes: Some(if processes > 0 { g.memory_used } else { 0 }),
            prof: Some(ProfSample {
                gr_engine_active: u,
                tensor_active: u * 0.7,
                dram_active: u * 0.5,
                pcie_tx_bytes_per_second: 2.0e9 * u,
                pcie_rx_bytes_per_second: 3.0e9 * u,
            }),
        })
    }

    fn start_events(&self, sink: EventSink) -> Result<(), BackendError> {
        *self.sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(sink);
        Ok(())
    }
}
