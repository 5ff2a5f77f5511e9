//! Recurses without end: the stack overflows.
use gpuwarden_plugin_sdk::prelude::*;
struct Recurse;
#[inline(never)]
#[allow(unconditional_recursion)]
fn deeper(n: u64, pad: [u64; 16]) -> u64 {
    let pad = std::hint::black_box(pad);
    deeper(n + 1, pad) + pad[(n % 16) as usize]
}
impl HealthCheck for Recurse {
    fn check(_: &Host) -> Report {
        let n = deeper(0, [1; 16]);
        ReportBuilder::new().finish(&format!("{n}"))
    }
}
export_health_check!(Recurse);
