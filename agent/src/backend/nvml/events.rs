//! NVML's critical events (XID errors, ECC errors, clock changes), waited for on a thread of
//! their own and handed to the collector as [`BackendEvent`]s.

use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;

use super::{unavailable, NvmlBackend};
use crate::backend::{BackendError, BackendEvent, EventSink};

impl NvmlBackend {
    /// Registers every GPU for critical events (XID, ECC, clock changes) and starts the
    /// `nvml-events` thread that waits for them and hands them to `sink`.
    ///
    /// Errors: [`BackendError::Unavailable`] when NVML cannot make an event set or the thread
    /// cannot start; [`BackendError::Call`] when a GPU refuses to register.
    pub(super) fn watch_events(&self, sink: EventSink) -> Result<(), BackendError> {
        let nvml = self.nvml;
        let wanted = EventTypes::CRITICAL_XID_ERROR
            | EventTypes::SINGLE_BIT_ECC_ERROR
            | EventTypes::DOUBLE_BIT_ECC_ERROR
            | EventTypes::CLOCK_CHANGE;
        let mut set = nvml.create_event_set().map_err(unavailable)?;
        for gpu in 0..self.gpu_count {
            let d = self.device(gpu)?;
            let supported = d
                .supported_event_types()
                .map(|s| s & wanted)
                .unwrap_or(wanted);
            set = match d.register_events(supported, set) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(gpu, error = %e.error, "NVML events not available for this GPU");
                    return Err(BackendError::Call {
                        gpu,
                        call: "nvmlDeviceRegisterEvents",
                        message: e.error.to_string(),
                    });
                }
            };
        }
        std::thread::Builder::new()
            .name("nvml-events".into())
            .spawn(move || loop {
                match set.wait(1000) {
                    Ok(ev) => {
                        let gpu = ev.device.index().unwrap_or(u32::MAX);
                        let out = if ev.event_type.contains(EventTypes::CRITICAL_XID_ERROR) {
                            let code = match ev.event_data {
                                Some(XidError::Value(v)) => v as u32,
                                _ => 0,
                            };
                            BackendEvent::Xid { gpu, code }
                        } else if ev.event_type.contains(EventTypes::DOUBLE_BIT_ECC_ERROR) {
                            BackendEvent::EccDoubleBit { gpu, count: 1 }
                        } else if ev.event_type.contains(EventTypes::SINGLE_BIT_ECC_ERROR) {
                            BackendEvent::EccSingleBit { gpu, count: 1 }
                        } else {
                            BackendEvent::ClockChange { gpu }
                        };
                        if !sink(out) {
                            return; // the collector stopped: shutting down
                        }
                    }
                    Err(NvmlError::Timeout) => {}
                    Err(NvmlError::GpuLost) => {
                        // A lost GPU keeps failing the wait; the collector reports the loss.
                        std::thread::sleep(std::time::Duration::from_secs(1));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "NVML event wait failed; XIDs now come from the kernel log only");
                        sink(BackendEvent::Stopped { reason: format!("NVML event wait failed: {e}") });
                        return;
                    }
                }
            })
            .map_err(|e| BackendError::Unavailable(format!("cannot start the NVML event thread: {e}")))?;
        Ok(())
    }
}
