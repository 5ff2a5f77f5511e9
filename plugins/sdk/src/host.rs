//! Typed access to the agent's read-only host interface.

use crate::bindings::check::gpuwarden::plugin::host as raw;
use crate::{GpuInfo, GpuSample, HealthEvent, LogLevel};

/// The node as the agent sees it. Each call asks the agent afresh.
#[derive(Debug, Default)]
pub struct Host {
    _private: (),
}

impl Host {
    #[doc(hidden)]
    pub fn new() -> Self {
        Host { _private: () }
    }

    /// The GPUs found when the agent started.
    pub fn gpus(&self) -> Vec<GpuInfo> {
        raw::gpus()
    }

    /// The latest sample of every GPU (`lost` for a GPU that fell off the bus), without
    /// NVLink state (the bulk of a sample): see [`Host::samples_with_nvlinks`].
    pub fn samples(&self) -> Vec<GpuSample> {
        raw::samples(false)
    }

    /// The latest samples including every NVLink's state and error counters.
    pub fn samples_with_nvlinks(&self) -> Vec<GpuSample> {
        raw::samples(true)
    }

    /// The samples at this plugin's previous run (empty on the first run), without NVLinks.
    pub fn previous_samples(&self) -> Vec<GpuSample> {
        raw::previous_samples(false)
    }

    /// The samples at this plugin's previous run, with NVLinks.
    pub fn previous_samples_with_nvlinks(&self) -> Vec<GpuSample> {
        raw::previous_samples(true)
    }

    /// Health events after `cursor`, oldest first, at most `limit`.
    pub fn events_after(&self, cursor: u64, limit: u32) -> Vec<HealthEvent> {
        raw::events_after(cursor, limit)
    }

    /// Events recorded since this plugin's previous run started (all held events on the
    /// first run), at most 1,000.
    pub fn new_events(&self) -> Vec<HealthEvent> {
        raw::events_after(raw::previous_cursor(), 1000)
    }

    /// This plugin's configuration (`[plugins.config]`).
    pub fn config(&self) -> Config {
        Config::from_pairs(raw::config())
    }

    /// Logs at `level` under the plugin's name.
    pub fn log(&self, level: LogLevel, message: &str) {
        raw::log(level, message)
    }

    /// Logs at info level.
    pub fn info(&self, message: &str) {
        raw::log(LogLevel::Info, message)
    }

    /// Logs at warn level.
    pub fn warn(&self, message: &str) {
        raw::log(LogLevel::Warn, message)
    }

    /// Monotonic nanoseconds, for measuring durations.
    pub fn monotonic_now_ns(&self) -> u64 {
        raw::monotonic_now_ns()
    }

    /// Wall-clock time, Unix milliseconds.
    pub fn wall_clock_unix_ms(&self) -> u64 {
        raw::wall_clock_unix_ms()
    }
}

/// Key/value configuration with typed getters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pairs: Vec<(String, String)>,
}

impl Config {
    /// From key/value pairs.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Config { pairs }
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key` as a number; `None` when absent or not a number.
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(|v| v.trim().parse().ok())
    }

    /// `key` as an unsigned integer.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| v.trim().parse().ok())
    }

    /// `key` as a boolean (`true`/`false`/`1`/`0`/`yes`/`no`).
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)?.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        }
    }

    /// Every pair.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}
