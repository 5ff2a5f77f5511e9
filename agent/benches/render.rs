//! Render benchmark: the whole `/metrics` body for 8 fake GPUs with every series (native,
//! dcgm-compat, node, agent), as the first scrape after a collection renders it, and the
//! parts of a collection timed apart.
//!
//! `cargo bench -p gpuwarden-agent --bench render`

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use gpuwarden_agent::backend::fake::{FakeBackend, DEFAULT_MODEL};
use gpuwarden_agent::collector::{Collector, CollectorSettings};
use gpuwarden_agent::derive::Thresholds;
use gpuwarden_agent::events::EventLog;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let backend = Arc::new(Arc::new(FakeBackend::new(8, DEFAULT_MODEL, 42)));
    let settings = CollectorSettings {
        node_id: "bench-node".into(),
        node_labels: vec![
            ("cluster".into(), "bench".into()),
            ("rack".into(), "r01".into()),
        ],
        interval: Duration::from_secs(5),
        thresholds: Thresholds {
            temperature_warning: 85.0,
            temperature_critical: 92.0,
        },
        xid_dedup_window: Duration::from_secs(10),
        system: true,
        dcgm_compat: true,
    };
    let events = Arc::new(Mutex::new(EventLog::new(1000, "bench".into())));
    let shared = Arc::new(RwLock::new(Arc::default()));
    let mut c =
        Collector::new(settings, backend.clone(), events, Arc::clone(&shared)).expect("collector");
    c.collect();
    let body = c.render_body();
    let samples = body.lines().filter(|l| !l.starts_with('#')).count();

    let runs = 2000;
    let mut render = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let b = c.render_body();
        render.push(t.elapsed());
        std::hint::black_box(b);
    }
    render.sort();
    let mut publish = Vec::with_capacity(runs / 4);
    for _ in 0..runs / 4 {
        let t = Instant::now();
        c.publish();
        publish.push(t.elapsed());
    }
    publish.sort();
    let mut collect = Vec::with_capacity(runs / 4);
    for _ in 0..runs / 4 {
        let t = Instant::now();
        c.collect();
        collect.push(t.elapsed());
    }
    collect.sort();
    // What the first scrape after a collection pays: render, then gzip (Prometheus asks
    // for gzip); later scrapes send the same bytes.
    let mut first_scrape = Vec::with_capacity(runs / 4);
    for _ in 0..runs / 4 {
        c.publish();
        let snap = Arc::clone(&shared.read().unwrap());
        let t = Instant::now();
        std::hint::black_box(snap.body_gzip());
        first_scrape.push(t.elapsed());
    }
    first_scrape.sort();
    let gz = shared.read().map(|s| s.body_gzip().len()).unwrap_or(0);
    println!("render benchmark: 8 fake GPUs, native + dcgm_compat + node metrics");
    println!(
        "body: {samples} samples, {} bytes ({gz} bytes gzip)",
        body.len()
    );
    let row = |name: &str, v: &[Duration]| {
        let p50 = percentile(v, 0.5);
        println!(
            "{name:<44} p50 {:>8.1} µs   p99 {:>8.1} µs   per sample {:>6.0} ns",
            p50.as_secs_f64() * 1e6,
            percentile(v, 0.99).as_secs_f64() * 1e6,
            p50.as_secs_f64() * 1e9 / samples as f64
        );
    };
    row("render (text; node metrics read)", &render);
    row("publish (freeze the render input + swap)", &publish);
    row("collect (sample 8 GPUs + publish)", &collect);
    row(
        "first scrape after a collection (render+gzip)",
        &first_scrape,
    );
    parts(&backend, runs / 4, body.as_bytes());
}

/// The parts of a collection apart, each timed alone (p50 of `runs`).
fn parts(backend: &Arc<FakeBackend>, runs: usize, body: &[u8]) {
    use gpuwarden_agent::backend::GpuBackend;
    let time = |f: &mut dyn FnMut()| {
        let mut v: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect();
        v.sort();
        percentile(&v, 0.5).as_secs_f64() * 1e6
    };
    println!("parts of a collection (p50):");
    let b: &dyn GpuBackend = backend;
    let us = time(&mut || {
        for i in 0..8 {
            std::hint::black_box(b.sample(i).unwrap());
        }
    });
    println!("  sample 8 fake GPUs                 {us:>8.1} µs");
    let mut sys = gpuwarden_agent::system::SystemCollector::new();
    let us = time(&mut || {
        std::hint::black_box(sys.collect());
    });
    println!("  node metrics                       {us:>8.1} µs");
    let time_part = |name: &str, f: &mut dyn FnMut()| {
        let us = time(f);
        println!("    {name:<32} {us:>8.1} µs");
    };
    let mut s = sysinfo::System::new().unwrap();
    time_part("cpu + memory", &mut || {
        s.refresh_cpu_usage();
        s.refresh_memory();
    });
    time_part("load, uptime", &mut || {
        let _ = std::hint::black_box((sysinfo::System::load_average(), sysinfo::System::uptime()));
    });
    let mut d = sysinfo::Disks::new_with_refreshed_list().unwrap();
    let disks = d.iter().count();
    time_part(&format!("{disks} disks, everything (before)"), &mut || {
        d.refresh(true)
    });
    time_part(&format!("{disks} disks, sizes only"), &mut || {
        d.refresh_specifics(true, sysinfo::DiskRefreshKind::nothing().with_storage())
    });
    let mut n = sysinfo::Networks::new_with_refreshed_list().unwrap();
    time_part(
        &format!("{} network interfaces, sysinfo (before)", n.iter().count()),
        &mut || n.refresh(true),
    );
    time_part("network interfaces, /proc/net/dev", &mut || {
        std::hint::black_box(procfs::net::dev_status().unwrap());
    });
    let pid = sysinfo::get_current_pid().unwrap();
    time_part("agent process, sysinfo (before)", &mut || {
        s.refresh_processes(sysinfo::ProcessesToUpdate::Some(&[pid]), true);
    });
    time_part("agent process, /proc/self/stat", &mut || {
        let p = procfs::process::Process::myself().unwrap();
        std::hint::black_box(p.stat().unwrap());
    });
    for (name, level) in [
        ("gzip the body (level 1, as served)", 1),
        ("gzip the body (level 6)", 6),
    ] {
        time_part(name, &mut || {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 8),
                flate2::Compression::new(level),
            );
            e.write_all(body).unwrap();
            std::hint::black_box(e.finish().unwrap());
        });
    }
}
