//! The XID table: the one place that says what each NVIDIA XID means and what to do.
//!
//! The agent uses it to give events their severity and action, the plugin SDK to give
//! findings theirs, and the control plane's default policy (`xid_severity(code)`) to decide
//! health. Severities and immediate actions follow NVIDIA's XID catalog for Ampere and newer
//! GPUs ("Resolution Bucket (Immediate Action)"); where the catalog says to follow a
//! workflow (XID 48, 74, 144–150) the table records that workflow's usual first step.

use crate::event::{Action, Severity};

/// What one XID means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XidInfo {
    /// The XID number.
    pub code: u32,
    /// NVIDIA's mnemonic.
    pub name: &'static str,
    /// What it means, in a sentence.
    pub meaning: &'static str,
    /// How serious it is.
    pub severity: Severity,
    /// NVIDIA's recommended immediate action.
    pub action: Action,
}

const fn x(
    code: u32,
    name: &'static str,
    meaning: &'static str,
    severity: Severity,
    action: Action,
) -> XidInfo {
    XidInfo {
        code,
        name,
        meaning,
        severity,
        action,
    }
}

use Action::{ContactSupport, Ignore, RebootNode, ResetGpu, RestartApp};
use Severity::{Fatal, Info, Warning};

/// Every XID gpuwarden knows, sorted by code.
pub const XID_TABLE: &[XidInfo] = &[
    x(8, "ROBUST_CHANNEL_FIFO_ERROR_IDLE_TIMEOUT", "GPU stopped processing: a channel idle timeout", Warning, RestartApp),
    x(13, "ROBUST_CHANNEL_GR_EXCEPTION", "Graphics engine exception: usually an application fault (out-of-bounds access, illegal instruction); repeats on the same GPC/TPC point at hardware", Warning, RestartApp),
    x(31, "ROBUST_CHANNEL_FIFO_ERROR_MMU_ERR_FLT", "GPU memory page fault: illegal address access; repeats on the same GPU point at hardware", Warning, RestartApp),
    x(32, "ROBUST_CHANNEL_PBDMA_ERROR", "Invalid or corrupted push buffer stream", Warning, RestartApp),
    x(43, "ROBUST_CHANNEL_RESETCHANNEL_VERIF_ERROR", "GPU stopped processing an application's channel after a user fault; the GPU itself is fine", Info, Ignore),
    x(45, "ROBUST_CHANNEL_PREEMPTIVE_REMOVAL", "Preemptive cleanup after a previous error (look for the primary XID)", Info, Ignore),
    x(46, "ROBUST_CHANNEL_GPU_TIMEOUT_ERROR", "GPU stopped processing: timeout in the GPU", Fatal, ResetGpu),
    x(48, "ROBUST_CHANNEL_ECC_DBE", "Uncorrectable double-bit ECC error in GPU memory", Fatal, ResetGpu),
    x(61, "PMU_BREAKPOINT", "Internal micro-controller breakpoint/warning", Fatal, ResetGpu),
    x(62, "PMU_HALT_ERROR", "Internal micro-controller halt", Fatal, ResetGpu),
    x(63, "INFOROM_DRAM_RETIREMENT_EVENT", "Row remapping or page retirement recorded; a GPU reset activates it", Info, Ignore),
    x(64, "INFOROM_DRAM_RETIREMENT_FAILURE", "Row remapping or page retirement failed: no spare rows left", Fatal, ResetGpu),
    x(68, "ROBUST_CHANNEL_NVDEC0_ERROR", "Video decoder (NVDEC) exception", Warning, RestartApp),
    x(69, "ROBUST_CHANNEL_GR_CLASS_ERROR", "Graphics engine class error", Warning, RestartApp),
    x(74, "NVLINK_ERROR", "NVLink error: a link failed; the register values in the message tell which", Fatal, ResetGpu),
    x(79, "ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS", "GPU has fallen off the bus: it no longer answers over PCIe", Fatal, RebootNode),
    x(92, "EXCESSIVE_SBE_INTERRUPTS", "High single-bit ECC error rate", Warning, Ignore),
    x(94, "ROBUST_CHANNEL_CONTAINED_ERROR", "Contained uncorrectable memory error: the affected application must restart", Warning, RestartApp),
    x(95, "ROBUST_CHANNEL_UNCONTAINED_ERROR", "Uncontained uncorrectable memory error: GPU state may be corrupt", Fatal, ResetGpu),
    x(109, "ROBUST_CHANNEL_CTXSW_TIMEOUT_ERROR", "Context switch timeout: the GPU hung", Fatal, ResetGpu),
    x(119, "GSP_RPC_TIMEOUT", "GPU System Processor RPC timeout", Fatal, ResetGpu),
    x(120, "GSP_ERROR", "GPU System Processor error", Fatal, ResetGpu),
    x(121, "C2C_ERROR", "Chip-to-chip (C2C) link error; corrected errors are counted, growth points at hardware", Warning, Ignore),
    x(136, "ALI_TRAINING_FAIL", "NVLink active link initialization (ALI) training failed", Fatal, ResetGpu),
    x(140, "UNRECOVERABLE_ECC_ERROR", "Unrecovered ECC error", Fatal, ResetGpu),
    x(143, "GPU_INIT_ERROR", "GPU initialization failure", Fatal, ResetGpu),
    x(144, "NVLINK_SAW_ERROR", "NVLink5 SAW error", Fatal, ResetGpu),
    x(145, "NVLINK_RLW_ERROR", "NVLink5 RLW error", Fatal, ResetGpu),
    x(146, "NVLINK_TLW_ERROR", "NVLink5 TLW error", Fatal, ResetGpu),
    x(147, "NVLINK_TREX_ERROR", "NVLink5 TREX error", Fatal, ResetGpu),
    x(148, "NVLINK_NVLPW_CTRL_ERROR", "NVLink5 NVLPW control error", Fatal, ResetGpu),
    x(149, "NVLINK_NETIR_ERROR", "NVLink5 NETIR error", Fatal, ResetGpu),
    x(150, "NVLINK_MSE_ERROR", "NVLink5 MSE error", Fatal, ResetGpu),
    x(154, "GPU_RECOVERY_ACTION_CHANGED", "The driver's GPU recovery action changed; the message says which action is required", Warning, ResetGpu),
    x(158, "GPU_FATAL_TIMEOUT", "GPU fatal timeout: the GPU is unresponsive", Fatal, ResetGpu),
];

/// Severity and action used for an XID that is not in the table.
pub const UNKNOWN_XID: (Severity, Action) = (Warning, ContactSupport);

/// Looks an XID up.
pub fn lookup(code: u32) -> Option<&'static XidInfo> {
    XID_TABLE
        .binary_search_by_key(&code, |x| x.code)
        .ok()
        .map(|i| &XID_TABLE[i])
}

/// Severity of an XID; unknown XIDs are warnings.
pub fn severity(code: u32) -> Severity {
    lookup(code).map_or(UNKNOWN_XID.0, |x| x.severity)
}

/// Recommended action for an XID; unknown XIDs go to support.
pub fn action(code: u32) -> Action {
    lookup(code).map_or(UNKNOWN_XID.1, |x| x.action)
}

/// The action an XID 154 message asks for, read from its text
/// (`… changed from 0x0 (None) to 0x2 (Node Reboot Required)`).
pub fn recovery_action_from_message(message: &str) -> Option<Action> {
    let to = message
        .rsplit_once(" to ")
        .map_or(message, |(_, t)| t)
        .to_ascii_lowercase();
    if to.contains("reboot") {
        Some(RebootNode)
    } else if to.contains("reset") {
        Some(ResetGpu)
    } else if to.contains("none") {
        Some(Ignore)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique_so_lookup_finds_every_entry() {
        for w in XID_TABLE.windows(2) {
            assert!(
                w[0].code < w[1].code,
                "XID {} listed out of order",
                w[1].code
            );
        }
        for x in XID_TABLE {
            assert_eq!(lookup(x.code), Some(x));
        }
    }

    #[test]
    fn table_covers_the_xids_operators_meet() {
        let required = [
            8, 13, 31, 32, 43, 45, 46, 48, 61, 62, 63, 64, 68, 69, 74, 79, 92, 94, 95, 109, 119,
            120, 121, 136, 140, 143, 144, 145, 146, 147, 148, 149, 150, 154,
        ];
        for code in required {
            assert!(lookup(code).is_some(), "XID {code} missing from the table");
        }
    }

    #[test]
    fn fatal_xids_ask_for_reset_or_reboot_and_app_faults_do_not() {
        assert_eq!((severity(79), action(79)), (Fatal, RebootNode));
        assert_eq!((severity(48), action(48)), (Fatal, ResetGpu));
        assert_eq!((severity(13), action(13)), (Warning, RestartApp));
        assert_eq!((severity(9999), action(9999)), UNKNOWN_XID);
    }

    #[test]
    fn xid_154_message_names_the_action() {
        let m = "GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)";
        assert_eq!(recovery_action_from_message(m), Some(RebootNode));
        let m = "GPU recovery action changed from 0x2 (Node Reboot Required) to 0x1 (GPU Reset Required)";
        assert_eq!(recovery_action_from_message(m), Some(ResetGpu));
        assert_eq!(recovery_action_from_message("garbled"), None);
    }
}
