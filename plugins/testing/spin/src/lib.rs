//! Loops forever: the agent's deadline must stop it.
use gpuwarden_plugin_sdk::prelude::*;
struct Spin;
impl HealthCheck for Spin {
    fn check(_: &Host) -> Report {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}
export_health_check!(Spin);
