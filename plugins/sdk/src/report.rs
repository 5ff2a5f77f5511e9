//! Building reports.

use crate::{Action, Finding, Metric, Report, Status};

impl Status {
    /// How bad: healthy 0 < unknown 1 < degraded 2 < unhealthy 3.
    pub fn rank(self) -> u8 {
        match self {
            Status::Healthy => 0,
            Status::Unknown => 1,
            Status::Degraded => 2,
            Status::Unhealthy => 3,
        }
    }

    /// The worse of two statuses.
    pub fn worst(self, other: Status) -> Status {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

pub(crate) fn action_from_wire(a: gpuwarden_wire::Action) -> Action {
    match a {
        gpuwarden_wire::Action::Ignore => Action::Ignore,
        gpuwarden_wire::Action::RestartApp => Action::RestartApp,
        gpuwarden_wire::Action::ResetGpu => Action::ResetGpu,
        gpuwarden_wire::Action::RebootNode => Action::RebootNode,
        gpuwarden_wire::Action::ContactSupport => Action::ContactSupport,
    }
}

/// Collects findings and metrics; the overall status is the worst finding's.
#[derive(Debug, Default)]
pub struct ReportBuilder {
    findings: Vec<Finding>,
    metrics: Vec<Metric>,
}

impl ReportBuilder {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a finding about one GPU (or the node with `None`).
    pub fn finding(
        &mut self,
        gpu: Option<u32>,
        status: Status,
        message: impl Into<String>,
        action: Action,
    ) -> &mut Self {
        self.findings.push(Finding {
            gpu,
            status,
            message: message.into(),
            action,
        });
        self
    }

    /// Adds a named number, exposed as `gpuwarden_plugin_value{plugin, name}`.
    pub fn metric(&mut self, name: impl Into<String>, value: f64) -> &mut Self {
        self.metrics.push(Metric {
            name: name.into(),
            value,
        });
        self
    }

    /// The report: the worst finding's status; the message lists the non-healthy findings,
    /// or is `ok_message` when there are none.
    pub fn finish(&mut self, ok_message: &str) -> Report {
        let findings = std::mem::take(&mut self.findings);
        let status = findings
            .iter()
            .fold(Status::Healthy, |s, f| s.worst(f.status));
        let bad: Vec<String> = findings
            .iter()
            .filter(|f| f.status != Status::Healthy)
            .map(|f| match f.gpu {
                Some(g) => format!("GPU {g}: {}", f.message),
                None => f.message.clone(),
            })
            .collect();
        let message = if bad.is_empty() {
            ok_message.to_string()
        } else {
            bad.join("; ")
        };
        Report {
            status,
            message,
            findings,
            metrics: std::mem::take(&mut self.metrics),
        }
    }
}
