//! The plugins' families in `/metrics`.

use std::collections::BTreeMap;

use super::super::runner::Outcome;
use super::{lock, PluginManager};
use crate::config::PluginKind;
use crate::render::ExtraMetrics;
use crate::text::{labels, Kind, Text};

/// name, kind, last outcome, runs by result, load failed.
type MetricRow = (
    String,
    Option<PluginKind>,
    Option<Outcome>,
    BTreeMap<&'static str, u64>,
    bool,
);

impl ExtraMetrics for PluginManager {
    fn render(&self, t: &mut Text) {
        let slots = lock(&self.slots);
        let rows: Vec<MetricRow> = slots
            .iter()
            .map(|(n, s)| {
                let st = lock(&s.state);
                (
                    n.clone(),
                    s.loaded.as_ref().map(|l| l.compiled.kind),
                    st.last.clone(),
                    st.runs.clone(),
                    s.load_error.is_some(),
                )
            })
            .collect();
        drop(slots);
        let checks: Vec<_> = rows
            .iter()
            .filter(|r| r.1 == Some(PluginKind::Check))
            .collect();
        t.family(
            "gpuwarden_health_check_status",
            "Last result of a health-check plugin: 0 healthy, 1 degraded, 2 unhealthy, 3 unknown.",
            Kind::Gauge,
        );
        for r in &checks {
            if let Some(o) = &r.2 {
                t.sample(
                    "gpuwarden_health_check_status",
                    &labels(&[("check", &r.0)]),
                    "",
                    f64::from(o.report.status.code()),
                );
            }
        }
        t.family(
            "gpuwarden_health_check_duration_seconds",
            "Duration of the last run of a health-check plugin.",
            Kind::Gauge,
        );
        for r in &checks {
            if let Some(o) = &r.2 {
                t.sample(
                    "gpuwarden_health_check_duration_seconds",
                    &labels(&[("check", &r.0)]),
                    "",
                    o.duration_seconds,
                );
            }
        }
        t.family(
            "gpuwarden_health_check_runs_total",
            "Runs of a health-check plugin by result.",
            Kind::Counter,
        );
        for r in &checks {
            for (result, n) in &r.3 {
                t.sample(
                    "gpuwarden_health_check_runs_total",
                    &labels(&[("check", &r.0), ("result", result)]),
                    "",
                    *n as f64,
                );
            }
        }
        t.family(
            "gpuwarden_plugin_value",
            "Named numbers reported by plugins.",
            Kind::Gauge,
        );
        for r in &rows {
            if let Some(o) = &r.2 {
                for (name, v) in &o.report.metrics {
                    t.sample(
                        "gpuwarden_plugin_value",
                        &labels(&[("plugin", &r.0), ("name", name)]),
                        "",
                        *v,
                    );
                }
            }
        }
        t.family(
            "gpuwarden_plugin_load_failed",
            "1 when the configured version of a plugin could not be loaded.",
            Kind::Gauge,
        );
        for r in &rows {
            t.sample(
                "gpuwarden_plugin_load_failed",
                &labels(&[("plugin", &r.0)]),
                "",
                if r.4 { 1.0 } else { 0.0 },
            );
        }
    }
}
