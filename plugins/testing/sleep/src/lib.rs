//! Sleeps `ms` milliseconds (config; default 1000), or for ever with `ms = "forever"`, then
//! reports healthy: the agent's wall-clock deadline must stop it whatever it waits on.
use gpuwarden_plugin_sdk::prelude::*;
use std::time::Duration;
struct Sleep;
impl HealthCheck for Sleep {
    fn check(host: &Host) -> Report {
        let cfg = host.config();
        if cfg.get("ms") == Some("forever") {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        let ms = cfg.u64("ms").unwrap_or(1000);
        std::thread::sleep(Duration::from_millis(ms));
        ReportBuilder::new().finish(&format!("slept {ms} ms"))
    }
}
export_health_check!(Sleep);
