//! A plugin's report as the agent keeps and shows it, and the checks it must pass.

use std::collections::BTreeMap;

use serde::Serialize;

use super::super::bindings::types as wit;

/// A verdict, as the API and metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 0
    Healthy,
    /// 1
    Degraded,
    /// 2
    Unhealthy,
    /// 3
    Unknown,
}

impl Status {
    /// The value of `gpuwarden_health_check_status`.
    pub fn code(self) -> u8 {
        match self {
            Status::Healthy => 0,
            Status::Degraded => 1,
            Status::Unhealthy => 2,
            Status::Unknown => 3,
        }
    }
    /// The `result` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
            Status::Unknown => "unknown",
        }
    }
    fn from_wit(s: wit::Status) -> Self {
        match s {
            wit::Status::Healthy => Status::Healthy,
            wit::Status::Degraded => Status::Degraded,
            wit::Status::Unhealthy => Status::Unhealthy,
            wit::Status::Unknown => Status::Unknown,
        }
    }
}

/// A finding, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// GPU index; absent for the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
    /// Verdict.
    pub status: Status,
    /// What was found.
    pub message: String,
    /// Recommended action (`none`, `ignore`, `restart_app`, `reset_gpu`, `reboot_node`, `contact_support`).
    pub action: &'static str,
}

/// A report, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Overall verdict.
    pub status: Status,
    /// Summary.
    pub message: String,
    /// Per-GPU findings.
    pub findings: Vec<Finding>,
    /// Named numbers.
    pub metrics: Vec<(String, f64)>,
}

impl Report {
    /// An `unknown` report with the reason.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Report {
            status: Status::Unknown,
            message: reason.into(),
            findings: Vec::new(),
            metrics: Vec::new(),
        }
    }
}

fn action_name(a: wit::Action) -> &'static str {
    match a {
        wit::Action::None => "none",
        wit::Action::Ignore => "ignore",
        wit::Action::RestartApp => "restart_app",
        wit::Action::ResetGpu => "reset_gpu",
        wit::Action::RebootNode => "reboot_node",
        wit::Action::ContactSupport => "contact_support",
    }
}

pub(super) const MAX_FINDINGS: usize = 1024;
pub(super) const MAX_METRICS: usize = 128;

/// Checks a report against the limits and the node; converts it.
pub fn validate(r: wit::Report, max_bytes: usize, gpu_count: usize) -> Result<Report, String> {
    let bytes = r.message.len()
        + r.findings
            .iter()
            .map(|f| f.message.len() + 16)
            .sum::<usize>()
        + r.metrics.iter().map(|m| m.name.len() + 8).sum::<usize>();
    if bytes > max_bytes || r.findings.len() > MAX_FINDINGS || r.metrics.len() > MAX_METRICS {
        return Err(format!(
            "report too large: {bytes} bytes, {} findings, {} metrics (limits {max_bytes} bytes, {MAX_FINDINGS} findings, {MAX_METRICS} metrics)",
            r.findings.len(),
            r.metrics.len()
        ));
    }
    for f in &r.findings {
        if let Some(g) = f.gpu.filter(|g| *g as usize >= gpu_count) {
            return Err(format!(
                "invalid report: finding names GPU {g}, the node has {gpu_count}"
            ));
        }
    }
    for m in &r.metrics {
        let ok_name = !m.name.is_empty()
            && m.name.len() <= 64
            && m.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !m.name.as_bytes()[0].is_ascii_digit();
        if !ok_name {
            return Err(format!(
                "invalid report: metric name {:?} (use [a-zA-Z_][a-zA-Z0-9_]*, at most 64)",
                m.name
            ));
        }
        if !m.value.is_finite() {
            return Err(format!("invalid report: metric {} is {}", m.name, m.value));
        }
    }
    // Each name is the `name` label of one gpuwarden_plugin_value series: a name given twice
    // would be two samples of one series, which Prometheus refuses.
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &r.metrics {
        *times.entry(m.name.as_str()).or_default() += 1;
    }
    if let Some((name, n)) = times.iter().find(|(_, n)| **n > 1) {
        return Err(format!(
            "invalid report: metric {name} is reported {n} times (each name at most once)"
        ));
    }
    Ok(Report {
        status: Status::from_wit(r.status),
        message: r.message,
        findings: r
            .findings
            .into_iter()
            .map(|f| Finding {
                gpu: f.gpu,
                status: Status::from_wit(f.status),
                message: f.message,
                action: action_name(f.action),
            })
            .collect(),
        metrics: r.metrics.into_iter().map(|m| (m.name, m.value)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(metrics: &[(&str, f64)]) -> wit::Report {
        wit::Report {
            status: wit::Status::Healthy,
            message: "ok".into(),
            findings: Vec::new(),
            metrics: metrics
                .iter()
                .map(|(n, v)| wit::Metric {
                    name: (*n).into(),
                    value: *v,
                })
                .collect(),
        }
    }

    #[test]
    fn a_metric_name_reported_twice_refuses_the_report() {
        let repeated: Vec<(&str, f64)> = (0..128).map(|i| ("same_name", f64::from(i))).collect();
        let e = validate(report(&repeated), 65536, 1).unwrap_err();
        assert_eq!(
            e,
            "invalid report: metric same_name is reported 128 times (each name at most once)"
        );
        let ok = validate(report(&[("a", 1.0), ("b", 2.0)]), 65536, 1).unwrap();
        assert_eq!(ok.metrics, vec![("a".into(), 1.0), ("b".into(), 2.0)]);
    }
}
