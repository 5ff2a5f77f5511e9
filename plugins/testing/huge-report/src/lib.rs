//! Returns 20,000 findings with 1 KiB messages (about 20 MiB): over the report cap.
use gpuwarden_plugin_sdk::prelude::*;
struct Huge;
impl HealthCheck for Huge {
    fn check(_: &Host) -> Report {
        let mut r = ReportBuilder::new();
        let msg = "x".repeat(1024);
        for _ in 0..20_000 {
            r.finding(Some(0), Status::Degraded, msg.clone(), Action::None);
        }
        r.finish("never")
    }
}
export_health_check!(Huge);
