//! How the last reloads of the configuration file went, for `/metrics` and `/healthz`.
//!
//! The agent rereads its config file when it changes (the plugin list applies at once,
//! other settings at the next start). A file that no longer loads leaves the running
//! configuration in place; before this, that showed only in the log. Now it shows in
//! `gpuwarden_agent_config_reload_failures_total`, `gpuwarden_agent_config_last_reload_success`
//! and the `config_reload` field of `/healthz`, with the error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::render::ExtraMetrics;
use crate::text::{Kind, Text};

/// Counts the reloads of the config file and keeps the last error; shared by the reloader,
/// the metrics and `/healthz`.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    successes: AtomicU64,
    failures: AtomicU64,
    last: Mutex<Option<Last>>,
}

#[derive(Debug, Clone)]
struct Last {
    at: SystemTime,
    error: Option<String>,
}

impl ReloadStatus {
    /// Records a reload at `at`: `Ok` applied, `Err` refused with the reason (every problem).
    pub fn record(&self, at: SystemTime, outcome: Result<(), String>) {
        match &outcome {
            Ok(()) => self.successes.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failures.fetch_add(1, Ordering::Relaxed),
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Last {
            at,
            error: outcome.err(),
        });
    }

    /// Reloads refused since start.
    pub fn failures_total(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The `config_reload` field of `/healthz`: `ok` (false while the last reload failed),
    /// the counts, and the last attempt with its error.
    pub fn health(&self) -> serde_json::Value {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        serde_json::json!({
            "ok": last.as_ref().is_none_or(|l| l.error.is_none()),
            "reloads_total": self.successes.load(Ordering::Relaxed),
            "failures_total": self.failures_total(),
            "last_attempt": last.as_ref().map(|l| humantime::format_rfc3339_millis(l.at).to_string()),
            "last_error": last.and_then(|l| l.error),
        })
    }
}

impl ExtraMetrics for ReloadStatus {
    fn render(&self, t: &mut Text) {
        t.family(
            "gpuwarden_agent_config_reload_failures_total",
            "Reloads of the config file refused because it did not load (the running configuration stayed).",
            Kind::Counter,
        );
        t.sample(
            "gpuwarden_agent_config_reload_failures_total",
            "",
            "",
            self.failures_total() as f64,
        );
        let last_ok = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_none_or(|l| l.error.is_none());
        t.family(
            "gpuwarden_agent_config_last_reload_success",
            "1 when the last reload of the config file was applied (or none was tried), 0 when it was refused.",
            Kind::Gauge,
        );
        t.sample(
            "gpuwarden_agent_config_last_reload_success",
            "",
            "",
            if last_ok { 1.0 } else { 0.0 },
        );
    }
}

/// Several [`ExtraMetrics`] rendered one after the other.
pub struct Extras(pub Vec<std::sync::Arc<dyn ExtraMetrics>>);

impl ExtraMetrics for Extras {
    fn render(&self, t: &mut Text) {
        for e in &self.0 {
            e.render(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_reload_shows_until_one_is_applied() {
        let s = ReloadStatus::default();
        assert_eq!(s.health()["ok"], true);
        s.record(
            SystemTime::now(),
            Err("plugins[0].sha256: 64 hex digits required".into()),
        );
        let h = s.health();
        assert_eq!(
            (h["ok"].clone(), h["failures_total"].clone()),
            (false.into(), 1.into())
        );
        assert!(h["last_error"].as_str().unwrap().contains("sha256"));
        let mut t = Text::default();
        s.render(&mut t);
        let body = t.finish();
        assert!(
            body.contains("gpuwarden_agent_config_reload_failures_total 1"),
            "{body}"
        );
        assert!(
            body.contains("gpuwarden_agent_config_last_reload_success 0"),
            "{body}"
        );
        s.record(SystemTime::now(), Ok(()));
        assert_eq!(s.health()["ok"], true);
        assert_eq!(s.health()["failures_total"], 1);
    }
}
