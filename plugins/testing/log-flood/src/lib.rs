//! Floods the host log (the agent keeps a bounded number of lines) and then stdout (a bounded
//! pipe: overflowing it traps).
use gpuwarden_plugin_sdk::prelude::*;
struct Flood;
impl HealthCheck for Flood {
    fn check(host: &Host) -> Report {
        for i in 0..100_000 {
            host.info(&format!("log line {i}"));
        }
        for i in 0..10_000_000u64 {
            println!("stdout line {i} {}", "y".repeat(100));
        }
        ReportBuilder::new().finish("survived")
    }
}
export_health_check!(Flood);
