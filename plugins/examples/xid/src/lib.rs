//! `xid`: XID events of the last `window_seconds` (default 600) become findings with the XID
//! table's status and recommended action; `ignore = "43,45"` skips codes. The verdict holds
//! for the window, so a fatal XID keeps the check unhealthy long enough to be acted on.
use gpuwarden_plugin_sdk::{checks, prelude::*};

struct Xid;

impl HealthCheck for Xid {
    fn check(host: &Host) -> Report {
        let cfg = host.config();
        let window_ms = cfg.u64("window_seconds").unwrap_or(600) * 1000;
        let events = host.events_after(0, 10_000);
        let mut r = ReportBuilder::new();
        let n = checks::xids(
            &mut r,
            checks::recent(&events, host.wall_clock_unix_ms(), window_ms),
            &cfg,
        );
        r.metric("xids_in_window", n as f64);
        r.finish("no XID in the window")
    }
}

export_health_check!(Xid);
