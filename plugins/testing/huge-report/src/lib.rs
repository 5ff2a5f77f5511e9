//! Reports that the agent must refuse, chosen by the config value `shape`:
//! - `findings` (default): 20,000 findings with 1 KiB messages (about 20 MiB), over the cap;
//! - `alias`: 64 findings whose messages all point at one 16 MiB string: 16 MiB of plugin
//!   memory that would be 1 GiB once copied into the agent, which must refuse it before
//!   copying;
//! - `repeated-metric`: one metric name reported 128 times (128 identical series);
//! - `log`: one 1 MiB log line, which the agent must refuse before copying it.
use gpuwarden_plugin_sdk::prelude::*;
struct Huge;
impl HealthCheck for Huge {
    fn check(host: &Host) -> Report {
        let cfg = host.config();
        match cfg.get("shape").unwrap_or("findings") {
            "alias" => alias(),
            "log" => {
                host.info(&"z".repeat(1 << 20));
                ReportBuilder::new().finish("logged 1 MiB in one line")
            }
            "repeated-metric" => {
                let mut r = ReportBuilder::new();
                for i in 0..128 {
                    r.metric("same_name", f64::from(i));
                }
                r.finish("one name, 128 values")
            }
            _ => {
                let mut r = ReportBuilder::new();
                let msg = "x".repeat(1024);
                for _ in 0..20_000 {
                    r.finding(Some(0), Status::Degraded, msg.clone(), Action::None);
                }
                r.finish("never")
            }
        }
    }
}

/// 64 findings sharing one 16 MiB buffer. The strings are never freed by this plugin (the
/// agent drops the whole instance after the run).
#[allow(unsafe_code)]
fn alias() -> Report {
    let mut big = std::mem::ManuallyDrop::new("y".repeat(16 << 20));
    let (ptr, len) = (big.as_mut_ptr(), big.len());
    let findings = (0..64)
        .map(|_| Finding {
            gpu: Some(0),
            status: Status::Degraded,
            // SAFETY: deliberately unsound aliasing; this plugin exists to be refused.
            message: unsafe { String::from_raw_parts(ptr, len, len) },
            action: Action::None,
        })
        .collect();
    Report {
        status: Status::Degraded,
        message: "one string, 64 times".into(),
        findings,
        metrics: Vec::new(),
    }
}
export_health_check!(Huge);
