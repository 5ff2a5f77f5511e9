//! A diagnostic that sleeps `ms` milliseconds (parameter; default 1000), or for ever with
//! `ms = "forever"`: on-demand runs must end at their deadline and be bounded in number.
use gpuwarden_plugin_sdk::prelude::*;
use std::time::Duration;
struct SleepDiagnostic;
impl Diagnostic for SleepDiagnostic {
    fn run(_: &Host, params: &Config) -> Report {
        if params.get("ms") == Some("forever") {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        let ms = params.u64("ms").unwrap_or(1000);
        std::thread::sleep(Duration::from_millis(ms));
        ReportBuilder::new().finish(&format!("slept {ms} ms"))
    }
}
export_diagnostic!(SleepDiagnostic);
