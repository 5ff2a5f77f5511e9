//! A fake GPU backend for tests and demos: N GPUs whose readings drift plausibly, and
//! fault injection (`POST /v1/fake/inject`) that changes readings and raises events the way
//! the real hardware and NVML would.

mod inject;
mod sample;
#[cfg(test)]
mod tests;

pub use inject::{Fault, InjectRequest};

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::{BackendError, BackendEvent, EventSink, GpuInfo, Inventory};

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
