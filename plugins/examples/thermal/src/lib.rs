//! `thermal`: GPU temperature against `warning_celsius` (85) and `critical_celsius` (92),
//! memory temperature against `memory_max_celsius` (95), and active thermal or hardware
//! slowdowns.
use gpuwarden_plugin_sdk::{checks, prelude::*};

struct Thermal;

impl HealthCheck for Thermal {
    fn check(host: &Host) -> Report {
        let mut r = ReportBuilder::new();
        checks::thermal(&mut r, &host.samples(), &host.config());
        r.finish("temperatures normal")
    }
}

export_health_check!(Thermal);
