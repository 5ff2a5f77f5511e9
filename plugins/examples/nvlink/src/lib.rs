//! `nvlink`: a link down → unhealthy (reset the GPU); error counters that grew by
//! `error_growth` (1) since the previous run → degraded.
use gpuwarden_plugin_sdk::{checks, prelude::*};

struct NvLink;

impl HealthCheck for NvLink {
    fn check(host: &Host) -> Report {
        let mut r = ReportBuilder::new();
        checks::nvlink(
            &mut r,
            &host.samples_with_nvlinks(),
            &host.previous_samples_with_nvlinks(),
            &host.config(),
        );
        r.finish("all NVLinks up, no new errors")
    }
}

export_health_check!(NvLink);
