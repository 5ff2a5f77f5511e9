//! Tests of the NVML backend: on a machine with a driver it finds GPUs, without one it says
//! how to run with fake GPUs.

use super::*;
use crate::backend::{BackendError, GpuBackend};

/// Needs a GPU and its driver; run with `cargo test -p gpuwarden-agent -- --ignored`.
#[test]
#[ignore = "needs an NVIDIA GPU and driver"]
fn nvml_reads_inventory_and_samples_on_a_real_gpu() {
    let b = NvmlBackend::open().expect("NVML");
    let inv = b.inventory().expect("inventory");
    assert!(!inv.gpus.is_empty());
    assert!(inv.gpus[0].uuid.starts_with("GPU-"), "{:?}", inv.gpus[0]);
    let s = b.sample(0).expect("sample");
    let t = s
        .temperature_celsius
        .expect("every data-center GPU reports temperature");
    assert!((10.0..110.0).contains(&t), "temperature {t}");
    assert!(s.memory_used_bytes.is_some());
    println!("{inv:#?}\n{s:#?}");
}

#[test]
fn opening_nvml_either_finds_gpus_or_says_to_use_fake_gpus() {
    // Without libnvidia-ml (CI) opening fails with a hint; with a driver it must find GPUs.
    match NvmlBackend::open() {
        Err(e) => {
            let msg = e.to_string();
            assert!(matches!(e, BackendError::Unavailable(_)), "{msg}");
            assert!(msg.contains("--fake-gpus"), "{msg}");
        }
        Ok(b) => assert!(!b.inventory().expect("inventory").gpus.is_empty()),
    }
}
