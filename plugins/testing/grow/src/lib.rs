//! Allocates 1 MiB blocks until memory runs out: the agent's memory cap must stop it.
use gpuwarden_plugin_sdk::prelude::*;
struct Grow;
impl HealthCheck for Grow {
    fn check(_: &Host) -> Report {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        loop {
            blocks.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}
export_health_check!(Grow);
