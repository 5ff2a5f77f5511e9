//! `gpu-sanity` (diagnostic): runs a set of checks at once, on demand.
//!
//! Parameters (all optional):
//! - `checks`: comma-separated subset of `inventory,lost,thermal,ecc,pcie,nvlink,xid`
//!   (default: all)
//! - `expect_gpus`: the number of GPUs the node should have; fewer → unhealthy
//! - `expect_model`: a substring every GPU's model must contain
//! - the thresholds of the individual checks (`warning_celsius`, `sbe_threshold`, …)
//! - `window_seconds`: how far back events count (default 3600)
use gpuwarden_plugin_sdk::{checks, prelude::*};

struct GpuSanity;

const ALL: &[&str] = &[
    "inventory",
    "lost",
    "thermal",
    "ecc",
    "pcie",
    "nvlink",
    "xid",
];

impl Diagnostic for GpuSanity {
    fn run(host: &Host, params: &Config) -> Report {
        let wanted: Vec<String> = match params.get("checks") {
            Some(list) => list
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => ALL.iter().map(|s| s.to_string()).collect(),
        };
        let mut r = ReportBuilder::new();
        for w in wanted.iter().filter(|w| !ALL.contains(&w.as_str())) {
            r.finding(
                None,
                Status::Unknown,
                format!("unknown check \"{w}\"; known: {}", ALL.join(", ")),
                Action::None,
            );
        }
        let on = |name: &str| wanted.iter().any(|w| w == name);
        let gpus = host.gpus();
        let samples = if on("nvlink") {
            host.samples_with_nvlinks()
        } else {
            host.samples()
        };
        let window_ms = params.u64("window_seconds").unwrap_or(3600) * 1000;
        let events = host.events_after(0, 10_000);
        let now = host.wall_clock_unix_ms();
        r.metric("gpus", gpus.len() as f64);
        r.metric(
            "gpus_lost",
            samples.iter().filter(|s| s.lost).count() as f64,
        );
        if on("inventory") {
            if let Some(n) = params.u64("expect_gpus") {
                if (gpus.len() as u64) < n {
                    r.finding(
                        None,
                        Status::Unhealthy,
                        format!("{} GPUs, expected {n}", gpus.len()),
                        Action::RebootNode,
                    );
                }
            }
            if let Some(m) = params.get("expect_model") {
                for g in gpus.iter().filter(|g| !g.model.contains(m)) {
                    r.finding(
                        Some(g.index),
                        Status::Degraded,
                        format!("model \"{}\" does not contain \"{m}\"", g.model),
                        Action::None,
                    );
                }
            }
        }
        if on("lost") {
            checks::lost(&mut r, &samples);
        }
        if on("thermal") {
            checks::thermal(&mut r, &samples, params);
        }
        if on("ecc") {
            checks::ecc(
                &mut r,
                &samples,
                checks::recent(&events, now, window_ms),
                params,
            );
        }
        if on("pcie") {
            checks::pcie(&mut r, &gpus, &samples, &[], params);
        }
        if on("nvlink") {
            checks::nvlink(&mut r, &samples, &[], params);
        }
        if on("xid") {
            checks::xids(&mut r, checks::recent(&events, now, window_ms), params);
        }
        r.finish(&format!(
            "{} GPU(s) passed: {}",
            gpus.len(),
            wanted.join(", ")
        ))
    }
}

export_diagnostic!(GpuSanity);
