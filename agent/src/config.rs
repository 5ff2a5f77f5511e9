//! Agent configuration: TOML file < `GPUWARDEN_<SECTION>__<KEY>` environment < flags.
//!
//! Raw config is read by figment into [`AgentConfig`] (unknown keys are errors that name the
//! key and the file), then [`AgentConfig::validate`] checks every value and returns all
//! problems at once.

mod plugins;

pub use plugins::{
    valid_plugin_name, PluginDefaults, PluginEntry, PluginKind, PluginValue, MAX_PLUGIN_MEMORY_MIB,
};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

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
    /// restart is not run twice; empty: next to `control_plane.token_file`, else memory only.
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
    /// File that keeps the node token across restarts (mode 0600); empty keeps it in memory.
    pub token_file: PathBuf,
    /// URL the control plane scrapes (also `--advertise`); empty derives it from
    /// `server.listen` (an unspecified address becomes the host name).
    pub advertise: String,
    /// Pool to join; empty keeps the node's pool on the control plane.
    pub pool: String,
    /// Longest wait between registration attempts (they back off from 1s, with jitter).
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Node id; empty means the hostname.
    pub id: String,
    /// Labels added to every per-GPU series and to the node's registration.
    pub labels: BTreeMap<String, String>,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address for `/metrics`, `/healthz` and `/v1/…`.
    pub listen: String,
    /// HTTP worker threads.
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
            },
            server: ServerConfig {
                listen: "0.0.0.0:9410".into(),
                workers: 2,
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

/// Values given on the command line; they override file and environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<String>,
    /// `--fake-gpus N`: use the fake backend with N GPUs.
    pub fake_gpus: Option<u32>,
    /// `--control-plane URL`
    pub control_plane: Option<String>,
    /// `--advertise URL`
    pub advertise: Option<String>,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read into the config structure.
    #[error("{0}")]
    Parse(Box<figment::Error>),
    /// Values that parsed but make no sense; every problem is listed.
    #[error("invalid configuration{}:\n  {}", .file.as_ref().map(|f| format!(" in {}", f.display())).unwrap_or_default(), .problems.join("\n  "))]
    Invalid {
        /// The file, when one was given.
        file: Option<PathBuf>,
        /// One line per problem, each naming its key.
        problems: Vec<String>,
    },
}

impl AgentConfig {
    /// Loads defaults, then `file` (if any), then the environment, then `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("GPUWARDEN_"), overrides)
    }

    /// [`AgentConfig::load`] with the environment given, for tests.
    pub fn load_from(
        file: Option<&Path>,
        env: Env,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(AgentConfig::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        // Only GPUWARDEN_<SECTION>__<KEY> variables are config; others (tokens) are not.
        fig = fig.merge(env.filter(|k| k.as_str().contains("__")).split("__"));
        if let Some(l) = &overrides.listen {
            fig = fig.merge(Serialized::default("server.listen", l));
        }
        if let Some(u) = &overrides.control_plane {
            fig = fig.merge(Serialized::default("control_plane.url", u));
        }
        if let Some(a) = &overrides.advertise {
            fig = fig.merge(Serialized::default("control_plane.advertise", a));
        }
        if let Some(n) = overrides.fake_gpus {
            fig = fig
                .merge(Serialized::default("gpu.backend", BackendKind::Fake))
                .merge(Serialized::default("gpu.fake_count", n));
        }
        let mut cfg: AgentConfig = fig.extract().map_err(|e| ConfigError::Parse(Box::new(e)))?;
        cfg.validate(file)?;
        cfg.resolve_paths(file);
        Ok(cfg)
    }

    /// Checks every value; lists all problems.
    pub fn validate(&self, file: Option<&Path>) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        if self.server.listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "server.listen: \"{}\" is not an address like 0.0.0.0:9410",
                self.server.listen
            ));
        }
        if !(1..=64).contains(&self.server.workers) {
            p.push(format!(
                "server.workers: {} is not between 1 and 64",
                self.server.workers
            ));
        }
        if !(1..=256).contains(&self.gpu.fake_count) {
            p.push(format!(
                "gpu.fake_count: {} is not between 1 and 256",
                self.gpu.fake_count
            ));
        }
        if self.gpu.fake_model.trim().is_empty() {
            p.push("gpu.fake_model: must not be empty".into());
        }
        if self.collector.interval < Duration::from_millis(100) {
            p.push(format!(
                "collector.interval: {} is below the 100ms minimum",
                humantime::format_duration(self.collector.interval)
            ));
        }
        let is_url = |s: &str| {
            let rest = s
                .strip_prefix("http://")
                .or_else(|| s.strip_prefix("https://"));
            rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace))
        };
        let cp = &self.control_plane;
        if !cp.url.is_empty() && !is_url(&cp.url) {
            p.push(format!(
                "control_plane.url: {:?} is not an http(s):// URL",
                cp.url
            ));
        }
        if !cp.advertise.is_empty() && !is_url(&cp.advertise) {
            p.push(format!(
                "control_plane.advertise: {:?} is not an http(s):// URL",
                cp.advertise
            ));
        }
        if cp.retry_max < Duration::from_secs(1) {
            p.push("control_plane.retry_max: must be at least 1s".into());
        }
        let c = &self.commands;
        for (name, hook) in [
            ("cordon", &c.cordon),
            ("uncordon", &c.uncordon),
            ("drain", &c.drain),
            ("terminate", &c.terminate),
        ] {
            if hook.first().is_some_and(|p| p.trim().is_empty()) {
                p.push(format!(
                    "commands.{name}: the first element must be the program to run"
                ));
            }
        }
        if c.drain_poll < Duration::from_millis(50) || c.drain_poll > Duration::from_secs(60) {
            p.push("commands.drain_poll: must be between 50ms and 60s".into());
        }
        if c.drain_timeout < Duration::from_secs(1) || c.hook_timeout < Duration::from_secs(1) {
            p.push("commands.drain_timeout and commands.hook_timeout: must be at least 1s".into());
        }
        if self.events.capacity == 0 {
            p.push("events.capacity: must be at least 1".into());
        }
        let (w, c) = (
            self.events.temperature_warning_celsius,
            self.events.temperature_critical_celsius,
        );
        if !(w.is_finite() && c.is_finite() && w < c) {
            p.push(format!(
                "events.temperature_warning_celsius ({w}) must be below events.temperature_critical_celsius ({c})"
            ));
        }
        for (k, v) in &self.node.labels {
            if !valid_label_name(k) {
                p.push(format!(
                    "node.labels.{k}: not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
                ));
            } else if RESERVED_LABELS.contains(&k.as_str()) {
                p.push(format!(
                    "node.labels.{k}: \"{k}\" is set by the agent itself"
                ));
            }
            if v.len() > 1024 {
                p.push(format!("node.labels.{k}: value longer than 1024 bytes"));
            }
        }
        let d = &self.plugin;
        if d.check_timeout < Duration::from_millis(10)
            || d.diagnostic_timeout < Duration::from_millis(10)
        {
            p.push("plugin.check_timeout / plugin.diagnostic_timeout: at least 10ms".into());
        }
        if !(1..=MAX_PLUGIN_MEMORY_MIB).contains(&d.memory_limit_mib) {
            p.push(format!(
                "plugin.memory_limit_mib: {} is not between 1 and {MAX_PLUGIN_MEMORY_MIB}",
                d.memory_limit_mib
            ));
        }
        if d.interval < Duration::from_millis(100) {
            p.push("plugin.interval: at least 100ms".into());
        }
        if !(1..=plugins::MAX_CONCURRENT_RUNS).contains(&d.max_concurrent_runs) {
            p.push(format!(
                "plugin.max_concurrent_runs: {} is not between 1 and {}",
                d.max_concurrent_runs,
                plugins::MAX_CONCURRENT_RUNS
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, e) in self.plugins.iter().enumerate() {
            let at = format!("plugins[{i}] ({})", e.name);
            if !valid_plugin_name(&e.name) {
                p.push(format!(
                    "{at}.name: use letters, digits, '-' and '_' (1 to 64)"
                ));
            }
            if !names.insert(e.name.as_str()) {
                p.push(format!("{at}.name: \"{}\" is used twice", e.name));
            }
            if e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                p.push(format!("{at}.sha256: 64 hex digits required (gpuwarden-agent plugin digest FILE prints it)"));
            }
            if e.interval.is_some_and(|d| d < Duration::from_millis(100)) {
                p.push(format!("{at}.interval: at least 100ms"));
            }
            if e.timeout.is_some_and(|d| d < Duration::from_millis(10)) {
                p.push(format!("{at}.timeout: at least 10ms"));
            }
            if e.memory_limit_mib
                .is_some_and(|m| !(1..=MAX_PLUGIN_MEMORY_MIB).contains(&m))
            {
                p.push(format!(
                    "{at}.memory_limit_mib: between 1 and {MAX_PLUGIN_MEMORY_MIB}"
                ));
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                file: file.map(Path::to_path_buf),
                problems: p,
            })
        }
    }

    /// Makes relative plugin paths relative to the directory of `file`.
    pub fn resolve_paths(&mut self, file: Option<&Path>) {
        let Some(dir) = file.and_then(Path::parent) else {
            return;
        };
        for e in &mut self.plugins {
            if e.path.is_relative() {
                e.path = dir.join(&e.path);
            }
        }
    }

    /// Where the commands received are kept: `commands.state_file`, else next to the node
    /// token file, else nowhere.
    pub fn commands_state_file(&self) -> Option<PathBuf> {
        if !self.commands.state_file.as_os_str().is_empty() {
            return Some(self.commands.state_file.clone());
        }
        let t = &self.control_plane.token_file;
        (!t.as_os_str().is_empty()).then(|| t.with_file_name("commands.json"))
    }

    /// The node id: configured, or the hostname.
    pub fn node_id(&self) -> String {
        if !self.node.id.is_empty() {
            return self.node.id.clone();
        }
        sysinfo::System::host_name().unwrap_or_else(|_| "unknown".into())
    }
}

/// Labels the agent sets on its series; node labels may not reuse them.
pub const RESERVED_LABELS: &[&str] = &[
    "gpu",
    "uuid",
    "model",
    "xid",
    "type",
    "counter",
    "link",
    "reason",
    "check",
    "collector",
    "le",
    "quantile",
];

fn valid_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !s.starts_with("__")
}
