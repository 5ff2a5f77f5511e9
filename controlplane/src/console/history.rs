//! A node's recent GPU values for the console's charts (`GET /ui/nodes/{id}/history.json`):
//! from the in-memory ring ([`crate::scrape::recent`]) or, when `console.prometheus_url` is
//! set, from that Prometheus's `query_range` API (the agents scraped through `/v1/sd`, which
//! labels each target with `node_id`).
//!
//! The answer: `{"source","window","times":[unix s…],"series":[{"name","title","unit",
//! "gpus":[{"index","values":[number|null…]}]}],"note"}`, one value per time.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::scrape::recent::{NodeSeries, SERIES};

/// One metric's values per GPU.
#[derive(Debug, Serialize, PartialEq)]
pub struct Series {
    /// The metric without `gpuwarden_gpu_` (`temperature_celsius`).
    pub name: &'static str,
    /// For people.
    pub title: &'static str,
    /// `°C`, `W`, `ratio`, `bytes`.
    pub unit: &'static str,
    /// Per GPU.
    pub gpus: Vec<GpuValues>,
}

/// One GPU's values, a value (or `null`) per time.
#[derive(Debug, Serialize, PartialEq)]
pub struct GpuValues {
    /// GPU index.
    pub index: u32,
    /// Values.
    pub values: Vec<Option<f64>>,
}

/// The charts' data.
#[derive(Debug, Serialize, PartialEq)]
pub struct History {
    /// `memory` or `prometheus`.
    pub source: &'static str,
    /// How far back, like `1h`.
    pub window: String,
    /// The window's start (Unix seconds): the charts' left edge.
    pub start: f64,
    /// The window's end (Unix seconds): now.
    pub end: f64,
    /// Unix seconds.
    pub times: Vec<f64>,
    /// Per metric of [`SERIES`].
    pub series: Vec<Series>,
    /// What is missing and why, when something is.
    pub note: Option<String>,
}

/// The ring's points as charts' data (`None`: nothing kept for the node).
pub fn from_ring(
    s: Option<NodeSeries>,
    now: i64,
    window: Duration,
    note: Option<String>,
) -> History {
    let s = s.unwrap_or_default();
    let series = SERIES
        .iter()
        .enumerate()
        .map(|(k, (name, title, unit))| Series {
            name,
            title,
            unit,
            gpus: s
                .gpus
                .iter()
                .map(|g| GpuValues {
                    index: g.index,
                    values: g.values[k].clone(),
                })
                .collect(),
        })
        .collect();
    let end = now as f64 / 1000.0;
    History {
        source: "memory",
        window: humantime::format_duration(window).to_string(),
        start: end - window.as_secs_f64(),
        end,
        times: s.times,
        series,
        note,
    }
}

/// Why a Prometheus query failed.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// Not reached, or an HTTP error.
    #[error("Prometheus at {url}: {message}")]
    Http {
        /// Its URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Its answer was not what its API documents.
    #[error("Prometheus answered something else than a matrix: {0}")]
    Shape(String),
}

/// Most points one chart asks Prometheus for (its `query_range` refuses more than 11,000).
const MAX_POINTS: u64 = 720;

/// Most GPUs a node's charts show: series past it are left out (and said so), so a
/// Prometheus that answers more series than a node can have costs nothing.
pub const MAX_GPUS: usize = 64;

/// Largest answer read from Prometheus for one metric.
const MAX_BODY: u64 = 4 << 20;

/// Queries Prometheus at `base` for node `node_id`'s [`SERIES`] over `window` before `now`
/// (Unix ms), every `step` (widened to keep at most 720 points). Blocking: run it off the
/// actix workers. `timeout` bounds all the queries together; at most `MAX_GPUS` GPUs and
/// 4 MiB an answer are read.
pub fn from_prometheus(
    base: &str,
    node_id: &str,
    now: i64,
    window: Duration,
    step: Duration,
    timeout: Duration,
) -> Result<History, PromError> {
    let end = now / 1000;
    let start = end - window.as_secs() as i64;
    let step = step.as_secs().max(window.as_secs() / MAX_POINTS).max(1);
    let deadline = std::time::Instant::now() + timeout;
    let mut left_out = 0usize;
    let url = format!("{}/api/v1/query_range", base.trim_end_matches('/'));
    let mut times: Vec<f64> = Vec::new();
    let mut t = start;
    while t <= end {
        times.push(t as f64);
        t += step as i64;
    }
    let slot: HashMap<i64, usize> = times
        .iter()
        .enumerate()
        .map(|(i, t)| (*t as i64, i))
        .collect();
    let mut series = Vec::new();
    for (name, title, unit) in SERIES {
        // node_id values are `node-` and hex digits (token::random_id): nothing to escape,
        // but quotes and backslashes are escaped all the same.
        let id = node_id.replace('\\', "\\\\").replace('"', "\\\"");
        let query = format!("gpuwarden_gpu_{name}{{node_id=\"{id}\"}}");
        let http = |message: String| PromError::Http {
            url: base.to_string(),
            message,
        };
        // One deadline for the whole chart: each query gets what is left of it.
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(http(format!(
                "no answer within {} for every metric",
                humantime::format_duration(timeout)
            )));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(left))
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut resp = agent
            .get(&url)
            .query("query", &query)
            .query("start", start.to_string())
            .query("end", end.to_string())
            .query("step", step.to_string())
            .call()
            .map_err(|e| http(e.to_string()))?;
        let status = resp.status();
        let body: serde_json::Value = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_json()
            .map_err(|e| http(format!("HTTP {status}: {e}")))?;
        if body["status"] != "success" {
            return Err(http(format!(
                "HTTP {status}: {}",
                body["error"].as_str().unwrap_or("no error message")
            )));
        }
        let result = body["data"]["result"]
            .as_array()
            .ok_or_else(|| PromError::Shape(body["data"]["resultType"].to_string()))?;
        let mut gpus: BTreeMap<u32, Vec<Option<f64>>> = BTreeMap::new();
        for r in result {
            let Some(index) = r["metric"]["gpu"].as_str().and_then(|g| g.parse().ok()) else {
                continue;
            };
            if !gpus.contains_key(&index) && gpus.len() >= MAX_GPUS {
                left_out += 1;
                continue;
            }
            let values = gpus.entry(index).or_insert_with(|| vec![None; times.len()]);
            for pair in r["values"].as_array().into_iter().flatten() {
                let at = pair[0].as_f64().map(|t| t.round() as i64);
                let v = pair[1].as_str().and_then(|v| v.parse::<f64>().ok());
                if let (Some(at), Some(v)) = (at, v) {
                    if let Some(i) = slot.get(&at) {
                        values[*i] = v.is_finite().then_some(v);
                    }
                }
            }
        }
        series.push(Series {
            name,
            title,
            unit,
            gpus: gpus
                .into_iter()
                .map(|(index, values)| GpuValues { index, values })
                .collect(),
        });
    }
    let empty = series.iter().all(|s| s.gpus.is_empty());
    Ok(History {
        source: "prometheus",
        window: humantime::format_duration(window).to_string(),
        start: start as f64,
        end: end as f64,
        times: if empty { Vec::new() } else { times },
        series,
        note: if empty {
            Some(format!("Prometheus at {base} has no gpuwarden_gpu_* series with node_id=\"{node_id}\": does it scrape the agents through /v1/sd?"))
        } else if left_out > 0 {
            Some(format!(
                "{left_out} series past the first {MAX_GPUS} GPUs are left out."
            ))
        } else {
            None
        },
    })
}
