//! Agent configuration: TOML file < `GPUWARDEN_<SECTION>__<KEY>` environment < flags.
//!
//! Raw config is read by figment into [`AgentConfig`], then [`AgentConfig::problems`] checks
//! every value. [`AgentConfig::load`] reports every problem of both kinds at once (unknown
//! keys, wrong types, bad values), each with its key and the file's absolute path or the
//! environment variable it came from (see `gpuwarden-configfile`).

mod load;
mod model;
mod plugins;
pub mod reload;
pub mod secrets;
mod validate;
mod workload;

pub use load::{ConfigError, Overrides, DEFAULT_STATE_DIR};
pub use model::{
    AgentConfig, BackendKind, CollectorConfig, CommandsConfig, ControlPlaneConfig, DrainUntil,
    EventsConfig, GpuConfig, KmsgConfig, MetricsConfig, NodeConfig, ServerConfig,
};
pub use validate::RESERVED_LABELS;
pub use workload::WorkloadConfig;

pub use plugins::{
    valid_plugin_name, PluginDefaults, PluginEntry, PluginKind, PluginValue, MAX_PLUGIN_MEMORY_MIB,
};
