#![allow(clippy::unwrap_used, clippy::result_large_err, clippy::type_complexity)]
//! Integration tests of the agent: real `gpuwarden-agent` processes with fake GPUs, driven
//! through their HTTP endpoints. One test binary, a module per area.

mod util;

mod cli;
mod commands;
mod config;
mod config_check;
mod config_env;
mod events;
mod exposition;
mod faults;
mod idle;
mod imports;
mod kmsg;
mod notify;
mod plugin_authoring;
mod plugin_hostile;
mod plugin_langs;
mod plugin_lifecycle;
mod plugin_load;
mod plugin_runs;
mod plugin_sync;
mod plugin_watch;
mod plugins;
