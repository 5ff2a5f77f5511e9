//! The configuration's shape: [`AgentConfig`], its sections and their defaults. Loading
//! ([`super::load`]) and checking ([`super::validate`]) read these types.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::plugins::{PluginDefaults, PluginEntry};

/// The whole agent configuration. Every section and key is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Who this node is.
    pub node: NodeConfig,
    /// The HTTP server.
    pub server: ServerConfig,
    /// Which GPU backend to use.
    pub gpu: GpuConfig,
    /// The sampling loop.
    pub collector: CollectorConfig,
    /// What `/metrics` shows.
    pub metrics: MetricsConfig,
    /// The health event log.
    pub events: EventsConfig,
    /// XIDs from the kernel log.
    pub kmsg: KmsgConfig,
    /// Limits and defaults for every plugin.
    pub plugin: PluginDefaults,
    /// The WebAssembly plugins to load (`[[plugins]]`).
    pub plugins: Vec<PluginEntry>,
    /// Joining the gpuwarden control plane.
    pub control_plane: ControlPlaneConfig,
    /// Carrying out the control plane's commands (`POST /v1/commands`).
    pub commands: CommandsConfig,
    /// The node's workload (slots free and busy) for pool autoscaling; off by default.
    pub workload: super::workload::WorkloadConfig,
}

/// When a drain is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainUntil {
    /// The drain hook exits 0 (`kubectl drain` waits for the evictions itself).
    Hook,
    /// The hook (if any) exits 0, then no GPU runs a compute process (NVML).
    Idle,
    /// Whichever comes first: the hook exits 0, or no GPU runs a compute process.
    Either,
}

/// `[commands]`: the hooks behind cordon, uncordon, drain and terminate. A hook is a program
/// and its arguments, run directly (no shell); `{node}`, `{reason}` and `{command}` in an
/// argument are replaced by the node id, the reason and the command id, each as one
/// argument whatever it contains. An empty hook does nothing but record the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandsConfig {
    /// Stops new work landing on the node, e.g. `["scontrol", "update", "nodename={node}", "state=drain", "reason={reason}"]`.
    pub cordon: Vec<String>,
    /// Lets work land again.
    pub uncordon: Vec<String>,
    /// Moves the work off.
    pub drain: Vec<String>,
    /// Shuts the node down; terminate fails when none is set.
    pub terminate: Vec<String>,
    /// When a drain is complete: `hook`, `idle` or `either`; it also ends at its timeout.
    pub drain_until: DrainUntil,
    /// Longest a drain may take when the command names none.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// How often a drain looks at the hook and the GPUs' processes.
    #[serde(with = "humantime_serde")]
    pub drain_poll: Duration,
    /// Longest a cordon, uncordon or terminate hook may run.
    #[serde(with = "humantime_serde")]
    pub hook_timeout: Duration,
    /// Diagnostic plugin that `run_diagnostic` runs when the command names none.
    pub diagnostic: String,
    /// File that keeps the commands received, so a command delivered again after an agent
    /// restart is not run twice; empty: next to `control_plane.token_file` when that is set,
    /// else `commands.json` in `node.state_dir`.
    pub state_file: PathBuf,
}

/// `[control_plane]`: where the agent registers. Empty `url`: it does not register (the
/// control plane may still scrape it as a static target).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlPlaneConfig {
    /// Control-plane base URL, e.g. `http://cp.example:8410` (also `--control-plane`).
    pub url: String,
    /// Join token of this node (from `gpuwarden nodes token`), or an earlier node token.
    pub token: String,
    /// Bootstrap token for self-registration (also `GPUWARDEN_BOOTSTRAP_TOKEN`).
    pub bootstrap_token: String,
    /// File that keeps the node token across restarts (mode 0600); empty: `node-token` in
    /// `node.state_dir`.
    pub token_file: PathBuf,
    /// URL the control plane scrapes (also `--advertise`); empty derives it from
    /// `server.listen` (an unspecified address becomes the host name).
    pub advertise: String,
    /// Pool to join; empty keeps the node's pool on the control plane.
    pub pool: String,
    /// Longest wait between registration attempts (they back off from 1s, with jitter).
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// Tell the control plane at once when a fatal event is recorded
    /// (`POST /v1/nodes/{id}/notify`), instead of waiting for its next scrape.
    pub notify_urgent: bool,
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Node id; empty means the hostname.
    pub id: String,
    /// Labels added to every per-GPU series and to the node's registration.
    pub labels: BTreeMap<String, String>,
    /// Folder for what the agent keeps across restarts: the node token (`node-token`), the
    /// commands received (`commands.json`), the kernel-log position (`kmsg-position.json`).
    /// Empty: `/var/lib/gpuwarden-agent` with NVML GPUs; nothing is kept with fake GPUs.
    pub state_dir: PathBuf,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address for `/metrics`, `/healthz` and `/v1/…`.
    pub listen: String,
    /// Threads of the `gpuwarden-agent` binary's async runtime, which serves HTTP (hyper,
    /// [`http::serve`](crate::http::serve)) and runs the agent's other asynchronous tasks;
    /// 1 to 64. One is the default: every handler is asynchronous or pre-rendered, and
    /// collections, plugins and blocking work have threads of their own. An idle thread
    /// sleeps (actix-web, before, woke each of its workers 4 times a second).
    pub workers: usize,
}

/// Which GPU backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// NVML when it loads; otherwise start fails with a clear error.
    #[default]
    Nvml,
    /// Fake GPUs (tests and demos).
    Fake,
}

/// `[gpu]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// `nvml` (default) or `fake`.
    pub backend: BackendKind,
    /// Number of fake GPUs.
    pub fake_count: u32,
    /// Model the fake GPUs report.
    pub fake_model: String,
    /// Seed for fake UUIDs and drift; 0 means "derive from the node id".
    pub fake_seed: u64,
}

/// `[collector]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// How often GPUs are sampled (e.g. `5s`, `500ms`).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Also expose dcgm-exporter's default series so its dashboards work unchanged.
    pub dcgm_compat: bool,
    /// Expose node CPU, memory, disk, network and uptime.
    pub system: bool,
}

/// `[events]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Events kept in memory for `GET /v1/events`.
    pub capacity: usize,
    /// An XID reported by NVML and the kernel log within this window counts once.
    #[serde(with = "humantime_serde")]
    pub xid_dedup_window: Duration,
    /// A GPU at or above this temperature raises a thermal warning.
    pub temperature_warning_celsius: f64,
    /// A GPU at or above this temperature raises a fatal thermal event.
    pub temperature_critical_celsius: f64,
}

/// `[kmsg]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KmsgConfig {
    /// Read XIDs from the kernel log. Unset: on with NVML, off with fake GPUs.
    pub enabled: Option<bool>,
    /// The kernel log device.
    pub path: PathBuf,
    /// Also read records logged before the agent started.
    pub read_existing: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            node: NodeConfig {
                id: String::new(),
                labels: BTreeMap::new(),
                state_dir: PathBuf::new(),
            },
            server: ServerConfig {
                listen: "0.0.0.0:9410".into(),
                workers: 1,
            },
            gpu: GpuConfig {
                backend: BackendKind::Nvml,
                fake_count: 8,
                fake_model: crate::backend::fake::DEFAULT_MODEL.into(),
                fake_seed: 0,
            },
            collector: CollectorConfig {
                interval: Duration::from_secs(5),
            },
            metrics: MetricsConfig {
                dcgm_compat: false,
                system: true,
            },
            events: EventsConfig {
                capacity: 10_000,
                xid_dedup_window: Duration::from_secs(10),
                temperature_warning_celsius: 85.0,
                temperature_critical_celsius: 92.0,
            },
            kmsg: KmsgConfig {
                enabled: None,
                path: "/dev/kmsg".into(),
                read_existing: false,
            },
            plugin: PluginDefaults {
                cache_dir: std::env::temp_dir().join("gpuwarden-plugin-cache"),
                check_timeout: Duration::from_secs(1),
                diagnostic_timeout: Duration::from_secs(60),
                interval: Duration::from_secs(30),
                memory_limit_mib: 64,
                report_max_bytes: 64 * 1024,
                log_max_lines: 100,
                output_max_bytes: 64 * 1024,
                reload_interval: Duration::from_secs(2),
                pooling: true,
                max_concurrent_runs: 2,
            },
            plugins: Vec::new(),
            control_plane: ControlPlaneConfig {
                url: String::new(),
                token: String::new(),
                bootstrap_token: String::new(),
                token_file: PathBuf::new(),
                advertise: String::new(),
                pool: String::new(),
                retry_max: Duration::from_secs(60),
                notify_urgent: true,
            },
            commands: CommandsConfig {
                cordon: Vec::new(),
                uncordon: Vec::new(),
                drain: Vec::new(),
                terminate: Vec::new(),
                drain_until: DrainUntil::Either,
                drain_timeout: Duration::from_secs(30 * 60),
                drain_poll: Duration::from_secs(5),
                hook_timeout: Duration::from_secs(5 * 60),
                diagnostic: String::new(),
                state_file: PathBuf::new(),
            },
            workload: super::workload::WorkloadConfig::default(),
        }
    }
}

macro_rules! default_section {
    ($($t:ident => $f:ident),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                AgentConfig::default().$f
            }
        }
    )*};
}
default_section!(NodeConfig => node, ServerConfig => server, GpuConfig => gpu,
    CollectorConfig => collector, MetricsConfig => metrics, EventsConfig => events,
    KmsgConfig => kmsg, PluginDefaults => plugin, ControlPlaneConfig => control_plane,
    CommandsConfig => commands);
