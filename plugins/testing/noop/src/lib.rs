//! Reports healthy without calling the host: the per-run cost of the sandbox itself.
use gpuwarden_plugin_sdk::prelude::*;
struct Noop;
impl HealthCheck for Noop {
    fn check(_: &Host) -> Report {
        ReportBuilder::new().finish("ok")
    }
}
export_health_check!(Noop);
