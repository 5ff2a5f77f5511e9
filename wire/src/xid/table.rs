//! The rows of the XID table. Source of every row, unless its comment says otherwise: NVIDIA's
//! XID catalog for Ampere and newer GPUs (docs.nvidia.com/deploy/xid-errors/
//! analyzing-xid-catalog.html, "Resolution Bucket (Immediate Action)"), checked on 2026-11-30
//! against a transcription of the catalog's 172 entries (NVIDIA's page itself could only be
//! read in part). The catalog's buckets map to a severity and an action so:
//!
//! | Immediate action                      | severity  | action            |
//! |---------------------------------------|-----------|-------------------|
//! | `IGNORE`                              | `info`    | `ignore`          |
//! | `RESTART_APP`                         | `warning` | `restart_app`     |
//! | `RESET_GPU`, `WORKFLOW_XID_48`, `WORKFLOW_NVLINK_ERR` (74) | `fatal` | `reset_gpu` |
//! | `RESTART_BM` (79), `RESTART_VM` (151) | `fatal`   | `reboot_node`     |
//! | `CONTACT_SUPPORT`, `CHECK_MECHANICALS`, `UPDATE_SWFW`, `CHECK_UVM`, none given | `warning` | `contact_support` |
//! | `WORKFLOW_XID_45` (45: follow the primary XID) | `info` | `ignore`     |
//! | `WORKFLOW_NVLINK5_ERR` (144–150), `XID_154`: decided by the message, see [`super::classify`] | | |
//!
//! Codes the catalog marks "Unused" are left out (an unknown XID is a warning for support),
//! except 61, kept from NVIDIA's catalog for older GPUs.

use super::XidInfo;
use crate::event::{Action, Severity};

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
#[rustfmt::skip]
pub const XID_TABLE: &[XidInfo] = &[
    x(8, "ROBUST_CHANNEL_FIFO_ERROR_IDLE_TIMEOUT", "GPU stopped processing: a channel idle timeout", Warning, RestartApp),
    x(11, "ROBUST_CHANNEL_GR_ERROR_MISSING_HW", "Invalid or corrupted push buffer stream", Warning, RestartApp),
    x(13, "ROBUST_CHANNEL_GR_EXCEPTION", "Graphics engine exception: usually an application fault (out-of-bounds access, illegal instruction); repeats on the same GPC/TPC point at hardware", Warning, RestartApp),
    x(14, "ROBUST_CHANNEL_FAKE_ERROR", "Injected test error", Info, Ignore),
    x(25, "ROBUST_CHANNEL_GR_ILLEGAL_NOTIFY", "Illegal notifier in the graphics engine: an application fault", Warning, RestartApp),
    x(31, "ROBUST_CHANNEL_FIFO_ERROR_MMU_ERR_FLT", "GPU memory page fault: illegal address access; repeats on the same GPU point at hardware", Warning, RestartApp),
    x(32, "ROBUST_CHANNEL_PBDMA_ERROR", "Invalid or corrupted push buffer stream", Warning, RestartApp),
    x(37, "ROBUST_CHANNEL_FECS_ERR_UNIMP_FIRMWARE_METHOD", "Context-switch firmware got a method it does not implement", Info, Ignore),
    x(38, "ROBUST_CHANNEL_FECS_ERR_WATCHDOG_TIMEOUT", "Context-switch firmware watchdog timeout", Info, Ignore),
    x(39, "ROBUST_CHANNEL_CE0_ERROR", "Copy engine 0 exception", Warning, RestartApp),
    x(40, "ROBUST_CHANNEL_CE1_ERROR", "Copy engine 1 exception", Warning, RestartApp),
    x(41, "ROBUST_CHANNEL_CE2_ERROR", "Copy engine 2 exception", Warning, RestartApp),
    x(43, "ROBUST_CHANNEL_RESETCHANNEL_VERIF_ERROR", "GPU stopped processing an application's channel after a user fault; the GPU itself is fine", Info, Ignore),
    x(44, "ROBUST_CHANNEL_GR_FAULT_DURING_CTXSW", "Graphics engine fault during a context switch", Info, Ignore),
    x(45, "ROBUST_CHANNEL_PREEMPTIVE_REMOVAL", "Preemptive cleanup after a previous error (look for the primary XID)", Info, Ignore),
    x(46, "ROBUST_CHANNEL_GPU_TIMEOUT_ERROR", "GPU stopped processing: timeout in the GPU", Fatal, ResetGpu),
    x(48, "ROBUST_CHANNEL_ECC_DBE", "Uncorrectable double-bit ECC error in GPU memory", Fatal, ResetGpu),
    x(54, "SILENT_RUNNING_PWR_REDUCED_CLOCKING", "Auxiliary power not connected or insufficient: clocks reduced; check the mechanics", Warning, ContactSupport),
    x(60, "ROBUST_CHANNEL_SEC2_ERROR", "Security engine (SEC2) exception", Warning, RestartApp),
    // Not in the Ampere-and-newer catalog ("Unused"); older GPUs' catalog: reset.
    x(61, "PMU_BREAKPOINT", "Internal micro-controller breakpoint/warning", Fatal, ResetGpu),
    x(62, "PMU_HALT_ERROR", "Internal micro-controller halt", Fatal, ResetGpu),
    x(63, "INFOROM_DRAM_RETIREMENT_EVENT", "Row remapping or page retirement recorded; a GPU reset activates it", Info, Ignore),
    x(64, "INFOROM_DRAM_RETIREMENT_FAILURE", "Row remapping or page retirement failed: no spare rows left", Fatal, ResetGpu),
    x(66, "ROBUST_CHANNEL_FECS_ERR_REG_ACCESS_VIOLATION", "Context-switch firmware register access violation", Info, Ignore),
    x(67, "ROBUST_CHANNEL_FECS_ERR_VERIF_VIOLATION", "Context-switch firmware verification violation", Info, Ignore),
    x(68, "ROBUST_CHANNEL_NVDEC0_ERROR", "Video decoder (NVDEC) exception", Warning, RestartApp),
    x(69, "ROBUST_CHANNEL_GR_CLASS_ERROR", "Graphics engine class error", Warning, RestartApp),
    x(70, "ROBUST_CHANNEL_CE3_ERROR", "Copy engine 3 exception", Warning, RestartApp),
    x(71, "ROBUST_CHANNEL_CE4_ERROR", "Copy engine 4 exception", Warning, RestartApp),
    x(72, "ROBUST_CHANNEL_CE5_ERROR", "Copy engine 5 exception", Warning, RestartApp),
    x(74, "NVLINK_ERROR", "NVLink error: a link failed; the register values in the message tell which", Fatal, ResetGpu),
    x(75, "ROBUST_CHANNEL_CE6_ERROR", "Copy engine 6 exception", Warning, RestartApp),
    x(76, "ROBUST_CHANNEL_CE7_ERROR", "Copy engine 7 exception", Warning, RestartApp),
    x(77, "ROBUST_CHANNEL_CE8_ERROR", "Copy engine 8 exception", Warning, RestartApp),
    x(78, "VGPU_START_ERROR", "vGPU start failed: update the software or firmware", Warning, ContactSupport),
    x(79, "ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS", "GPU has fallen off the bus: it no longer answers over PCIe", Fatal, RebootNode),
    x(80, "PBDMA_PUSHBUFFER_CRC_MISMATCH", "Push buffer CRC mismatch", Warning, RestartApp),
    x(82, "ROBUST_CHANNEL_NVJPG0_ERROR", "JPEG decoder 0 exception", Warning, RestartApp),
    x(83, "ROBUST_CHANNEL_NVDEC1_ERROR", "Video decoder 1 exception", Warning, RestartApp),
    x(84, "ROBUST_CHANNEL_NVDEC2_ERROR", "Video decoder 2 exception", Warning, RestartApp),
    x(85, "ROBUST_CHANNEL_CE9_ERROR", "Copy engine 9 exception", Warning, RestartApp),
    x(86, "ROBUST_CHANNEL_OFA0_ERROR", "Optical flow accelerator 0 exception", Warning, RestartApp),
    x(88, "ROBUST_CHANNEL_NVDEC3_ERROR", "Video decoder 3 exception", Warning, RestartApp),
    x(89, "ROBUST_CHANNEL_NVDEC4_ERROR", "Video decoder 4 exception", Warning, RestartApp),
    x(92, "EXCESSIVE_SBE_INTERRUPTS", "High single-bit ECC error rate", Info, Ignore),
    x(93, "INFOROM_ERASE_LIMIT_EXCEEDED", "InfoROM erase limit exceeded", Info, Ignore),
    x(94, "ROBUST_CHANNEL_CONTAINED_ERROR", "Contained uncorrectable memory error: the affected application must restart", Warning, RestartApp),
    x(95, "ROBUST_CHANNEL_UNCONTAINED_ERROR", "Uncontained uncorrectable memory error: GPU state may be corrupt", Fatal, ResetGpu),
    x(96, "ROBUST_CHANNEL_NVDEC5_ERROR", "Video decoder 5 exception", Warning, RestartApp),
    x(97, "ROBUST_CHANNEL_NVDEC6_ERROR", "Video decoder 6 exception", Warning, RestartApp),
    x(98, "ROBUST_CHANNEL_NVDEC7_ERROR", "Video decoder 7 exception", Warning, RestartApp),
    x(99, "ROBUST_CHANNEL_NVJPG1_ERROR", "JPEG decoder 1 exception", Warning, RestartApp),
    x(100, "ROBUST_CHANNEL_NVJPG2_ERROR", "JPEG decoder 2 exception", Warning, RestartApp),
    x(101, "ROBUST_CHANNEL_NVJPG3_ERROR", "JPEG decoder 3 exception", Warning, RestartApp),
    x(102, "ROBUST_CHANNEL_NVJPG4_ERROR", "JPEG decoder 4 exception", Warning, RestartApp),
    x(103, "ROBUST_CHANNEL_NVJPG5_ERROR", "JPEG decoder 5 exception", Warning, RestartApp),
    x(104, "ROBUST_CHANNEL_NVJPG6_ERROR", "JPEG decoder 6 exception", Warning, RestartApp),
    x(105, "ROBUST_CHANNEL_NVJPG7_ERROR", "JPEG decoder 7 exception", Warning, RestartApp),
    x(106, "SMBPBI_TEST_MESSAGE", "Test message from the out-of-band (SMBPBI) interface", Info, Ignore),
    x(107, "SMBPBI_TEST_MESSAGE_SILENT", "Silent test message from the out-of-band (SMBPBI) interface", Info, Ignore),
    x(108, "NVLINK_REMOTE_TRANSLATION_ERROR", "NVLink remote address translation error", Info, Ignore),
    x(109, "ROBUST_CHANNEL_CTXSW_TIMEOUT_ERROR", "Context switch timeout: the GPU hung", Fatal, ResetGpu),
    x(110, "SEC_FAULT_ERROR", "Security fault: a security processor or fuse check failed", Fatal, ResetGpu),
    x(119, "GSP_RPC_TIMEOUT", "GPU System Processor RPC timeout", Fatal, ResetGpu),
    x(120, "GSP_ERROR", "GPU System Processor error", Fatal, ResetGpu),
    x(121, "C2C_ERROR", "Chip-to-chip (C2C) link error; corrected errors are counted, growth points at hardware", Info, Ignore),
    x(126, "ROBUST_CHANNEL_CE10_ERROR", "Copy engine 10 exception", Warning, RestartApp),
    x(127, "ROBUST_CHANNEL_CE11_ERROR", "Copy engine 11 exception", Warning, RestartApp),
    x(128, "ROBUST_CHANNEL_CE12_ERROR", "Copy engine 12 exception", Warning, RestartApp),
    x(129, "ROBUST_CHANNEL_CE13_ERROR", "Copy engine 13 exception", Warning, RestartApp),
    x(130, "ROBUST_CHANNEL_CE14_ERROR", "Copy engine 14 exception", Warning, RestartApp),
    x(131, "ROBUST_CHANNEL_CE15_ERROR", "Copy engine 15 exception", Warning, RestartApp),
    x(132, "ROBUST_CHANNEL_CE16_ERROR", "Copy engine 16 exception", Warning, RestartApp),
    x(133, "ROBUST_CHANNEL_CE17_ERROR", "Copy engine 17 exception", Warning, RestartApp),
    x(134, "ROBUST_CHANNEL_CE18_ERROR", "Copy engine 18 exception", Warning, RestartApp),
    x(135, "ROBUST_CHANNEL_CE19_ERROR", "Copy engine 19 exception", Warning, RestartApp),
    x(136, "ALI_TRAINING_FAIL", "NVLink active link initialization (ALI) training failed", Fatal, ResetGpu),
    x(137, "NVLINK_PRIV_ERR", "NVLink privilege error", Info, Ignore),
    x(139, "ROBUST_CHANNEL_OFA1_ERROR", "Optical flow accelerator 1 exception", Warning, RestartApp),
    x(140, "UNRECOVERABLE_ECC_ERROR", "Unrecovered ECC error", Fatal, ResetGpu),
    x(141, "ROBUST_CHANNEL_FAST_PATH_ERROR", "Fast-path error", Info, Ignore),
    x(142, "ROBUST_CHANNEL_NVENC3_ERROR", "Video encoder 3 exception", Warning, ContactSupport),
    x(143, "GPU_INIT_ERROR", "GPU initialization failure", Fatal, ResetGpu),
    // 144–150: the action follows the error status the driver prints (see `classify`);
    // these rows are what an XID reported without that text (from NVML) gets.
    x(144, "NVLINK_SAW_ERROR", "NVLink5 SAW error", Warning, ContactSupport),
    x(145, "NVLINK_RLW_ERROR", "NVLink5 RLW error", Warning, ContactSupport),
    x(146, "NVLINK_TLW_ERROR", "NVLink5 TLW error", Warning, ContactSupport),
    x(147, "NVLINK_TREX_ERROR", "NVLink5 TREX error", Warning, ContactSupport),
    x(148, "NVLINK_NVLPW_CTRL_ERROR", "NVLink5 NVLPW control error", Warning, ContactSupport),
    x(149, "NVLINK_NETIR_ERROR", "NVLink5 NETIR error", Warning, ContactSupport),
    x(150, "NVLINK_MSE_ERROR", "NVLink5 MSE error", Warning, ContactSupport),
    x(151, "ROBUST_CHANNEL_KEY_ROTATION_ERROR", "Confidential-computing key rotation error: restart the VM (bare metal: reboot)", Fatal, RebootNode),
    x(152, "ROBUST_CHANNEL_DLA_SMMU_ERROR", "DLA SMMU error", Info, Ignore),
    x(153, "ROBUST_CHANNEL_DLA_TIMEOUT", "DLA timeout", Info, Ignore),
    x(154, "GPU_RECOVERY_ACTION_CHANGED", "The driver's GPU recovery action changed; the message says which action is required", Warning, ResetGpu),
    x(155, "NVLINK_SW_DEFINED_ERROR", "NVLink software-defined error", Fatal, ResetGpu),
    x(156, "RESOURCE_RETIREMENT_EVENT", "A GPU resource was retired; a GPU reset applies it", Fatal, ResetGpu),
    x(157, "RESOURCE_RETIREMENT_FAILURE", "A GPU resource could not be retired", Info, Ignore),
    x(158, "GPU_FATAL_TIMEOUT", "GPU fatal timeout: the GPU is unresponsive", Fatal, ResetGpu),
    x(159, "ROBUST_CHANNEL_CHI_NON_DATA_ERROR", "CHI non-data error: a reset is needed when unified memory (UVM) is in use", Warning, ContactSupport),
    x(160, "CHANNEL_RETIREMENT_EVENT", "A channel was retired", Info, Ignore),
    x(161, "CHANNEL_RETIREMENT_FAILURE", "A channel could not be retired", Info, Ignore),
    // 162–172: listed by the catalog without an action yet.
    x(162, "PSHC_REENGAGED", "Power-smoothing (PSHC) re-engaged", Warning, ContactSupport),
    x(163, "PSHC_DISENGAGED", "Power-smoothing (PSHC) disengaged", Warning, ContactSupport),
    x(164, "PSHC_LOW_LIFETIME", "Power-smoothing (PSHC) lifetime low", Warning, ContactSupport),
    x(165, "PSHC_ZERO_LIFETIME", "Power-smoothing (PSHC) lifetime exhausted", Warning, ContactSupport),
    x(166, "NVLINK_SECURE_CRYPTO_ERR", "NVLink encryption error", Warning, ContactSupport),
    x(167, "PCIE_FATAL_TIMEOUT", "PCIe fatal timeout", Warning, ContactSupport),
    x(168, "REDUCED_GPU_MEMORY_CAPACITY", "GPU memory capacity reduced", Warning, ContactSupport),
    x(169, "SEC2_HALT_ERROR", "Security engine (SEC2) halted", Warning, ContactSupport),
    x(170, "NVLINK_SECURE_OTHER", "NVLink security error", Warning, ContactSupport),
    x(171, "UNCORRECTABLE_DRAM_ERROR", "Uncorrectable DRAM error", Warning, ContactSupport),
    x(172, "UNCORRECTABLE_SRAM_ERROR", "Uncorrectable SRAM error", Warning, ContactSupport),
];
