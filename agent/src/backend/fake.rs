//! A fake GPU backend for tests and demos: N GPUs whose readings drift plausibly, and
//! fault injection (`POST /v1/fake/inject`) that changes readings and raises events the way
//! the real hardware and NVML would.

mod inject;

pub use inject::{Fault, InjectRequest};

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::{
    clock_event, BackendError, BackendEvent, EccCounts, EventSink, GpuBackend, GpuInfo, GpuSample,
    Inventory, NvLinkSample, ProfSample, RemappedRows,
};

/// The model the fake GPUs claim to be unless configured otherwise.
pub const DEFAULT_MODEL: &str = "NVIDIA H100 80GB HBM3";

/// PCI buses of the GPUs on an HGX H100 board, used for the first eight fake GPUs.
const HGX_BUSES: [u32; 8] = [0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb];
const NVLINKS: u32 = 18;
const MIB: u64 = 1024 * 1024;

#[derive(Debug)]
struct FakeGpu {
    rng: fastrand::Rng,
    utilization: f64,
    memory_used: u64,
    energy_joules: f64,
    last_sample: Option<Instant>,
    ecc_corrected: u64,
    ecc_uncorrected: u64,
    pcie_replays: u64,
    nvlink_errors: Vec<u64>,
    // Injected faults.
    lost: bool,
    temperature: Option<f64>,
    power: Option<f64>,
    throttle: u64,
    nvlink_down: BTreeSet<u32>,
    pcie_degraded: bool,
    recovery_action: u32,
    remap_pending: bool,
    remap_failure: bool,
    processes: u32,
}

impl FakeGpu {
    fn clear_faults(&mut self) {
        self.lost = false;
        self.temperature = None;
        self.power = None;
        self.throttle = 0;
        self.nvlink_down.clear();
        self.pcie_degraded = false;
        self.recovery_action = 0;
        self.remap_pending = false;
        self.remap_failure = false;
        self.processes = 0;
    }
}

/// The fake backend. Cheap to share: inject through [`FakeBackend::inject`].
pub struct FakeBackend {
    inventory: Inventory,
    gpus: Mutex<Vec<FakeGpu>>,
    sink: Mutex<Option<EventSink>>,
}

impl std::fmt::Debug for FakeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBackend")
            .field("gpus", &self.inventory.gpus.len())
            .finish()
    }
}

impl FakeBackend {
    /// `count` GPUs of `model`; `seed` makes UUIDs and drift repeatable.
    pub fn new(count: u32, model: &str, seed: u64) -> Self {
        let mut ids = fastrand::Rng::with_seed(seed);
        let gpus_info = (0..count)
            .map(|i| {
                let bus = HGX_BUSES.get(i as usize).copied().unwrap_or(0x100 + i);
                GpuInfo {
                    index: i,
                    uuid: format!(
                        "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                        ids.u32(..),
                        ids.u16(..),
                        ids.u16(..),
                        ids.u16(..),
                        ids.u64(..) & 0xffff_ffff_ffff
                    ),
                    model: model.to_string(),
                    pci_bus_id: format!("{:08X}:{:02X}:00.0", bus >> 8, bus & 0xff),
                    minor_number: Some(i),
                    serial: Some(format!("{:013}", 1_650_000_000_000u64 + u64::from(i))),
                    memory_total_bytes: 81_559 * MIB,
                    power_limit_watts: Some(700.0),
                    pcie_max_generation: Some(5),
                    pcie_max_width: Some(16),
                    nvlink_count: NVLINKS,
                    slowdown_temperature_celsius: Some(87.0),
                    shutdown_temperature_celsius: Some(92.0),
                }
            })
            .collect();
        let gpus = (0..count)
            .map(|i| FakeGpu {
                rng: fastrand::Rng::with_seed(seed ^ (u64::from(i) + 1).wrapping_mul(0x9e37_79b9)),
                utilization: 0.6,
                memory_used: 40_000 * MIB,
                energy_joules: 1.0e6,
                last_sample: None,
                ecc_corrected: 0,
                ecc_uncorrected: 0,
                pcie_replays: 0,
                nvlink_errors: vec![0; NVLINKS as usize],
                lost: false,
                temperature: None,
                power: None,
                throttle: 0,
                nvlink_down: BTreeSet::new(),
                pcie_degraded: false,
                recovery_action: 0,
                remap_pending: false,
                remap_failure: false,
                processes: 0,
            })
            .collect();
        FakeBackend {
            inventory: Inventory {
                driver_version: "550.54.15".into(),
                cuda_version: "12.4".into(),
                gpus: gpus_info,
            },
            gpus: Mutex::new(gpus),
            sink: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<FakeGpu>> {
        // A panic while holding the lock cannot leave the fake in a state worse than its
        // last write, so a poisoned lock is still usable.
        self.gpus.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, event: BackendEvent) {
        let sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(deliver) = sink.as_ref() {
            // The collector is gone only during shutdown; nothing to deliver to then.
            deliver(event);
        }
    }

    /// Applies a fault to one GPU.
    pub fn inject(&self, gpu: u32, fault: Fault) -> Result<(), BackendError> {
        let event = {
            let mut gpus = self.lock();
            let g = gpus
                .get_mut(gpu as usize)
                .ok_or(BackendError::NoSuchGpu(gpu))?;
            match fault {
                Fault::Xid(code) => Some(BackendEvent::Xid { gpu, code }),
                Fault::Temperature(t) => {
                    g.temperature = Some(t);
                    None
                }
                Fault::EccSingleBit(count) => {
                    g.ecc_corrected += count;
                    Some(BackendEvent::EccSingleBit { gpu, count })
                }
                Fault::EccDoubleBit(count) => {
                    g.ecc_uncorrected += count;
                    Some(BackendEvent::EccDoubleBit { gpu, count })
                }
                Fault::FellOffBus => {
                    g.lost = true;
                    None
                }
                Fault::NvlinkDown(link) => {
                    if link >= NVLINKS {
                        return Err(BackendError::Call {
                            gpu,
                            call: "nvlink_down",
                            message: format!("link {link} does not exist (0..{NVLINKS})"),
                        });
                    }
                    g.nvlink_down.insert(link);
                    None
                }
                Fault::PcieDegraded => {
                    g.pcie_degraded = true;
                    None
                }
                Fault::Power(w) => {
                    g.power = Some(w);
                    None
                }
                Fault::Throttle(bit) => {
                    g.throttle |= bit;
                    Some(BackendEvent::ClockChange { gpu })
                }
                Fault::RecoveryAction(v) => {
                    g.recovery_action = v;
                    None
                }
                Fault::RowRemapPending => {
                    g.remap_pending = true;
                    None
                }
                Fault::RowRemapFailure => {
                    g.remap_failure = true;
                    None
                }
                Fault::Processes(n) => {
                    g.processes = n;
                    None
                }
                Fault::PcieReplays(n) => {
                    g.pcie_replays += n;
                    None
                }
                Fault::NvlinkErrors { link, count } => {
                    let slot = g.nvlink_errors.get_mut(link as usize).ok_or_else(|| {
                        BackendError::Call {
                            gpu,
                            call: "nvlink_errors",
                            message: format!("link {link} does not exist (0..{NVLINKS})"),
                        }
                    })?;
                    *slot += count;
                    None
                }
            }
        };
        if let Some(e) = event {
            self.emit(e);
        }
        Ok(())
    }

    /// Clears every fault of one GPU, or of all. Counters (ECC) keep their values:
    /// counters never go backwards.
    pub fn clear(&self, gpu: Option<u32>) -> Result<(), BackendError> {
        let mut gpus = self.lock();
        match gpu {
            Some(i) => gpus
                .get_mut(i as usize)
                .ok_or(BackendError::NoSuchGpu(i))?
                .clear_faults(),
            None => gpus.iter_mut().for_each(FakeGpu::clear_faults),
        }
        Ok(())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> Result<Fault, String> {
        serde_json::from_str::<InjectRequest>(json)
            .map_err(|e| e.to_string())?
            .to_fault()
    }

    #[test]
    fn inject_requests_of_design_md_parse() {
        assert_eq!(
            req(r#"{"gpu":0,"fault":"xid","code":79}"#),
            Ok(Fault::Xid(79))
        );
        assert_eq!(
            req(r#"{"gpu":1,"fault":"temperature","value":97}"#),
            Ok(Fault::Temperature(97.0))
        );
        assert_eq!(
            req(r#"{"gpu":2,"fault":"ecc","type":"double_bit"}"#),
            Ok(Fault::EccDoubleBit(1))
        );
        assert_eq!(
            req(r#"{"gpu":2,"fault":"ecc","type":"single_bit","count":5}"#),
            Ok(Fault::EccSingleBit(5))
        );
        assert_eq!(
            req(r#"{"gpu":3,"fault":"fell_off_bus"}"#),
            Ok(Fault::FellOffBus)
        );
        assert_eq!(
            req(r#"{"gpu":4,"fault":"nvlink_down","link":0}"#),
            Ok(Fault::NvlinkDown(0))
        );
        assert_eq!(
            req(r#"{"gpu":5,"fault":"pcie_degraded"}"#),
            Ok(Fault::PcieDegraded)
        );
        assert_eq!(
            req(r#"{"gpu":6,"fault":"power","value":900}"#),
            Ok(Fault::Power(900.0))
        );
        assert_eq!(
            req(r#"{"gpu":7,"fault":"throttle","reason":"hw_slowdown"}"#),
            Ok(Fault::Throttle(clock_event::HW_SLOWDOWN))
        );
    }

    #[test]
    fn bad_inject_requests_say_what_is_wrong() {
        assert!(req(r#"{"gpu":0,"fault":"xid"}"#)
            .unwrap_err()
            .contains("\"code\""));
        assert!(req(r#"{"gpu":0,"fault":"melt"}"#)
            .unwrap_err()
            .contains("unknown fault"));
        assert!(req(r#"{"gpu":0,"fault":"ecc","type":"triple"}"#)
            .unwrap_err()
            .contains("triple"));
        assert!(req(r#"{"gpu":0,"fault":"throttle","reason":"x"}"#)
            .unwrap_err()
            .contains("known"));
        assert!(req(r#"{"gpu":0,"fault":"xid","code":1,"bogus":1}"#)
            .unwrap_err()
            .contains("bogus"));
    }

    #[test]
    fn fell_off_bus_makes_reads_fail_until_cleared() {
        let fake = Arc::new(FakeBackend::new(2, DEFAULT_MODEL, 1));
        fake.inject(1, Fault::FellOffBus).unwrap();
        assert!(matches!(fake.sample(1), Err(BackendError::GpuLost(1))));
        assert!(fake.sample(0).is_ok());
        fake.clear(Some(1)).unwrap();
        assert!(fake.sample(1).is_ok());
    }

    #[test]
    fn readings_drift_but_stay_plausible() {
        let fake = Arc::new(FakeBackend::new(1, DEFAULT_MODEL, 7));
        let temps: Vec<f64> = (0..50)
            .map(|_| fake.sample(0).unwrap().temperature_celsius.unwrap())
            .collect();
        assert!(temps.iter().all(|t| (30.0..80.0).contains(t)), "{temps:?}");
        assert!(
            temps.windows(2).any(|w| w[0] != w[1]),
            "readings never changed"
        );
    }

    #[test]
    fn injecting_on_a_missing_gpu_is_an_error() {
        let fake = FakeBackend::new(2, DEFAULT_MODEL, 1);
        assert!(matches!(
            fake.inject(9, Fault::Xid(79)),
            Err(BackendError::NoSuchGpu(9))
        ));
    }
}
