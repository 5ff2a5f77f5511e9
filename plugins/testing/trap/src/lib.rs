//! Panics: a trap the agent must turn into `unknown` with the reason.
use gpuwarden_plugin_sdk::prelude::*;
struct Trap;
impl HealthCheck for Trap {
    fn check(host: &Host) -> Report {
        let n = host.gpus().len();
        panic!("deliberate failure after seeing {n} GPUs");
    }
}
export_health_check!(Trap);
