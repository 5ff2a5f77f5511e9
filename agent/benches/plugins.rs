//! Plugin benchmarks.
//!
//! `cargo bench -p gpuwarden-agent --bench plugins` prints:
//! - per-run latency (instantiate + check + report) of the `thermal` example plugin over
//!   10,000 runs, with and without the pooling allocator and `InstancePre`, and the same
//!   check written as a shell script run by fork/exec (as NHC and node-problem-detector do);
//! - cold start: agent start to first plugin result, with and without the compile cache.
//!
//! `… --bench plugins -- --components LABEL=FILE…` compares components built from other
//! languages with the Rust one (size, compile, cached load, memory, one run).
//!
//! `… --bench plugins -- --rss-seconds S` instead runs an agent with every example plugin at a
//! 1 s interval for S seconds and prints its resident memory.

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use gpuwarden_agent::backend::fake::{FakeBackend, DEFAULT_MODEL};
use gpuwarden_agent::collector::{Collector, CollectorSettings};
use gpuwarden_agent::events::EventLog;
use gpuwarden_agent::plugin::engine::PluginEngine;
use gpuwarden_agent::plugin::host::{HostView, RunLimits};
use gpuwarden_agent::plugin::manager::digest_file;
use gpuwarden_agent::plugin::runner::{self, Limits};

#[path = "plugins/agent.rs"]
mod agent;
mod common;
#[path = "plugins/langs.rs"]
mod langs;
use agent::{cold_start, rss};
use common::{build_plugins, pct_us, times};

fn view(
    snapshot: &Arc<RwLock<Arc<gpuwarden_agent::collector::Snapshot>>>,
    events: &Arc<Mutex<EventLog>>,
) -> HostView {
    HostView {
        plugin: "thermal".into(),
        snapshot: Arc::clone(&snapshot.read().unwrap()),
        previous: None,
        events: Arc::clone(events),
        previous_cursor: 0,
        config: Vec::new(),
    }
}

type Shared = Arc<RwLock<Arc<gpuwarden_agent::collector::Snapshot>>>;

/// 8 fake GPUs, collected once: the snapshot and event log a plugin run sees.
fn fleet() -> (Shared, Arc<Mutex<EventLog>>) {
    let fake = Arc::new(Arc::new(FakeBackend::new(8, DEFAULT_MODEL, 3)));
    let events = Arc::new(Mutex::new(EventLog::new(1000, "bench".into())));
    let snapshot = Arc::new(RwLock::new(Arc::default()));
    let settings = CollectorSettings::defaults("bench");
    let mut c = Collector::new(settings, fake, Arc::clone(&events), Arc::clone(&snapshot)).unwrap();
    c.collect();
    (snapshot, events)
}

fn latency(wasm: &Path, label: &str) -> f64 {
    let (snapshot, events) = fleet();
    let limits = Limits {
        timeout: Duration::from_secs(1),
        run: RunLimits {
            memory_bytes: 64 << 20,
            log_max_lines: 100,
            output_max_bytes: 65536,
        },
        report_max_bytes: 65536,
    };
    let bytes = std::fs::read(wasm).unwrap();
    let sha = digest_file(wasm).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("per-run latency of the `{label}` plugin (8 fake GPUs): instantiate + check + report checks");
    println!(
        "{:<44} {:>7} {:>10} {:>10}",
        "mode", "runs", "p50 µs", "p99 µs"
    );
    let mut p50_best = f64::MAX;
    for pooling in [true, false] {
        let engine = PluginEngine::new(pooling, None).unwrap();
        assert_eq!(
            engine.pooling(),
            pooling,
            "pooling allocator unavailable here"
        );
        let (component, _) = engine.compile(&bytes, &sha).unwrap();
        let compiled = engine.prepare(&component, None, false).unwrap();
        for _ in 0..200 {
            rt.block_on(runner::run(
                &engine,
                &compiled.prepared,
                view(&snapshot, &events),
                limits,
                Vec::new(),
            ));
        }
        let n = 10_000;
        let mut t = times(n, || {
            let o = rt.block_on(runner::run(
                &engine,
                &compiled.prepared,
                view(&snapshot, &events),
                limits,
                Vec::new(),
            ));
            assert!(o.failure.is_none(), "{:?}", o.failure);
        });
        let name = format!(
            "{} + InstancePre",
            if pooling { "pooling" } else { "on-demand" }
        );
        let p50 = pct_us(&mut t, 0.5);
        p50_best = p50_best.min(p50);
        println!(
            "{name:<44} {n:>7} {p50:>10.1} {:>10.1}",
            pct_us(&mut t, 0.99)
        );
        let n = 2_000;
        let mut t = times(n, || {
            // Without InstancePre: resolve imports and type-check on every run.
            let compiled = engine.prepare(&component, None, false).unwrap();
            rt.block_on(runner::run(
                &engine,
                &compiled.prepared,
                view(&snapshot, &events),
                limits,
                Vec::new(),
            ));
        });
        let name = format!(
            "{} (linking every run)",
            if pooling { "pooling" } else { "on-demand" }
        );
        println!(
            "{name:<44} {n:>7} {:>10.1} {:>10.1}",
            pct_us(&mut t, 0.5),
            pct_us(&mut t, 0.99)
        );
    }
    p50_best
}

fn shell(p50_plugin: f64) {
    let fake = Arc::new(FakeBackend::new(8, DEFAULT_MODEL, 3));
    let temps: String = (0..8u32)
        .map(|i| {
            format!(
                "{i} {}\n",
                gpuwarden_agent::backend::GpuBackend::sample(&fake, i)
                    .unwrap()
                    .temperature_celsius
                    .unwrap() as i64
            )
        })
        .collect();
    // The same check as a shell script, run by fork/exec.
    let dir = std::env::temp_dir().join(format!("gw-bench-sh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("temps");
    std::fs::write(&data, temps).unwrap();
    let script = dir.join("thermal.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n# The thermal check as NHC-style shell: every GPU against 85/92 °C.\nstatus=healthy\nwhile read -r gpu temp; do\n  if [ \"$temp\" -ge 92 ]; then status=unhealthy\n  elif [ \"$temp\" -ge 85 ] && [ \"$status\" = healthy ]; then status=degraded; fi\ndone < \"$1\"\necho \"$status\"\n",
    )
    .unwrap();
    let n = 2_000;
    let mut t = times(n, || {
        let out = Command::new("/bin/sh")
            .arg(&script)
            .arg(&data)
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"healthy\n");
    });
    let sh50 = pct_us(&mut t, 0.5);
    println!(
        "{:<44} {n:>7} {sh50:>10.1} {:>10.1}",
        "shell script (fork/exec /bin/sh)",
        pct_us(&mut t, 0.99)
    );
    println!(
        "p50: the `thermal` plugin is {:.0}x faster than the script",
        sh50 / p50_plugin
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--micro`: host-side costs of a run, apart from wasm (context creation, sample conversion).
fn micro() {
    let (snapshot, events) = fleet();
    let lim = RunLimits {
        memory_bytes: 64 << 20,
        log_max_lines: 100,
        output_max_bytes: 65536,
    };
    let n = 20000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(gpuwarden_agent::plugin::host::PluginCtx::new(
            view(&snapshot, &events),
            lim,
        ));
    }
    println!(
        "PluginCtx::new {:.2} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let snap = Arc::clone(&snapshot.read().unwrap());
    let t = Instant::now();
    for _ in 0..n {
        let v: Vec<_> = snap
            .gpus
            .iter()
            .map(|(i, s)| gpuwarden_agent::plugin::host::gpu_sample(i.index, s.as_ref(), true))
            .collect();
        std::hint::black_box(v);
    }
    println!(
        "samples conversion {:.2} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    if std::env::args().any(|a| a == "--micro") {
        micro();
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--components") {
        let list: Vec<(String, std::path::PathBuf)> = args[i + 1..]
            .iter()
            .take_while(|a| !a.starts_with("--"))
            .filter_map(|a| {
                let (l, f) = a.split_once('=')?;
                // Relative to the repository (cargo runs benches in the package's folder).
                let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
                Some((l.to_string(), root.join(f)))
            })
            .collect();
        langs::compare(&list);
        return;
    }
    let plugins = build_plugins();
    if let Some(s) = args
        .iter()
        .position(|a| a == "--rss-seconds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
    {
        rss(&plugins, s);
        return;
    }
    latency(&plugins.join("noop.wasm"), "noop");
    let thermal = latency(&plugins.join("thermal.wasm"), "thermal");
    shell(thermal);
    cold_start(&plugins);
}
