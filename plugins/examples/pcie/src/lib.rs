//! `pcie`: a link narrower than its maximum, or slower than its maximum generation while the
//! GPU is busy (`busy_utilization`, 0.2), or a replay counter that grew by `replay_growth` (1)
//! since the previous run → degraded.
use gpuwarden_plugin_sdk::{checks, prelude::*};

struct Pcie;

impl HealthCheck for Pcie {
    fn check(host: &Host) -> Report {
        let mut r = ReportBuilder::new();
        checks::pcie(
            &mut r,
            &host.gpus(),
            &host.samples(),
            &host.previous_samples(),
            &host.config(),
        );
        r.finish("PCIe links at full width and speed")
    }
}

export_health_check!(Pcie);
