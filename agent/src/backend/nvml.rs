//! The real backend: NVIDIA's NVML through `nvml-wrapper`, loaded at run time.
//!
//! `libnvidia-ml.so` is opened when the agent starts (never linked), so one binary runs on
//! GPU and non-GPU machines alike; without a driver the agent says so and suggests
//! `--fake-gpus`. Every NVML call is blocking: the collector calls [`GpuBackend::sample`] from
//! its own thread, and critical events are waited for on a dedicated thread.

mod events;
#[cfg(test)]
mod tests;

use std::sync::Mutex;

use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, TemperatureSensor, TemperatureThreshold,
};
use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::FieldValueSample;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::{
    NVML_FI_DEV_GET_GPU_RECOVERY_ACTION, NVML_FI_DEV_MEMORY_TEMP,
    NVML_FI_DEV_NVLINK_BANDWIDTH_C0_TOTAL, NVML_FI_DEV_REMAPPED_COR, NVML_FI_DEV_REMAPPED_FAILURE,
    NVML_FI_DEV_REMAPPED_PENDING, NVML_FI_DEV_REMAPPED_UNC,
};
use nvml_wrapper::{Device, GpmSample, Nvml};

use super::{
    BackendError, EccCounts, EventSink, GpuBackend, GpuInfo, GpuSample, Inventory, NvLinkSample,
    ProfSample, RemappedRows,
};

/// NVML has at most this many NVLinks per GPU (NVML_NVLINK_MAX_LINKS).
const MAX_NVLINKS: u32 = 18;

/// The NVML backend.
pub struct NvmlBackend {
    nvml: &'static Nvml,
    gpu_count: u32,
    /// The previous GPM sample per GPU; GPM metrics are computed between two samples.
    gpm: Mutex<Vec<Option<GpmSample<'static>>>>,
}

impl std::fmt::Debug for NvmlBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlBackend")
            .field("gpu_count", &self.gpu_count)
            .finish()
    }
}

fn unavailable(e: NvmlError) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

fn call_err(gpu: u32, call: &'static str) -> impl Fn(NvmlError) -> BackendError {
    move |e| match e {
        NvmlError::GpuLost => BackendError::GpuLost(gpu),
        other => BackendError::Call {
            gpu,
            call,
            message: other.to_string(),
        },
    }
}

/// Turns "not supported" into `None` and keeps real failures.
fn opt<T>(r: Result<T, NvmlError>) -> Result<Option<T>, NvmlError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(NvmlError::NotSupported | NvmlError::NoPermission | NvmlError::InvalidArg) => Ok(None),
        Err(NvmlError::FunctionNotFound | NvmlError::FailedToLoadSymbol(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn field_u64(s: &Result<FieldValueSample, NvmlError>) -> Option<u64> {
    match s.as_ref().ok()?.value.as_ref().ok()? {
        SampleValue::U32(v) => Some(u64::from(*v)),
        SampleValue::U64(v) => Some(*v),
        SampleValue::I64(v) => u64::try_from(*v).ok(),
        SampleValue::F64(v) => Some(*v as u64),
    }
}

impl NvmlBackend {
    /// Loads NVML and counts the GPUs. Fails with a message that suggests `--fake-gpus`.
    pub fn open() -> Result<Self, BackendError> {
        let nvml = Nvml::init().map_err(unavailable)?;
        let gpu_count = nvml.device_count().map_err(unavailable)?;
        if gpu_count == 0 {
            return Err(BackendError::Unavailable("NVML found no GPU".into()));
        }
        // NVML stays loaded for the life of the process; the event thread and device
        // handles borrow it.
        let nvml: &'static Nvml = Box::leak(Box::new(nvml));
        Ok(NvmlBackend {
            nvml,
            gpu_count,
            gpm: Mutex::new((0..gpu_count).map(|_| None).collect()),
        })
    }

    fn device(&self, gpu: u32) -> Result<Device<'static>, BackendError> {
        if gpu >= self.gpu_count {
            return Err(BackendError::NoSuchGpu(gpu));
        }
        self.nvml
            .device_by_index(gpu)
            .map_err(call_err(gpu, "nvmlDeviceGetHandleByIndex"))
    }

    fn gpu_info(&self, gpu: u32) -> Result<GpuInfo, BackendError> {
        let d = self.device(gpu)?;
        let e = |call| call_err(gpu, call);
        let nvlink_count = (0..MAX_NVLINKS)
            .take_while(|&l| d.link_wrapper_for(l).is_active().is_ok())
            .count() as u32;
        Ok(GpuInfo {
            index: gpu,
            uuid: d.uuid().map_err(e("nvmlDeviceGetUUID"))?,
            model: d.name().map_err(e("nvmlDeviceGetName"))?,
            pci_bus_id: d.pci_info().map_err(e("nvmlDeviceGetPciInfo"))?.bus_id,
            minor_number: opt(d.minor_number()).map_err(e("nvmlDeviceGetMinorNumber"))?,
            serial: opt(d.serial()).map_err(e("nvmlDeviceGetSerial"))?,
            memory_total_bytes: d.memory_info().map_err(e("nvmlDeviceGetMemoryInfo"))?.total,
            power_limit_watts: opt(d.enforced_power_limit())
                .map_err(e("nvmlDeviceGetEnforcedPowerLimit"))?
                .map(|mw| f64::from(mw) / 1000.0),
            pcie_max_generation: opt(d.max_pcie_link_gen())
                .map_err(e("nvmlDeviceGetMaxPcieLinkGeneration"))?,
            pcie_max_width: opt(d.max_pcie_link_width())
                .map_err(e("nvmlDeviceGetMaxPcieLinkWidth"))?,
            nvlink_count,
            slowdown_temperature_celsius: opt(
                d.temperature_threshold(TemperatureThreshold::Slowdown)
            )
            .map_err(e("nvmlDeviceGetTemperatureThreshold"))?
            .map(f64::from),
            shutdown_temperature_celsius: opt(
                d.temperature_threshold(TemperatureThreshold::Shutdown)
            )
            .map_err(e("nvmlDeviceGetTemperatureThreshold"))?
            .map(f64::from),
        })
    }

    fn prof(&self, gpu: u32, d: &Device<'static>) -> Option<ProfSample> {
        if !d.gpm_support().unwrap_or(false) {
            return None;
        }
        let now = d.gpm_sample().ok()?;
        let mut slots = self.gpm.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.get_mut(gpu as usize)?;
        let prev = slot.replace(now);
        let (prev, now) = (prev?, slot.as_ref()?);
        let ids = [
            GpmMetricId::GraphicsUtil,
            GpmMetricId::AnyTensorUtil,
            GpmMetricId::DramBwUtil,
            GpmMetricId::PcieTxPerSec,
            GpmMetricId::PcieRxPerSec,
        ];
        let values = nvml_wrapper::gpm::gpm_metrics_get(self.nvml, &prev, now, &ids).ok()?;
        let v: Vec<f64> = values
            .into_iter()
            .map(|r| r.map(|m| m.value))
            .collect::<Result<_, _>>()
            .ok()?;
        const MIB: f64 = 1024.0 * 1024.0;
        Some(ProfSample {
            gr_engine_active: v[0] / 100.0,
            tensor_active: v[1] / 100.0,
            dram_active: v[2] / 100.0,
            pcie_tx_bytes_per_second: v[3] * MIB,
            pcie_rx_bytes_per_second: v[4] * MIB,
        })
    }
}

impl GpuBackend for NvmlBackend {
    fn name(&self) -> &'static str {
        "nvml"
    }

    fn inventory(&self) -> Result<Inventory, BackendError> {
        let driver_version = self.nvml.sys_driver_version().map_err(unavailable)?;
        let cuda = self.nvml.sys_cuda_driver_version().map_err(unavailable)?;
        let gpus = (0..self.gpu_count)
            .map(|i| self.gpu_info(i))
            .collect::<Result<_, _>>()?;
        Ok(Inventory {
            driver_version,
            cuda_version: format!("{}.{}", cuda / 1000, (cuda % 1000) / 10),
            gpus,
        })
    }

    fn sample(&self, gpu: u32) -> Result<GpuSample, BackendError> {
        let d = self.device(gpu)?;
        let e = |call| call_err(gpu, call);
        // A lost GPU fails its first call; report it as lost rather than unsupported.
        let util = opt(d.utilization_rates()).map_err(e("nvmlDeviceGetUtilizationRates"))?;
        let mem = opt(d.memory_info()).map_err(e("nvmlDeviceGetMemoryInfo"))?;
        let ecc = |t, c| opt(d.total_ecc_errors(t, c)).map_err(e("nvmlDeviceGetTotalEccErrors"));
        let fields = d
            .field_values_for(&[
                FieldId(NVML_FI_DEV_MEMORY_TEMP),
                FieldId(NVML_FI_DEV_REMAPPED_COR),
                FieldId(NVML_FI_DEV_REMAPPED_UNC),
                FieldId(NVML_FI_DEV_REMAPPED_PENDING),
                FieldId(NVML_FI_DEV_REMAPPED_FAILURE),
                FieldId(NVML_FI_DEV_GET_GPU_RECOVERY_ACTION),
                FieldId(NVML_FI_DEV_NVLINK_BANDWIDTH_C0_TOTAL),
            ])
            .unwrap_or_default();
        let f = |i: usize| fields.get(i).and_then(field_u64);
        let remapped_rows = match (f(1), f(2), f(3), f(4)) {
            (Some(c), Some(u), Some(p), Some(x)) => Some(RemappedRows {
                correctable: c,
                uncorrectable: u,
                pending: p != 0,
                failure: x != 0,
            }),
            _ => None,
        };
        let mut nvlinks = Vec::new();
        for link in 0..MAX_NVLINKS {
            let l = d.link_wrapper_for(link);
            let Ok(up) = l.is_active() else { break };
            let c = |k| l.error_counter(k).ok();
            nvlinks.push(NvLinkSample {
                link,
                up,
                replay_errors: c(ErrorCounter::DlReplay),
                recovery_errors: c(ErrorCounter::DlRecovery),
                crc_flit_errors: c(ErrorCounter::DlCrcFlit),
                crc_data_errors: c(ErrorCounter::DlCrcData),
            });
        }
        let processes = opt(d.running_compute_processes())
            .map_err(e("nvmlDeviceGetComputeRunningProcesses"))?;
        Ok(GpuSample {
            utilization: util.as_ref().map(|u| f64::from(u.gpu) / 100.0),
            memory_utilization: util.as_ref().map(|u| f64::from(u.memory) / 100.0),
            encoder_utilization: d
                .encoder_utilization()
                .ok()
                .map(|u| f64::from(u.utilization) / 100.0),
            decoder_utilization: d
                .decoder_utilization()
                .ok()
                .map(|u| f64::from(u.utilization) / 100.0),
            memory_used_bytes: mem.as_ref().map(|m| m.used),
            memory_free_bytes: mem.as_ref().map(|m| m.free),
            memory_reserved_bytes: mem.as_ref().map(|m| m.reserved),
            temperature_celsius: opt(d.temperature(TemperatureSensor::Gpu))
                .map_err(e("nvmlDeviceGetTemperature"))?
                .map(f64::from),
            memory_temperature_celsius: f(0).filter(|&t| t > 0).map(|t| t as f64),
            power_watts: opt(d.power_usage())
                .map_err(e("nvmlDeviceGetPowerUsage"))?
                .map(|mw| f64::from(mw) / 1000.0),
            energy_joules: opt(d.total_energy_consumption())
                .map_err(e("nvmlDeviceGetTotalEnergyConsumption"))?
                .map(|mj| mj as f64 / 1000.0),
            sm_clock_hertz: opt(d.clock_info(Clock::SM))
                .map_err(e("nvmlDeviceGetClockInfo"))?
                .map(|mhz| f64::from(mhz) * 1e6),
            memory_clock_hertz: opt(d.clock_info(Clock::Memory))
                .map_err(e("nvmlDeviceGetClockInfo"))?
                .map(|mhz| f64::from(mhz) * 1e6),
            clock_event_reasons: opt(d.current_throttle_reasons())
                .map_err(e("nvmlDeviceGetCurrentClocksEventReasons"))?
                .map(|r| r.bits()),
            pcie_generation: opt(d.current_pcie_link_gen())
                .map_err(e("nvmlDeviceGetCurrPcieLinkGeneration"))?,
            pcie_width: opt(d.current_pcie_link_width())
                .map_err(e("nvmlDeviceGetCurrPcieLinkWidth"))?,
            pcie_replays: opt(d.pcie_replay_counter())
                .map_err(e("nvmlDeviceGetPcieReplayCounter"))?
                .map(u64::from),
            ecc: EccCounts {
                corrected_volatile: ecc(MemoryError::Corrected, EccCounter::Volatile)?,
                uncorrected_volatile: ecc(MemoryError::Uncorrected, EccCounter::Volatile)?,
                corrected_aggregate: ecc(MemoryError::Corrected, EccCounter::Aggregate)?,
                uncorrected_aggregate: ecc(MemoryError::Uncorrected, EccCounter::Aggregate)?,
            },
            remapped_rows,
            nvlinks,
            nvlink_bandwidth_total: f(6),
            fan_speed: opt(d.fan_speed(0))
                .map_err(e("nvmlDeviceGetFanSpeed"))?
                .map(|p| f64::from(p) / 100.0),
            recovery_action: f(5).map(|v| v as u32),
            compute_processes: processes.as_ref().map(|p| p.len() as u32),
            compute_processes_memory_bytes: processes.as_ref().map(|p| {
                p.iter()
                    .map(|p| match p.used_gpu_memory {
                        UsedGpuMemory::Used(b) => b,
                        UsedGpuMemory::Unavailable => 0,
                    })
                    .sum()
            }),
            prof: self.prof(gpu, &d),
        })
    }

    fn start_events(&self, sink: EventSink) -> Result<(), BackendError> {
        self.watch_events(sink)
    }
}
