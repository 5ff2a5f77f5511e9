//! Checking the values of a configuration that parsed: every problem at once, each naming
//! its key.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::load::ConfigError;
use super::model::AgentConfig;
use super::plugins::{valid_plugin_name, MAX_PLUGIN_MEMORY_MIB};
use super::secrets;

impl AgentConfig {
    /// Checks every value; all problems, as `KEY: what is wrong` lines.
    pub fn problems(&self) -> Vec<String> {
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
        for (key, url) in [
            ("control_plane.url", &cp.url),
            ("control_plane.advertise", &cp.advertise),
        ] {
            if url.is_empty() {
                continue;
            }
            if let Some(problem) = secrets::url_credentials_problem(key, url) {
                p.push(problem);
            } else if !is_url(url) {
                p.push(format!("{key}: {url:?} is not an http(s):// URL"));
            }
        }
        if let Some(f) = self.token_file() {
            p.extend(secrets::token_file_problems(&f));
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
        let dir = &self.node.state_dir;
        if !dir.as_os_str().is_empty() && !dir.is_absolute() {
            // systemd starts the agent in `/`: a relative folder would land there.
            p.push(format!(
                "node.state_dir: \"{}\" is not an absolute path",
                dir.display()
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
        if !(1..=super::plugins::MAX_CONCURRENT_RUNS).contains(&d.max_concurrent_runs) {
            p.push(format!(
                "plugin.max_concurrent_runs: {} is not between 1 and {}",
                d.max_concurrent_runs,
                super::plugins::MAX_CONCURRENT_RUNS
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
            let hex = e.sha256.strip_prefix("sha256:").unwrap_or(&e.sha256);
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                p.push(format!("{at}.sha256: 64 hex digits required, or sha256: and them (gpuwarden-agent plugin digest FILE prints it)"));
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
        p.extend(self.workload.problems());
        p
    }

    /// [`AgentConfig::problems`] as an error naming `file`.
    pub fn validate(&self, file: Option<&Path>) -> Result<(), ConfigError> {
        let p = self.problems();
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                file: file.map(Path::to_path_buf),
                problems: p,
            })
        }
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
