//! `ecc`: uncorrectable (double-bit) errors → unhealthy; `sbe_threshold` (10) or more
//! corrected-error events within `window_seconds` (3600) → degraded; a pending row remap →
//! degraded, a failed one → unhealthy.
use gpuwarden_plugin_sdk::{checks, prelude::*};

struct Ecc;

impl HealthCheck for Ecc {
    fn check(host: &Host) -> Report {
        let cfg = host.config();
        let window_ms = cfg.u64("window_seconds").unwrap_or(3600) * 1000;
        let events = host.events_after(0, 10_000);
        let mut r = ReportBuilder::new();
        let recent = checks::recent(&events, host.wall_clock_unix_ms(), window_ms);
        checks::ecc(&mut r, &host.samples(), recent, &cfg);
        r.finish("no ECC problem")
    }
}

export_health_check!(Ecc);
