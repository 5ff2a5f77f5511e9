//! Parser benchmark: a realistic 8-GPU agent body (every series of the agent with
//! dcgm-compat, generated here), parsed by this crate and by `prometheus-parse` in the same run.
//!
//! `cargo bench -p gpuwarden-wire --bench parse [-- FILE]` — with FILE, that body instead
//! (e.g. a saved `curl localhost:9410/metrics`, or a body `controlplane/benches/ingest.sh`
//! captured into `target/bench-ingest/bodies/`).
#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

use std::time::{Duration, Instant};

fn body() -> String {
    if let Some(path) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        return std::fs::read_to_string(path).unwrap();
    }
    // The agent's shape: ~35 families × 8 GPUs with long identifying labels, NVLink series
    // with extra labels, a few node series.
    let mut s = String::new();
    for f in 0..35 {
        s.push_str(&format!(
            "# HELP gpuwarden_gpu_family_{f} Family {f}.\n# TYPE gpuwarden_gpu_family_{f} gauge\n"
        ));
        for g in 0..8 {
            s.push_str(&format!(
                "gpuwarden_gpu_family_{f}{{gpu=\"{g}\",uuid=\"GPU-5a3bb63d-4b7f-28db-76c0-6a42272ad0f{g}\",model=\"NVIDIA H100 80GB HBM3\",cluster=\"c1\",rack=\"r0{g}\"}} {}.{}\n",
                40 + f + g,
                f * 7 + g
            ));
        }
    }
    s.push_str("# HELP gpuwarden_gpu_nvlink_errors_total NVLink errors.\n# TYPE gpuwarden_gpu_nvlink_errors_total counter\n");
    for g in 0..8 {
        for l in 0..18 {
            for t in ["replay", "recovery", "crc_flit", "crc_data"] {
                s.push_str(&format!(
                    "gpuwarden_gpu_nvlink_errors_total{{gpu=\"{g}\",uuid=\"GPU-5a3bb63d-4b7f-28db-76c0-6a42272ad0f{g}\",model=\"NVIDIA H100 80GB HBM3\",cluster=\"c1\",rack=\"r0{g}\",link=\"{l}\",type=\"{t}\"}} 0\n"
                ));
            }
        }
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let body = body();
    let n_samples = gpuwarden_wire::exposition::parse(body.as_bytes())
        .unwrap()
        .len();
    let runs = 300;
    let mut ours = Vec::with_capacity(runs);
    let mut labels_touched = 0usize;
    for _ in 0..runs {
        let t = Instant::now();
        let samples = gpuwarden_wire::exposition::parse(body.as_bytes()).unwrap();
        // Read every label, as an ingester does.
        for s in &samples {
            labels_touched += s.labels.iter().count();
        }
        ours.push(t.elapsed());
        std::hint::black_box(samples);
    }
    let mut theirs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let s = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
        theirs.push(t.elapsed());
        std::hint::black_box(s);
    }
    let (a, b) = (median(ours), median(theirs));
    let rate = |d: Duration| n_samples as f64 / d.as_secs_f64();
    println!("parse benchmark: {} bytes, {n_samples} samples, median of {runs} (labels read: {labels_touched})", body.len());
    println!(
        "gpuwarden-wire exposition  {:>9.1} µs per body  {:>12.0} samples/s/core",
        a.as_secs_f64() * 1e6,
        rate(a)
    );
    println!(
        "prometheus-parse 0.2.5     {:>9.1} µs per body  {:>12.0} samples/s/core",
        b.as_secs_f64() * 1e6,
        rate(b)
    );
    println!("speed-up: {:.1}x", b.as_secs_f64() / a.as_secs_f64());
}
