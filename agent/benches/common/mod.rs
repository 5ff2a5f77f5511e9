//! Helpers shared by the benchmarks.
#![allow(dead_code)] // each benchmark uses a subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`); 0 when unreadable.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `f` `n` times and returns each run's wall time.
pub fn times(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect()
}

/// The `p` quantile of `v`, in microseconds (sorts `v`).
pub fn pct_us(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6
}

/// Builds the example and test plugins (release, `wasm32-wasip2`) and returns their folder.
pub fn build_plugins() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(dir.join("target"))
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("cargo");
    assert!(
        st.success(),
        "building the plugins failed (rustup target add wasm32-wasip2?)"
    );
    dir.join("target/wasm32-wasip2/release")
}
