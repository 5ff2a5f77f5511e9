//! Renders a collection into the Prometheus text format: the native `gpuwarden_*` families,
//! the agent's own metrics, the node's, and (optionally) dcgm-exporter's.
//!
//! Rendering happens once per collection (and after a new event), never per scrape: a scrape
//! sends the bytes of the latest render, so concurrent scrapes cost no NVML calls and no
//! formatting.

mod agent;
pub mod dcgm;
mod input;

pub use input::{CollectorStat, ExtraMetrics, GpuState, KmsgStats, RenderInput};

use std::sync::atomic::{AtomicUsize, Ordering};

use gpuwarden_wire::metric as m;

use crate::backend::{clock_event, GpuInfo, GpuSample};
use crate::system;
use crate::text::{labels, push_label, Kind, Text};

type Get = fn(&GpuInfo, &GpuSample) -> Option<f64>;

/// The per-GPU families with one series per GPU.
const SIMPLE: &[(&str, &str, Kind, Get)] = &[
    (
        m::GPU_UTILIZATION,
        "Share of time one or more kernels ran on the GPU.",
        Kind::Gauge,
        |_, s| s.utilization,
    ),
    (
        "gpuwarden_gpu_memory_utilization_ratio",
        "Share of time GPU memory was read or written.",
        Kind::Gauge,
        |_, s| s.memory_utilization,
    ),
    (
        "gpuwarden_gpu_encoder_utilization_ratio",
        "Video encoder utilization.",
        Kind::Gauge,
        |_, s| s.encoder_utilization,
    ),
    (
        "gpuwarden_gpu_decoder_utilization_ratio",
        "Video decoder utilization.",
        Kind::Gauge,
        |_, s| s.decoder_utilization,
    ),
    (
        m::GPU_MEMORY_USED,
        "GPU memory in use.",
        Kind::Gauge,
        |_, s| s.memory_used_bytes.map(|v| v as f64),
    ),
    (
        "gpuwarden_gpu_memory_free_bytes",
        "GPU memory free.",
        Kind::Gauge,
        |_, s| s.memory_free_bytes.map(|v| v as f64),
    ),
    (
        "gpuwarden_gpu_memory_reserved_bytes",
        "GPU memory reserved by the driver.",
        Kind::Gauge,
        |_, s| s.memory_reserved_bytes.map(|v| v as f64),
    ),
    (
        "gpuwarden_gpu_memory_total_bytes",
        "GPU memory installed.",
        Kind::Gauge,
        |i, _| Some(i.memory_total_bytes as f64),
    ),
    (
        m::GPU_TEMPERATURE,
        "GPU temperature.",
        Kind::Gauge,
        |_, s| s.temperature_celsius,
    ),
    (
        m::GPU_MEMORY_TEMPERATURE,
        "GPU memory (HBM) temperature.",
        Kind::Gauge,
        |_, s| s.memory_temperature_celsius,
    ),
    (
        "gpuwarden_gpu_slowdown_temperature_celsius",
        "Temperature at which the GPU slows down.",
        Kind::Gauge,
        |i, _| i.slowdown_temperature_celsius,
    ),
    (
        "gpuwarden_gpu_shutdown_temperature_celsius",
        "Temperature at which the GPU shuts down.",
        Kind::Gauge,
        |i, _| i.shutdown_temperature_celsius,
    ),
    (m::GPU_POWER, "Power draw.", Kind::Gauge, |_, s| {
        s.power_watts
    }),
    (
        m::GPU_POWER_LIMIT,
        "Enforced power limit.",
        Kind::Gauge,
        |i, _| i.power_limit_watts,
    ),
    (
        "gpuwarden_gpu_energy_joules_total",
        "Energy consumed since the driver loaded.",
        Kind::Counter,
        |_, s| s.energy_joules,
    ),
    (
        "gpuwarden_gpu_sm_clock_hertz",
        "SM clock.",
        Kind::Gauge,
        |_, s| s.sm_clock_hertz,
    ),
    (
        "gpuwarden_gpu_memory_clock_hertz",
        "Memory clock.",
        Kind::Gauge,
        |_, s| s.memory_clock_hertz,
    ),
    (
        m::GPU_PCIE_LINK_GEN,
        "Current PCIe link generation.",
        Kind::Gauge,
        |_, s| s.pcie_generation.map(f64::from),
    ),
    (
        m::GPU_PCIE_LINK_WIDTH,
        "Current PCIe link width (lanes).",
        Kind::Gauge,
        |_, s| s.pcie_width.map(f64::from),
    ),
    (
        "gpuwarden_gpu_pcie_link_max_generation",
        "Maximum PCIe link generation.",
        Kind::Gauge,
        |i, _| i.pcie_max_generation.map(f64::from),
    ),
    (
        "gpuwarden_gpu_pcie_link_max_width",
        "Maximum PCIe link width (lanes).",
        Kind::Gauge,
        |i, _| i.pcie_max_width.map(f64::from),
    ),
    (
        m::GPU_PCIE_REPLAYS,
        "PCIe replays (link-level retransmissions).",
        Kind::Counter,
        |_, s| s.pcie_replays.map(|v| v as f64),
    ),
    (
        m::GPU_REMAPPED_ROWS_PENDING,
        "1 when a row remap waits for a GPU reset.",
        Kind::Gauge,
        |_, s| s.remapped_rows.map(|r| f64::from(u8::from(r.pending))),
    ),
    (
        m::GPU_REMAPPED_ROWS_FAILURE,
        "1 when row remapping failed.",
        Kind::Gauge,
        |_, s| s.remapped_rows.map(|r| f64::from(u8::from(r.failure))),
    ),
    (
        "gpuwarden_gpu_fan_speed_ratio",
        "Fan speed as a share of its maximum.",
        Kind::Gauge,
        |_, s| s.fan_speed,
    ),
    (
        m::GPU_RECOVERY_ACTION,
        "NVML recovery action: 0 none, 1 GPU reset, 2 node reboot, 3 drain P2P, 4 drain and reset.",
        Kind::Gauge,
        |_, s| s.recovery_action.map(f64::from),
    ),
    (
        "gpuwarden_gpu_compute_processes",
        "Running compute processes.",
        Kind::Gauge,
        |_, s| s.compute_processes.map(f64::from),
    ),
    (
        "gpuwarden_gpu_compute_processes_memory_bytes",
        "GPU memory held by running compute processes.",
        Kind::Gauge,
        |_, s| s.compute_processes_memory_bytes.map(|v| v as f64),
    ),
    (
        "gpuwarden_gpu_graphics_engine_active_ratio",
        "Share of time the graphics engine was active (GPM).",
        Kind::Gauge,
        |_, s| s.prof.map(|p| p.gr_engine_active),
    ),
    (
        "gpuwarden_gpu_tensor_active_ratio",
        "Share of time the tensor pipes were active (GPM).",
        Kind::Gauge,
        |_, s| s.prof.map(|p| p.tensor_active),
    ),
    (
        "gpuwarden_gpu_dram_active_ratio",
        "Share of time the memory interface was active (GPM).",
        Kind::Gauge,
        |_, s| s.prof.map(|p| p.dram_active),
    ),
    (
        "gpuwarden_gpu_pcie_transmit_bytes_per_second",
        "PCIe transmit rate (GPM).",
        Kind::Gauge,
        |_, s| s.prof.map(|p| p.pcie_tx_bytes_per_second),
    ),
    (
        "gpuwarden_gpu_pcie_receive_bytes_per_second",
        "PCIe receive rate (GPM).",
        Kind::Gauge,
        |_, s| s.prof.map(|p| p.pcie_rx_bytes_per_second),
    ),
];

/// The last body's length: the next is as long (from 96 KiB, 8 GPUs' ~200 KiB grew twice).
static LAST_LEN: AtomicUsize = AtomicUsize::new(96 * 1024);

/// Renders the whole `/metrics` body.
pub fn render(input: &RenderInput<'_>) -> String {
    let mut t = Text::with_capacity(LAST_LEN.load(Ordering::Relaxed) * 17 / 16);
    let inv = input.inventory;
    let with_sample = || {
        inv.gpus
            .iter()
            .zip(input.gpus)
            .filter_map(|(i, g)| g.sample.as_ref().map(|s| (i, g, s)))
    };

    t.family(m::GPU_UP, "1 when the GPU answered the last collection, 0 when it could not be read (fell off the bus).", Kind::Gauge);
    for g in input.gpus {
        t.sample(
            m::GPU_UP,
            &g.labels,
            "",
            if g.sample.is_some() { 1.0 } else { 0.0 },
        );
    }
    t.family(
        "gpuwarden_gpu_info",
        "GPU facts as labels; value 1.",
        Kind::Gauge,
    );
    for (i, g) in inv.gpus.iter().zip(input.gpus) {
        let mut extra = labels(&[("pci_bus_id", &i.pci_bus_id)]);
        if let Some(s) = &i.serial {
            push_label(&mut extra, "serial", s);
        }
        t.sample("gpuwarden_gpu_info", &g.labels, &extra, 1.0);
    }
    for (name, help, kind, get) in SIMPLE {
        t.family(name, help, *kind);
        for (i, g, s) in with_sample() {
            if let Some(v) = get(i, s) {
                t.sample(name, &g.labels, "", v);
            }
        }
    }

    t.family(m::GPU_ECC_ERRORS, "ECC errors by type (corrected, uncorrected) and counter (volatile: since driver load, aggregate: lifetime).", Kind::Counter);
    for (_, g, s) in with_sample() {
        let e = &s.ecc;
        for (v, extra) in [
            (
                e.corrected_volatile,
                "type=\"corrected\",counter=\"volatile\"",
            ),
            (
                e.uncorrected_volatile,
                "type=\"uncorrected\",counter=\"volatile\"",
            ),
            (
                e.corrected_aggregate,
                "type=\"corrected\",counter=\"aggregate\"",
            ),
            (
                e.uncorrected_aggregate,
                "type=\"uncorrected\",counter=\"aggregate\"",
            ),
        ] {
            if let Some(v) = v {
                t.sample(m::GPU_ECC_ERRORS, &g.labels, extra, v as f64);
            }
        }
    }
    t.family(
        "gpuwarden_gpu_remapped_rows_total",
        "Rows remapped, by the type of error that caused it.",
        Kind::Counter,
    );
    for (_, g, s) in with_sample() {
        if let Some(r) = s.remapped_rows {
            t.sample(
                "gpuwarden_gpu_remapped_rows_total",
                &g.labels,
                "type=\"correctable\"",
                r.correctable as f64,
            );
            t.sample(
                "gpuwarden_gpu_remapped_rows_total",
                &g.labels,
                "type=\"uncorrectable\"",
                r.uncorrectable as f64,
            );
        }
    }
    t.family(
        m::GPU_CLOCK_EVENT,
        "1 while a clock-event (throttle) reason is active.",
        Kind::Gauge,
    );
    for (_, g, s) in with_sample() {
        if let Some(bits) = s.clock_event_reasons {
            for (bit, reason) in clock_event::REASONS {
                let extra = format!("reason=\"{reason}\"");
                t.sample(
                    m::GPU_CLOCK_EVENT,
                    &g.labels,
                    &extra,
                    if bits & bit != 0 { 1.0 } else { 0.0 },
                );
            }
        }
    }
    t.family(
        m::GPU_NVLINK_UP,
        "1 when the NVLink is active.",
        Kind::Gauge,
    );
    for (_, g, s) in with_sample() {
        for l in &s.nvlinks {
            t.sample(
                m::GPU_NVLINK_UP,
                &g.labels,
                &format!("link=\"{}\"", l.link),
                if l.up { 1.0 } else { 0.0 },
            );
        }
    }
    t.family(
        m::GPU_NVLINK_ERRORS,
        "NVLink data-link errors by link and type.",
        Kind::Counter,
    );
    for (_, g, s) in with_sample() {
        for l in &s.nvlinks {
            for (v, ty) in [
                (l.replay_errors, "replay"),
                (l.recovery_errors, "recovery"),
                (l.crc_flit_errors, "crc_flit"),
                (l.crc_data_errors, "crc_data"),
            ] {
                if let Some(v) = v {
                    t.sample(
                        m::GPU_NVLINK_ERRORS,
                        &g.labels,
                        &format!("link=\"{}\",type=\"{ty}\"", l.link),
                        v as f64,
                    );
                }
            }
        }
    }
    t.family(
        m::GPU_XID_ERRORS,
        "XID errors seen since the agent started, by code.",
        Kind::Counter,
    );
    for g in input.gpus {
        for (code, n) in &g.xids {
            t.sample(
                m::GPU_XID_ERRORS,
                &g.labels,
                &format!("xid=\"{code}\""),
                *n as f64,
            );
        }
    }

    agent::render(&mut t, input);
    if let Some(s) = input.system {
        system::render(&mut t, s);
    }
    if input.dcgm_compat {
        dcgm::render(&mut t, input);
    }
    if let Some(extra) = input.extra {
        extra.render(&mut t);
    }
    let body = t.finish();
    LAST_LEN.store(body.len(), Ordering::Relaxed);
    body
}
