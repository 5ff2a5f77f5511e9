//! dcgm-exporter compatibility (`metrics.dcgm_compat = true`).
//!
//! Adds the series of dcgm-exporter's default counter set with its names, units, types and
//! label keys (`gpu`, `UUID`, `pci_bus_id`, `device`, `modelName`, `Hostname`,
//! `DCGM_FI_DRIVER_VERSION`), so NVIDIA's Grafana dashboards work unchanged. Units are
//! dcgm's, not Prometheus base units: MHz, °C, W, mJ, %, MiB. The `DCGM_FI_PROF_*` values come
//! from NVML GPM and are absent on GPUs without it (before Hopper), as they are absent from
//! dcgm-exporter without DCGM profiling. `DCGM_FI_DEV_VGPU_LICENSE_STATUS` applies to vGPU
//! guests only and is left out.

use super::input::{GpuState, RenderInput};
use crate::backend::{GpuInfo, GpuSample};
use crate::text::{labels, Kind, Text};

type Get = fn(&GpuInfo, &GpuSample, &GpuState) -> Option<f64>;
const MIB: f64 = 1024.0 * 1024.0;

/// dcgm-exporter's default counters: name, type, help (dcgm-exporter's wording), value.
const SERIES: &[(&str, Kind, &str, Get)] = &[
    ("DCGM_FI_DEV_SM_CLOCK", Kind::Gauge, "SM clock frequency (in MHz).", |_, s, _| s.sm_clock_hertz.map(|h| h / 1e6)),
    ("DCGM_FI_DEV_MEM_CLOCK", Kind::Gauge, "Memory clock frequency (in MHz).", |_, s, _| s.memory_clock_hertz.map(|h| h / 1e6)),
    ("DCGM_FI_DEV_MEMORY_TEMP", Kind::Gauge, "Memory temperature (in C).", |_, s, _| s.memory_temperature_celsius),
    ("DCGM_FI_DEV_GPU_TEMP", Kind::Gauge, "GPU temperature (in C).", |_, s, _| s.temperature_celsius),
    ("DCGM_FI_DEV_POWER_USAGE", Kind::Gauge, "Power draw (in W).", |_, s, _| s.power_watts),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", Kind::Counter, "Total energy consumption since boot (in mJ).", |_, s, _| s.energy_joules.map(|j| (j * 1000.0).round())),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", Kind::Counter, "Total number of PCIe retries.", |_, s, _| s.pcie_replays.map(|v| v as f64)),
    ("DCGM_FI_DEV_GPU_UTIL", Kind::Gauge, "GPU utilization (in %).", |_, s, _| s.utilization.map(|u| (u * 100.0).round())),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", Kind::Gauge, "Memory utilization (in %).", |_, s, _| s.memory_utilization.map(|u| (u * 100.0).round())),
    ("DCGM_FI_DEV_ENC_UTIL", Kind::Gauge, "Encoder utilization (in %).", |_, s, _| s.encoder_utilization.map(|u| (u * 100.0).round())),
    ("DCGM_FI_DEV_DEC_UTIL", Kind::Gauge, "Decoder utilization (in %).", |_, s, _| s.decoder_utilization.map(|u| (u * 100.0).round())),
    ("DCGM_FI_DEV_XID_ERRORS", Kind::Gauge, "Value of the last XID error encountered.", |_, _, g| Some(f64::from(g.last_xid))),
    ("DCGM_FI_DEV_FB_FREE", Kind::Gauge, "Frame buffer memory free (in MiB).", |_, s, _| s.memory_free_bytes.map(|b| (b as f64 / MIB).floor())),
    ("DCGM_FI_DEV_FB_USED", Kind::Gauge, "Frame buffer memory used (in MiB).", |_, s, _| s.memory_used_bytes.map(|b| (b as f64 / MIB).floor())),
    ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", Kind::Counter, "Total number of NVLink bandwidth counters for all lanes.", |_, s, _| s.nvlink_bandwidth_total.map(|v| v as f64)),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", Kind::Counter, "Number of remapped rows for uncorrectable errors", |_, s, _| s.remapped_rows.map(|r| r.uncorrectable as f64)),
    ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", Kind::Counter, "Number of remapped rows for correctable errors", |_, s, _| s.remapped_rows.map(|r| r.correctable as f64)),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", Kind::Gauge, "Whether remapping of rows has failed", |_, s, _| s.remapped_rows.map(|r| f64::from(u8::from(r.failure)))),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", Kind::Gauge, "Ratio of time the graphics engine is active.", |_, s, _| s.prof.map(|p| p.gr_engine_active)),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", Kind::Gauge, "Ratio of cycles the tensor (HMMA) pipe is active.", |_, s, _| s.prof.map(|p| p.tensor_active)),
    ("DCGM_FI_PROF_DRAM_ACTIVE", Kind::Gauge, "Ratio of cycles the device memory interface is active sending or receiving data.", |_, s, _| s.prof.map(|p| p.dram_active)),
    ("DCGM_FI_PROF_PCIE_TX_BYTES", Kind::Gauge, "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - in bytes per second.", |_, s, _| s.prof.map(|p| p.pcie_tx_bytes_per_second)),
    ("DCGM_FI_PROF_PCIE_RX_BYTES", Kind::Gauge, "The rate of data received over the PCIe bus - including both protocol headers and data payloads - in bytes per second.", |_, s, _| s.prof.map(|p| p.pcie_rx_bytes_per_second)),
];

/// The label set dcgm-exporter puts on a GPU's series.
pub fn gpu_labels(info: &GpuInfo, hostname: &str, driver_version: &str) -> String {
    let device = format!("nvidia{}", info.minor_number.unwrap_or(info.index));
    labels(&[
        ("gpu", &info.index.to_string()),
        ("UUID", &info.uuid),
        ("pci_bus_id", &info.pci_bus_id),
        ("device", &device),
        ("modelName", &info.model),
        ("Hostname", hostname),
        ("DCGM_FI_DRIVER_VERSION", driver_version),
    ])
}

/// Writes the dcgm-exporter families.
pub fn render(t: &mut Text, input: &RenderInput<'_>) {
    for (name, kind, help, get) in SERIES {
        t.family(name, help, *kind);
        for (info, g) in input.inventory.gpus.iter().zip(input.gpus) {
            if let Some(v) = g.sample.as_ref().and_then(|s| get(info, s, g)) {
                t.sample(name, &g.dcgm_labels, "", v);
            }
        }
    }
}

/// The dcgm-exporter metric names this module can emit (24 series plus the driver label).
pub fn names() -> impl Iterator<Item = &'static str> {
    SERIES.iter().map(|s| s.0)
}
