//! The GPU backend: one trait, a real NVML implementation and a fake one.
//!
//! A backend answers three questions: which GPUs are there ([`GpuBackend::inventory`]),
//! what do they read now ([`GpuBackend::sample`]), and what critical events happened
//! ([`GpuBackend::start_events`], which pushes [`BackendEvent`]s from a thread of its own so
//! a blocking NVML wait never stalls the async runtime).
//!
//! Every sampled field is an `Option`: a field the GPU does not support is `None` and is left
//! out of the metrics, never reported as 0.

pub mod fake;
pub mod nvml;

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// NVML could not be loaded or initialised (no driver, no GPU, wrong library).
    #[error(
        "cannot use NVML: {0}. Is the NVIDIA driver installed and a GPU present? \
         To run without a GPU, start the agent with --fake-gpus N"
    )]
    Unavailable(String),
    /// The GPU no longer answers (fell off the bus).
    #[error("GPU {0} is lost (fell off the bus)")]
    GpuLost(u32),
    /// No GPU with that index.
    #[error("no GPU with index {0}")]
    NoSuchGpu(u32),
    /// Any other NVML failure.
    #[error("NVML call {call} failed on GPU {gpu}: {message}")]
    Call {
        /// GPU index.
        gpu: u32,
        /// The NVML function.
        call: &'static str,
        /// NVML's message.
        message: String,
    },
}

/// Static facts about one GPU, read once at start.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuInfo {
    /// NVML index.
    pub index: u32,
    /// `GPU-…` UUID.
    pub uuid: String,
    /// Product name, e.g. `NVIDIA H100 80GB HBM3`.
    pub model: String,
    /// PCI bus id as NVML prints it, e.g. `00000000:3B:00.0`.
    pub pci_bus_id: String,
    /// Device minor number (`/dev/nvidiaN`).
    pub minor_number: Option<u32>,
    /// Board serial number.
    pub serial: Option<String>,
    /// Total framebuffer memory in bytes.
    pub memory_total_bytes: u64,
    /// Enforced power limit in watts.
    pub power_limit_watts: Option<f64>,
    /// Maximum PCIe link generation.
    pub pcie_max_generation: Option<u32>,
    /// Maximum PCIe link width.
    pub pcie_max_width: Option<u32>,
    /// Number of NVLinks the GPU has (links that answer NVML).
    pub nvlink_count: u32,
    /// Temperature at which the GPU slows down, in °C.
    pub slowdown_temperature_celsius: Option<f64>,
    /// Temperature at which the GPU shuts down, in °C.
    pub shutdown_temperature_celsius: Option<f64>,
}

/// What the node's driver stack is, and its GPUs.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// Driver version, e.g. `550.54.15`.
    pub driver_version: String,
    /// CUDA driver API version, e.g. `12.4`.
    pub cuda_version: String,
    /// The GPUs, by index.
    pub gpus: Vec<GpuInfo>,
}

/// Clock-event (throttle) reasons, as NVML's bitmask.
pub mod clock_event {
    /// GPU idle.
    pub const GPU_IDLE: u64 = 0x1;
    /// Application clocks setting.
    pub const APPLICATIONS_CLOCKS_SETTING: u64 = 0x2;
    /// Software power cap.
    pub const SW_POWER_CAP: u64 = 0x4;
    /// Hardware slowdown (temperature, power brake, …).
    pub const HW_SLOWDOWN: u64 = 0x8;
    /// Sync boost.
    pub const SYNC_BOOST: u64 = 0x10;
    /// Software thermal slowdown.
    pub const SW_THERMAL_SLOWDOWN: u64 = 0x20;
    /// Hardware thermal slowdown.
    pub const HW_THERMAL_SLOWDOWN: u64 = 0x40;
    /// Hardware power brake slowdown.
    pub const HW_POWER_BRAKE_SLOWDOWN: u64 = 0x80;
    /// Display clock setting.
    pub const DISPLAY_CLOCK_SETTING: u64 = 0x100;
    /// Every reason with its metric label, in label order.
    pub const REASONS: &[(u64, &str)] = &[
        (GPU_IDLE, "gpu_idle"),
        (APPLICATIONS_CLOCKS_SETTING, "applications_clocks_setting"),
        (SW_POWER_CAP, "sw_power_cap"),
        (HW_SLOWDOWN, "hw_slowdown"),
        (SYNC_BOOST, "sync_boost"),
        (SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
        (HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
        (HW_POWER_BRAKE_SLOWDOWN, "hw_power_brake_slowdown"),
        (DISPLAY_CLOCK_SETTING, "display_clock_setting"),
    ];
    /// The reasons that mean the hardware is protecting itself (events are raised for these).
    pub const HARDWARE: u64 =
        HW_SLOWDOWN | SW_THERMAL_SLOWDOWN | HW_THERMAL_SLOWDOWN | HW_POWER_BRAKE_SLOWDOWN;
}

/// One NVLink's state.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NvLinkSample {
    /// Link number.
    pub link: u32,
    /// Whether the link is active.
    pub up: bool,
    /// Data-link replay errors.
    pub replay_errors: Option<u64>,
    /// Data-link recovery errors.
    pub recovery_errors: Option<u64>,
    /// Flow-control-digit CRC errors.
    pub crc_flit_errors: Option<u64>,
    /// Data CRC errors.
    pub crc_data_errors: Option<u64>,
}

/// ECC error counters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EccCounts {
    /// Corrected (single-bit) errors since the driver loaded.
    pub corrected_volatile: Option<u64>,
    /// Uncorrected (double-bit) errors since the driver loaded.
    pub uncorrected_volatile: Option<u64>,
    /// Corrected errors over the GPU's life.
    pub corrected_aggregate: Option<u64>,
    /// Uncorrected errors over the GPU's life.
    pub uncorrected_aggregate: Option<u64>,
}

/// Remapped-row counters (Ampere and newer).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RemappedRows {
    /// Rows remapped for correctable errors.
    pub correctable: u64,
    /// Rows remapped for uncorrectable errors.
    pub uncorrectable: u64,
    /// A remap waits for a GPU reset.
    pub pending: bool,
    /// A remap failed.
    pub failure: bool,
}

/// Profiling ratios and rates from NVML GPM (Hopper and newer), as dcgm-exporter's
/// `DCGM_FI_PROF_*` report them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProfSample {
    /// Graphics engine active, 0..1.
    pub gr_engine_active: f64,
    /// Tensor pipe active, 0..1.
    pub tensor_active: f64,
    /// DRAM interface active, 0..1.
    pub dram_active: f64,
    /// PCIe transmit, bytes per second.
    pub pcie_tx_bytes_per_second: f64,
    /// PCIe receive, bytes per second.
    pub pcie_rx_bytes_per_second: f64,
}

/// Everything read from one GPU at one moment. `None` means "not supported here".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuSample {
    /// GPU utilization, 0..1.
    pub utilization: Option<f64>,
    /// Memory-controller utilization, 0..1.
    pub memory_utilization: Option<f64>,
    /// Encoder utilization, 0..1.
    pub encoder_utilization: Option<f64>,
    /// Decoder utilization, 0..1.
    pub decoder_utilization: Option<f64>,
    /// Framebuffer memory used, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Framebuffer memory free, bytes.
    pub memory_free_bytes: Option<u64>,
    /// Framebuffer memory reserved by the driver, bytes.
    pub memory_reserved_bytes: Option<u64>,
    /// GPU temperature, °C.
    pub temperature_celsius: Option<f64>,
    /// Memory temperature, °C.
    pub memory_temperature_celsius: Option<f64>,
    /// Power draw, watts.
    pub power_watts: Option<f64>,
    /// Energy since the driver loaded, joules.
    pub energy_joules: Option<f64>,
    /// SM clock, Hz.
    pub sm_clock_hertz: Option<f64>,
    /// Memory clock, Hz.
    pub memory_clock_hertz: Option<f64>,
    /// Active clock-event reasons ([`clock_event`] bits).
    pub clock_event_reasons: Option<u64>,
    /// Current PCIe link generation.
    pub pcie_generation: Option<u32>,
    /// Current PCIe link width.
    pub pcie_width: Option<u32>,
    /// PCIe replay counter.
    pub pcie_replays: Option<u64>,
    /// ECC counters (all `None` with ECC off).
    pub ecc: EccCounts,
    /// Remapped rows.
    pub remapped_rows: Option<RemappedRows>,
    /// NVLinks.
    pub nvlinks: Vec<NvLinkSample>,
    /// Total NVLink bandwidth counter, bytes (dcgm's `NVLINK_BANDWIDTH_TOTAL`).
    pub nvlink_bandwidth_total: Option<u64>,
    /// Fan speed, 0..1.
    pub fan_speed: Option<f64>,
    /// NVML's GPU recovery action (0 none, 1 reset, 2 reboot, 3 drain P2P, 4 drain and reset).
    pub recovery_action: Option<u32>,
    /// Running compute processes.
    pub compute_processes: Option<u32>,
    /// Memory held by running compute processes, bytes.
    pub compute_processes_memory_bytes: Option<u64>,
    /// GPM profiling values.
    pub prof: Option<ProfSample>,
}

/// A critical event pushed by the backend as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendEvent {
    /// An XID on a GPU.
    Xid {
        /// GPU index.
        gpu: u32,
        /// The XID.
        code: u32,
    },
    /// A single-bit (corrected) ECC error.
    EccSingleBit {
        /// GPU index.
        gpu: u32,
        /// How many.
        count: u64,
    },
    /// A double-bit (uncorrected) ECC error.
    EccDoubleBit {
        /// GPU index.
        gpu: u32,
        /// How many.
        count: u64,
    },
    /// The GPU's clocks changed (NVML carries no reason: the collector samples early to
    /// read the clock-event reasons).
    ClockChange {
        /// GPU index.
        gpu: u32,
    },
    /// The event stream ended for good (NVML's event wait failed); the reason. Nothing
    /// follows: `gpuwarden_agent_gpu_events_up` goes to 0.
    Stopped {
        /// Why.
        reason: String,
    },
}

/// Where a backend delivers events; returns false once nobody listens (shutdown).
pub type EventSink = Box<dyn Fn(BackendEvent) -> bool + Send + Sync>;

/// A source of GPU facts, samples and events.
pub trait GpuBackend: Send + Sync {
    /// Short name for logs and metrics: `nvml` or `fake`.
    fn name(&self) -> &'static str;
    /// The GPUs present and the driver stack.
    fn inventory(&self) -> Result<Inventory, BackendError>;
    /// Reads one GPU now. A lost GPU answers [`BackendError::GpuLost`].
    fn sample(&self, gpu: u32) -> Result<GpuSample, BackendError>;
    /// Starts delivering critical events to `sink` from a thread of the backend's own.
    /// Returns when delivery has started (or failed to).
    fn start_events(&self, sink: EventSink) -> Result<(), BackendError>;
}
