//! `[workload]`: where the agent reads what the node's workload says of itself (pool ready,
//! slots free and busy), for the control plane's pool autoscaling. Off by default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[workload]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadConfig {
    /// An `http://` URL on this host (`127.0.0.1`, `localhost`, `[::1]`) or an absolute file
    /// path answering the node heartbeat JSON (docs/configuration.md); empty: off.
    pub source: String,
    /// Longest a read of an HTTP source may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            source: String::new(),
            timeout: Duration::from_secs(2),
        }
    }
}

impl WorkloadConfig {
    /// Its problems, as `workload.KEY: …` lines.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let s = self.source.as_str();
        if !s.is_empty() {
            if let Some(rest) = s.strip_prefix("http://") {
                let host = rest.split(['/', '?']).next().unwrap_or_default();
                let host = match host.rsplit_once(':') {
                    Some((h, port)) if !h.ends_with(':') && port.parse::<u16>().is_ok() => h,
                    _ => host,
                };
                if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
                    p.push(format!(
                        "workload.source: \"{s}\" is not on this host: use http://127.0.0.1:PORT/PATH, http://localhost… or a file path"
                    ));
                }
            } else if !std::path::Path::new(s).is_absolute() {
                p.push(format!(
                    "workload.source: \"{s}\" is neither an http:// URL on this host nor an absolute file path"
                ));
            }
        }
        if self.timeout < Duration::from_millis(10) || self.timeout > Duration::from_secs(60) {
            p.push(format!(
                "workload.timeout: {} is not between 10ms and 60s",
                humantime::format_duration(self.timeout)
            ));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(source: &str) -> WorkloadConfig {
        WorkloadConfig {
            source: source.into(),
            ..WorkloadConfig::default()
        }
    }

    #[test]
    fn only_local_sources_are_accepted() {
        for ok in [
            "",
            "http://127.0.0.1:9200/heartbeat",
            "http://localhost:8080",
            "http://[::1]:80/x",
            "/run/workload/heartbeat.json",
        ] {
            assert_eq!(with(ok).problems(), Vec::<String>::new(), "{ok}");
        }
        for bad in [
            "http://10.0.0.5:9200/hb",
            "https://127.0.0.1/hb",
            "relative/file.json",
            "http://127.0.0.1.evil.example/",
        ] {
            let p = with(bad).problems();
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(p[0].starts_with("workload.source:"), "{p:?}");
        }
    }
}
