//! `… --bench plugins -- --components LABEL=FILE…`: plugins written in other languages
//! (Python through componentize-py, JavaScript through componentize-js) against the Rust one,
//! in the same run: component size; first load (compile, no cache); load from the compile
//! cache; the least memory limit a run passes with; one run's latency (p50/p99 over 200
//! runs, 8 fake GPUs, the agent's mode: pooling + InstancePre).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gpuwarden_agent::plugin::engine::PluginEngine;
use gpuwarden_agent::plugin::host::RunLimits;
use gpuwarden_agent::plugin::manager::digest_file;
use gpuwarden_agent::plugin::runner::{self, Limits};

use super::common::{pct_us, times};
use super::{fleet, view};

fn limits(mib: usize, timeout: Duration) -> Limits {
    Limits {
        timeout,
        run: RunLimits {
            memory_bytes: mib << 20,
            log_max_lines: 100,
            output_max_bytes: 65536,
        },
        report_max_bytes: 65536,
    }
}

/// Prints the table for `components` (label, file).
pub fn compare(components: &[(String, PathBuf)]) {
    let (snapshot, events) = fleet();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:<10} {:>10} {:>14} {:>14} {:>10} {:>10} {:>10}",
        "plugin", "size MB", "compile ms", "cached ms", "memory", "p50 µs", "p99 µs"
    );
    for (label, file) in components {
        let bytes = std::fs::read(file).unwrap();
        let sha = digest_file(file).unwrap();
        let cache =
            std::env::temp_dir().join(format!("gw-bench-langs-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        // First load: compile (and write the cache entry).
        let engine = PluginEngine::new(true, Some(cache.clone())).unwrap();
        let t = Instant::now();
        let (component, from_cache) = engine.compile(&bytes, &sha).unwrap();
        let compile_ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(!from_cache);
        let compiled = engine.prepare(&component, None, false).unwrap();
        // Load with the compile cache: a fresh engine, as after a restart.
        let again = PluginEngine::new(true, Some(cache.clone())).unwrap();
        let t = Instant::now();
        let (c2, from_cache) = again.compile(&bytes, &sha).unwrap();
        let _ = again.prepare(&c2, None, true).unwrap();
        let cached_ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(
            from_cache,
            "{label}: the second load did not come from the cache"
        );
        let _ = std::fs::remove_dir_all(&cache);
        // The least memory limit (MiB, doubling from 1) a run passes with.
        let mut mib = 1usize;
        let need = loop {
            let o = rt.block_on(runner::run(
                &engine,
                &compiled.prepared,
                view(&snapshot, &events),
                limits(mib, Duration::from_secs(10)),
                Vec::new(),
            ));
            if o.failure.is_none() {
                break mib;
            }
            assert!(
                mib < 256,
                "{label}: fails even with 256 MiB: {:?}",
                o.failure
            );
            mib *= 2;
        };
        let lim = limits(need, Duration::from_secs(10));
        for _ in 0..20 {
            rt.block_on(runner::run(
                &engine,
                &compiled.prepared,
                view(&snapshot, &events),
                lim,
                Vec::new(),
            ));
        }
        let mut t = times(200, || {
            let o = rt.block_on(runner::run(
                &engine,
                &compiled.prepared,
                view(&snapshot, &events),
                lim,
                Vec::new(),
            ));
            assert!(o.failure.is_none(), "{:?}", o.failure);
        });
        println!(
            "{label:<10} {:>10.2} {compile_ms:>14.0} {cached_ms:>14.1} {:>7} MiB {:>10.0} {:>10.0}",
            bytes.len() as f64 / 1e6,
            need,
            pct_us(&mut t, 0.5),
            pct_us(&mut t, 0.99)
        );
    }
}
