//! The faults the fake backend can inject, and the JSON of `POST /v1/fake/inject`.

use serde::Deserialize;

use crate::backend::clock_event;

/// A fault to inject, as the JSON body of `POST /v1/fake/inject` names it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// An XID with this code.
    Xid(u32),
    /// Temperature pinned to this value (°C).
    Temperature(f64),
    /// `count` single-bit (corrected) ECC errors.
    EccSingleBit(u64),
    /// `count` double-bit (uncorrected) ECC errors.
    EccDoubleBit(u64),
    /// The GPU disappears: every read fails.
    FellOffBus,
    /// One NVLink goes down.
    NvlinkDown(u32),
    /// PCIe link trains at a lower generation and width.
    PcieDegraded,
    /// Power draw pinned to this value (W).
    Power(f64),
    /// A clock-event reason becomes active ([`clock_event`] bit).
    Throttle(u64),
    /// NVML's recovery action set to this value.
    RecoveryAction(u32),
    /// A row remap waits for a reset.
    RowRemapPending,
    /// Row remapping failed.
    RowRemapFailure,
    /// This many compute processes run on the GPU (0 after a clear).
    Processes(u32),
    /// The PCIe replay counter grows by this much.
    PcieReplays(u64),
    /// An NVLink's CRC (flit) error counter grows by this much.
    NvlinkErrors {
        /// Link.
        link: u32,
        /// Growth.
        count: u64,
    },
}

/// The JSON body of `POST /v1/fake/inject`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectRequest {
    /// GPU index.
    pub gpu: u32,
    /// Fault name: xid, temperature, ecc, fell_off_bus, nvlink_down, pcie_degraded, power,
    /// throttle, recovery_action, row_remap_pending, row_remap_failure, pcie_replays,
    /// nvlink_errors, processes.
    pub fault: String,
    /// XID code (`xid`).
    pub code: Option<u32>,
    /// Value (`temperature` °C, `power` W, `recovery_action`).
    pub value: Option<f64>,
    /// ECC type: `single_bit` or `double_bit` (`ecc`).
    #[serde(rename = "type")]
    pub ecc_type: Option<String>,
    /// Count (`ecc`, `pcie_replays`, `nvlink_errors`: default 1; `processes`: required).
    pub count: Option<u64>,
    /// NVLink number (`nvlink_down`).
    pub link: Option<u32>,
    /// Clock-event reason (`throttle`), e.g. `hw_slowdown`.
    pub reason: Option<String>,
}

impl InjectRequest {
    /// Checks the request and turns it into a [`Fault`]; the error says what is missing.
    pub fn to_fault(&self) -> Result<Fault, String> {
        fn need<T: Copy>(v: Option<T>, field: &str, fault: &str) -> Result<T, String> {
            v.ok_or_else(|| format!("fault \"{fault}\" needs the field \"{field}\""))
        }
        let f = self.fault.as_str();
        Ok(match f {
            "xid" => Fault::Xid(need(self.code, "code", f)?),
            "temperature" => Fault::Temperature(finite(need(self.value, "value", f)?)?),
            "power" => Fault::Power(finite(need(self.value, "value", f)?)?),
            "ecc" => {
                let count = self.count.unwrap_or(1);
                match self.ecc_type.as_deref() {
                    Some("single_bit") => Fault::EccSingleBit(count),
                    Some("double_bit") => Fault::EccDoubleBit(count),
                    Some(other) => {
                        return Err(format!(
                            "unknown ECC type \"{other}\": use \"single_bit\" or \"double_bit\""
                        ))
                    }
                    None => return Err("fault \"ecc\" needs the field \"type\"".into()),
                }
            }
            "fell_off_bus" => Fault::FellOffBus,
            "nvlink_down" => Fault::NvlinkDown(need(self.link, "link", f)?),
            "pcie_degraded" => Fault::PcieDegraded,
            "throttle" => {
                let reason = self
                    .reason
                    .as_deref()
                    .ok_or("fault \"throttle\" needs \"reason\"")?;
                let bit = clock_event::REASONS
                    .iter()
                    .find(|(_, name)| *name == reason)
                    .map(|(bit, _)| *bit)
                    .ok_or_else(|| {
                        let names: Vec<_> = clock_event::REASONS.iter().map(|r| r.1).collect();
                        format!(
                            "unknown throttle reason \"{reason}\"; known: {}",
                            names.join(", ")
                        )
                    })?;
                Fault::Throttle(bit)
            }
            "recovery_action" => {
                let v = need(self.value, "value", f)?;
                if !(0.0..=4.0).contains(&v) || v.fract() != 0.0 {
                    return Err("recovery_action value must be 0, 1, 2, 3 or 4".into());
                }
                Fault::RecoveryAction(v as u32)
            }
            "row_remap_pending" => Fault::RowRemapPending,
            "row_remap_failure" => Fault::RowRemapFailure,
            "processes" => Fault::Processes(
                u32::try_from(need(self.count, "count", f)?)
                    .map_err(|_| "processes count is too large".to_string())?,
            ),
            "pcie_replays" => Fault::PcieReplays(self.count.unwrap_or(1)),
            "nvlink_errors" => Fault::NvlinkErrors {
                link: need(self.link, "link", f)?,
                count: self.count.unwrap_or(1),
            },
            other => {
                return Err(format!(
                    "unknown fault \"{other}\"; known: xid, temperature, ecc, fell_off_bus, \
                     nvlink_down, pcie_degraded, power, throttle, recovery_action, \
                     row_remap_pending, row_remap_failure, pcie_replays, nvlink_errors, processes"
                ))
            }
        })
    }
}

fn finite(v: f64) -> Result<f64, String> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err("value must be a finite number".into())
    }
}
