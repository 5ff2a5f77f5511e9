//! The CPU a scrape costs the control plane, piece by piece, in-process: gunzip, parse, and
//! building the per-GPU observation, on a body captured from a real agent.
//!
//! `cargo bench -p gpuwarden-controlplane --bench observe [-- BODY_FILE]`; without a file
//! it uses `target/bench-ingest/bodies/body_0.prom` (written by `benches/ingest.sh`).
//!
//! It also prints what one observation keeps in memory: the growth of this process's RSS
//! (`/proc/self/status`, allocator overhead included) while it holds 10,000 of them, each
//! parsed from the body, as the scraper holds one per node.
//!
//! And, exactly, the heap bytes one observation and the counters kept from it for growth
//! hold (a counting allocator), with a GPU's part by field.
//!
//! Env: `OBSERVE_ITERS` (2000) runs per figure, `OBSERVE_HELD` (10000) observations held.

use std::io::{Read, Write};
use std::time::Instant;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use gpuwarden_controlplane::model::observation::{observe, GpuObservation, NodeObservation};

/// The system allocator, counting the bytes it has handed out and not had back: what a
/// structure holds, exactly, without the allocator's own overhead (which RSS shows).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to `System` unchanged; only a counter is kept beside. (A
// global allocator cannot be written without `unsafe`; this one is in a benchmark only.)
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Relaxed);
        LIVE.fetch_sub(l.size(), Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Heap bytes `f`'s result holds (interned names and shared schemas made before excluded).
fn held<T>(f: impl Fn() -> T) -> (usize, T) {
    drop(f());
    let before = LIVE.load(Relaxed);
    let t = f();
    (LIVE.load(Relaxed).saturating_sub(before), t)
}

fn per_iter(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() / f64::from(n)
}

/// This process's resident set in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/bench-ingest/bodies/body_0.prom"
            )
            .into()
        });
    let Ok(body) = std::fs::read(&path) else {
        eprintln!("no body at {path}: run controlplane/benches/ingest.sh first, or pass a file");
        return;
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&body).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let samples = gpuwarden_wire::exposition::parse(&body)
        .expect("valid body")
        .len();
    // `OBSERVE_ITERS` / `OBSERVE_HELD` shrink the run (e.g. under callgrind, where
    // instruction counts compare builds on a busy machine).
    let knob = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = knob("OBSERVE_ITERS", 2_000);
    let gunzip = per_iter(n, || {
        let mut out = Vec::with_capacity(body.len());
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .expect("gunzip");
        std::hint::black_box(out);
    });
    let parse = per_iter(n, || {
        std::hint::black_box(gpuwarden_wire::exposition::parse(&body).expect("parse"));
    });
    let obs = per_iter(n, || {
        std::hint::black_box(observe(&body, 100_000).expect("observe"));
    });
    println!(
        "body: {samples} samples, {} bytes ({} gzip)",
        body.len(),
        gz.len()
    );
    println!("gunzip            {:>8.1} µs", gunzip * 1e6);
    println!(
        "parse             {:>8.1} µs  ({:.0} ns/sample)",
        parse * 1e6,
        parse * 1e9 / samples as f64
    );
    println!(
        "parse + observe   {:>8.1} µs  ({:.0} ns/sample)",
        obs * 1e6,
        obs * 1e9 / samples as f64
    );
    let total = gunzip + obs;
    println!(
        "gunzip + observe  {:>8.1} µs  → {:.2} M samples per CPU-second before HTTP and storage",
        total * 1e6,
        samples as f64 / total / 1e6
    );
    let (obs_heap, o) = held(|| observe(&body, 100_000).expect("observe"));
    let (prev_heap, _) = held(|| o.counters_only());
    let gpus = o.gpus.len();
    println!(
        "heap per observation: {obs_heap} bytes ({} a GPU) + {} inline; counters kept for growth: {prev_heap} bytes",
        obs_heap / gpus.max(1),
        std::mem::size_of::<NodeObservation>()
    );
    let g = o.gpus.values().next();
    let part = |f: fn(&GpuObservation) -> usize| g.map_or(0, f);
    println!(
        "  a GPU: {} bytes inline; heap: uuid {}, values {}, xid {}, ecc {}, nvlink errors {}, clock events {}",
        std::mem::size_of::<GpuObservation>(),
        part(|g| g.uuid.len()),
        part(|g| g.values.len() * 8),
        part(|g| g.xid_errors.len() * 16),
        part(|g| g.ecc_errors.len() * 40),
        part(|g| g.nvlink_errors.len() * 8),
        part(|g| g.clock_events.len() * 16),
    );
    let held = knob("OBSERVE_HELD", 10_000);
    let before = rss_kib();
    let kept: Vec<_> = (0..held)
        .map(|_| observe(&body, 100_000).expect("observe"))
        .collect();
    let after = rss_kib();
    println!(
        "memory per observation: {:.1} KiB (RSS +{} KiB holding {held})",
        (after.saturating_sub(before)) as f64 / f64::from(held),
        after.saturating_sub(before)
    );
    std::hint::black_box(kept);
}
