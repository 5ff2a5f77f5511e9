//! An agent's `/metrics` body as the control plane sees it: per-GPU values, XID and ECC
//! counters, NVLink and clock-event state, plugin verdicts, driver versions.
//!
//! Parsing uses the strict parser of `gpuwarden-wire`: a broken body is a failed scrape with
//! a reason, never a partial observation. Names come from `gpuwarden_wire::metric`, the same
//! constants the agent renders with.

use std::collections::{BTreeMap, BTreeSet};

use gpuwarden_wire::exposition::{self, ParseError, Sample};
use gpuwarden_wire::metric as m;

/// Why a body could not be observed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ObserveError {
    /// Not valid Prometheus text.
    #[error("invalid metrics body: {0}")]
    Parse(#[from] ParseError),
    /// More samples than the per-target limit (reading stops there).
    #[error("more than {limit} samples (scrape.sample_limit)")]
    TooManySamples {
        /// The limit.
        limit: usize,
    },
    /// A per-GPU series without a usable `gpu` label.
    #[error("{metric}: the gpu label is missing or not a number")]
    BadGpuLabel {
        /// The series.
        metric: String,
    },
}

/// One GPU.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuObservation {
    /// Index.
    pub index: u32,
    /// UUID.
    pub uuid: String,
    /// Model.
    pub model: String,
    /// Whether the agent could read it (`gpuwarden_gpu_up`); `None` when the body has no
    /// such series for this GPU: unknown, never read as down.
    pub up: Option<bool>,
    /// Single-series families by name without the `gpuwarden_gpu_` prefix, e.g.
    /// `temperature_celsius`, `power_watts`, `pcie_link_width`.
    pub values: BTreeMap<String, f64>,
    /// XIDs seen, by code.
    pub xid_errors: BTreeMap<u32, f64>,
    /// ECC errors by (`type`, `counter`).
    pub ecc_errors: BTreeMap<(String, String), f64>,
    /// NVLink state by link.
    pub nvlink_up: BTreeMap<u32, bool>,
    /// NVLink errors by link, all types summed.
    pub nvlink_errors: BTreeMap<u32, f64>,
    /// Active clock-event reasons.
    pub clock_events: BTreeSet<String>,
}

/// One node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeObservation {
    /// GPUs by index.
    pub gpus: BTreeMap<u32, GpuObservation>,
    /// Driver version from `gpuwarden_node_info`.
    pub driver_version: Option<String>,
    /// CUDA version.
    pub cuda_version: Option<String>,
    /// Agent version.
    pub agent_version: Option<String>,
    /// Health-check plugin verdicts (0 healthy, 1 degraded, 2 unhealthy, 3 unknown).
    pub health_checks: BTreeMap<String, f64>,
    /// Samples in the body.
    pub samples: usize,
    /// Health events the agent has recorded (all kinds), since it started.
    pub events_total: f64,
    /// When the agent started (Unix seconds); a change means a restart.
    pub agent_started: Option<f64>,
}

fn gpu_of<'o>(
    node: &'o mut NodeObservation,
    s: &Sample<'_>,
) -> Result<&'o mut GpuObservation, ObserveError> {
    let index: u32 = s
        .labels
        .get("gpu")
        .and_then(|g| g.parse().ok())
        .ok_or_else(|| ObserveError::BadGpuLabel {
            metric: s.name.to_string(),
        })?;
    let g = node.gpus.entry(index).or_insert_with(|| GpuObservation {
        index,
        ..Default::default()
    });
    if g.uuid.is_empty() {
        if let Some(u) = s.labels.get("uuid") {
            g.uuid = u.into_owned();
        }
        if let Some(m) = s.labels.get("model") {
            g.model = m.into_owned();
        }
    }
    Ok(g)
}

fn label_u32(s: &Sample<'_>, name: &str) -> Option<u32> {
    s.labels.get(name).and_then(|v| v.parse().ok())
}

/// Reads an agent's `/metrics` body; at most `sample_limit` samples.
pub fn observe(body: &[u8], sample_limit: usize) -> Result<NodeObservation, ObserveError> {
    let mut node = NodeObservation::default();
    // Streamed: no vector of samples, and a body over the limit stops being read there.
    for entry in exposition::Parser::new(body) {
        let exposition::Entry::Sample(s) = entry? else {
            continue;
        };
        node.samples += 1;
        if node.samples > sample_limit {
            return Err(ObserveError::TooManySamples {
                limit: sample_limit,
            });
        }
        let s = &s;
        match s.name {
            m::NODE_INFO => {
                node.driver_version = s.labels.get("driver_version").map(|v| v.into_owned());
                node.cuda_version = s.labels.get("cuda_version").map(|v| v.into_owned());
                node.agent_version = s.labels.get("agent_version").map(|v| v.into_owned());
            }
            m::HEALTH_CHECK_STATUS => {
                if let Some(c) = s.labels.get("check") {
                    node.health_checks.insert(c.into_owned(), s.value);
                }
            }
            m::GPU_UP => gpu_of(&mut node, s)?.up = Some(s.value == 1.0),
            m::AGENT_EVENTS => node.events_total += s.value,
            m::AGENT_START_TIME => node.agent_started = Some(s.value),
            m::GPU_XID_ERRORS => {
                let code = label_u32(s, "xid");
                let g = gpu_of(&mut node, s)?;
                if let Some(code) = code {
                    g.xid_errors.insert(code, s.value);
                }
            }
            m::GPU_ECC_ERRORS => {
                let key = (
                    s.labels
                        .get("type")
                        .map(|v| v.into_owned())
                        .unwrap_or_default(),
                    s.labels
                        .get("counter")
                        .map(|v| v.into_owned())
                        .unwrap_or_default(),
                );
                gpu_of(&mut node, s)?.ecc_errors.insert(key, s.value);
            }
            m::GPU_NVLINK_UP => {
                let link = label_u32(s, "link");
                let g = gpu_of(&mut node, s)?;
                if let Some(l) = link {
                    g.nvlink_up.insert(l, s.value == 1.0);
                }
            }
            m::GPU_NVLINK_ERRORS => {
                let link = label_u32(s, "link");
                let g = gpu_of(&mut node, s)?;
                if let Some(l) = link {
                    *g.nvlink_errors.entry(l).or_default() += s.value;
                }
            }
            m::GPU_CLOCK_EVENT => {
                let reason = s.labels.get("reason").map(|v| v.into_owned());
                let g = gpu_of(&mut node, s)?;
                if let (Some(r), true) = (reason, s.value == 1.0) {
                    g.clock_events.insert(r);
                }
            }
            "gpuwarden_gpu_info" | "gpuwarden_gpu_remapped_rows_total" => {
                gpu_of(&mut node, s)?;
            }
            name => {
                if let Some(short) = name.strip_prefix(m::GPU_PREFIX) {
                    gpu_of(&mut node, s)?
                        .values
                        .insert(short.to_string(), s.value);
                }
            }
        }
    }
    Ok(node)
}

/// Whether the agent has new health events to read: it restarted, its event count moved,
/// or an XID or ECC counter changed.
pub fn events_pending(prev: Option<&NodeObservation>, cur: &NodeObservation) -> bool {
    let Some(prev) = prev else { return true };
    if prev.agent_started != cur.agent_started || prev.events_total != cur.events_total {
        return true;
    }
    cur.gpus.iter().any(|(i, g)| {
        let Some(p) = prev.gpus.get(i) else {
            return true;
        };
        let changed = |a: Option<&f64>, b: Option<&f64>| {
            a.copied().unwrap_or(0.0) != b.copied().unwrap_or(0.0)
        };
        g.xid_errors
            .iter()
            .any(|(c, v)| changed(Some(v), p.xid_errors.get(c)))
            || p.xid_errors.keys().any(|c| !g.xid_errors.contains_key(c))
            || g.ecc_errors
                .iter()
                .any(|(k, v)| k.1 == "volatile" && changed(Some(v), p.ecc_errors.get(k)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "# HELP gpuwarden_gpu_up Up.\n# TYPE gpuwarden_gpu_up gauge\n\
gpuwarden_gpu_up{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\"} 1\n\
gpuwarden_gpu_up{gpu=\"1\",uuid=\"GPU-b\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\"} 0\n\
# TYPE gpuwarden_gpu_temperature_celsius gauge\n\
gpuwarden_gpu_temperature_celsius{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\"} 61\n\
# TYPE gpuwarden_gpu_xid_errors_total counter\n\
gpuwarden_gpu_xid_errors_total{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\",xid=\"79\"} 1\n\
# TYPE gpuwarden_gpu_ecc_errors_total counter\n\
gpuwarden_gpu_ecc_errors_total{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\",type=\"uncorrected\",counter=\"volatile\"} 2\n\
# TYPE gpuwarden_gpu_nvlink_up gauge\n\
gpuwarden_gpu_nvlink_up{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\",link=\"3\"} 0\n\
# TYPE gpuwarden_gpu_clock_event_active gauge\n\
gpuwarden_gpu_clock_event_active{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\",reason=\"hw_slowdown\"} 1\n\
gpuwarden_gpu_clock_event_active{gpu=\"0\",uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",rack=\"r,1\",reason=\"gpu_idle\"} 0\n\
# TYPE gpuwarden_node_info gauge\n\
gpuwarden_node_info{node=\"n1\",driver_version=\"550.54.15\",cuda_version=\"12.4\",agent_version=\"0.1.0\",backend=\"nvml\"} 1\n\
# TYPE gpuwarden_health_check_status gauge\n\
gpuwarden_health_check_status{check=\"xid\"} 2\n";

    #[test]
    fn a_body_becomes_per_gpu_values_counters_and_state() {
        let o = observe(BODY.as_bytes(), 10_000).unwrap();
        assert_eq!(o.samples, 10);
        let g0 = &o.gpus[&0];
        assert_eq!((g0.uuid.as_str(), g0.up), ("GPU-a", Some(true)));
        assert_eq!(g0.values["temperature_celsius"], 61.0);
        assert_eq!(g0.xid_errors[&79], 1.0);
        assert_eq!(
            g0.ecc_errors[&("uncorrected".to_string(), "volatile".to_string())],
            2.0
        );
        assert!(!g0.nvlink_up[&3]);
        assert_eq!(g0.clock_events.iter().collect::<Vec<_>>(), ["hw_slowdown"]);
        assert_eq!(o.gpus[&1].up, Some(false));
        assert_eq!(o.driver_version.as_deref(), Some("550.54.15"));
        assert_eq!(o.health_checks["xid"], 2.0);
    }

    #[test]
    fn a_series_the_body_lacks_is_unknown_not_false_or_zero() {
        // The body: a temperature, no `gpuwarden_gpu_up`.
        let o = observe(
            b"gpuwarden_gpu_temperature_celsius{gpu=\"0\",uuid=\"GPU-a\"} 61\n",
            100,
        )
        .unwrap();
        let g = &o.gpus[&0];
        assert_eq!(g.up, None, "no up series: unknown");
        assert!(g.ecc_errors.is_empty() && g.nvlink_up.is_empty());
        assert_eq!(o.driver_version, None);
    }

    #[test]
    fn broken_or_oversized_bodies_are_errors_not_partial_observations() {
        assert!(matches!(
            observe(b"gpuwarden_gpu_up{gpu=\"0\" 1\n", 100),
            Err(ObserveError::Parse(_))
        ));
        assert!(matches!(
            observe(BODY.as_bytes(), 5),
            Err(ObserveError::TooManySamples { limit: 5 })
        ));
        assert_eq!(
            observe(b"gpuwarden_gpu_up{gpu=\"x\"} 1\n", 100),
            Err(ObserveError::BadGpuLabel {
                metric: "gpuwarden_gpu_up".into()
            })
        );
    }

    #[test]
    fn events_are_pending_when_counters_move() {
        let a = observe(BODY.as_bytes(), 10_000).unwrap();
        assert!(events_pending(None, &a), "first scrape reads the events");
        assert!(!events_pending(Some(&a), &a));
        let more = BODY.replace("xid=\"79\"} 1", "xid=\"79\"} 2");
        assert!(events_pending(
            Some(&a),
            &observe(more.as_bytes(), 10_000).unwrap()
        ));
        let new_code = BODY.replace("xid=\"79\"} 1", "xid=\"13\"} 1");
        assert!(events_pending(
            Some(&a),
            &observe(new_code.as_bytes(), 10_000).unwrap()
        ));
        let restarted = BODY.replace("counter=\"volatile\"} 2", "counter=\"volatile\"} 0");
        assert!(events_pending(
            Some(&a),
            &observe(restarted.as_bytes(), 10_000).unwrap()
        ));
        let restarted = format!("{BODY}gpuwarden_agent_start_time_seconds 1795000001\n");
        assert!(
            events_pending(Some(&a), &observe(restarted.as_bytes(), 10_000).unwrap()),
            "a restarted agent is read from the start, whatever its counters say"
        );
        let thermal = format!(
            "{BODY}gpuwarden_agent_events_total{{kind=\"thermal\",severity=\"warning\"}} 1\n"
        );
        assert!(
            events_pending(Some(&a), &observe(thermal.as_bytes(), 10_000).unwrap()),
            "any new event, not only XIDs and ECC"
        );
        let warmer = BODY.replace("} 61", "} 75");
        assert!(
            !events_pending(Some(&a), &observe(warmer.as_bytes(), 10_000).unwrap()),
            "gauges are not events"
        );
    }
}
