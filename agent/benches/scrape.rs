//! Scrape benchmark: whole HTTP scrapes of the agent (8 fake GPUs) over loopback, and of
//! node_exporter (`prometheus-node-exporter`, Debian) measured the same way in the same run.
//!
//! For each target: p50/p99 wall time per scrape, and the target's CPU time per scrape and per
//! sample, read from `/proc/<pid>/task/*/schedstat` (nanoseconds of CPU, every thread).
//!
//! `cargo bench -p gpuwarden-agent --bench scrape [-- --scrapes N] [-- --rss-seconds S]`
//!
//! With `--rss-seconds S` it instead scrapes the agent once a second for S seconds and prints
//! its resident memory (VmRSS, VmHWM) at the start and the end.

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::status_kib;

const AGENT: &str = env!("CARGO_BIN_EXE_gpuwarden-agent");

struct Target {
    name: String,
    child: Child,
    url: String,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn wait_up(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while client().get(url).call().is_err() {
        assert!(Instant::now() < deadline, "{url} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_agent(name: &str, env: &[(&str, &str)]) -> Target {
    let port = free_port();
    let mut cmd = Command::new(AGENT);
    cmd.args(["--fake-gpus", "8", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start agent");
    let url = format!("http://127.0.0.1:{port}/metrics");
    wait_up(&url);
    Target {
        name: name.into(),
        child,
        url,
    }
}

fn start_node_exporter() -> Option<Target> {
    let bin = ["prometheus-node-exporter", "node_exporter"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })?;
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let url = format!("http://127.0.0.1:{port}/metrics");
    wait_up(&url);
    Some(Target {
        name: "node_exporter".into(),
        child,
        url,
    })
}

/// CPU time of every thread of `pid`, in nanoseconds.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

fn scrape(http: &ureq::Agent, url: &str, gzip: bool) -> Vec<u8> {
    let mut req = http.get(url);
    if gzip {
        req = req.header("accept-encoding", "gzip");
    }
    let mut resp = req.call().expect("scrape");
    let mut body = Vec::new();
    resp.body_mut()
        .as_reader()
        .read_to_end(&mut body)
        .expect("body");
    body
}

struct Row {
    name: String,
    enc: &'static str,
    samples: usize,
    bytes: usize,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_scrape: f64,
}

fn measure(t: &Target, gzip: bool, n: usize) -> Row {
    let http = client();
    let body = scrape(&http, &t.url, false);
    let samples = String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    for _ in 0..20 {
        scrape(&http, &t.url, gzip);
    }
    let pid = t.child.id();
    let cpu0 = cpu_ns(pid);
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let s = Instant::now();
        bytes = scrape(&http, &t.url, gzip).len();
        times.push(s.elapsed());
    }
    let cpu = cpu_ns(pid) - cpu0;
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    Row {
        name: t.name.clone(),
        enc: if gzip { "gzip" } else { "identity" },
        samples,
        bytes,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        cpu_us_per_scrape: cpu as f64 / 1e3 / n as f64,
    }
}

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn rss_run(seconds: u64) {
    let t = start_agent("gpuwarden-agent", &[]);
    let http = client();
    let pid = t.child.id();
    scrape(&http, &t.url, true);
    let (rss0, hwm0) = (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"));
    println!("agent RSS after first scrape: {rss0} KiB (peak {hwm0} KiB)");
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        scrape(&http, &t.url, n % 2 == 0);
        n += 1;
        if n % 60 == 0 {
            println!(
                "  {:>4} s: RSS {} KiB",
                start.elapsed().as_secs(),
                status_kib(pid, "VmRSS:")
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    println!(
        "agent RSS after {n} scrapes at 1 s over {} s: {} KiB (peak {} KiB)",
        start.elapsed().as_secs(),
        status_kib(pid, "VmRSS:"),
        status_kib(pid, "VmHWM:")
    );
}

fn main() {
    if let Some(s) = arg("--rss-seconds") {
        rss_run(s);
        return;
    }
    let n = arg("--scrapes").unwrap_or(5000) as usize;
    let mut targets = vec![
        start_agent("gpuwarden-agent", &[]),
        start_agent(
            "gpuwarden-agent +dcgm",
            &[("GPUWARDEN_METRICS__DCGM_COMPAT", "true")],
        ),
    ];
    match start_node_exporter() {
        Some(t) => targets.push(t),
        None => eprintln!("node_exporter not found (apt-get install prometheus-node-exporter): measuring the agent alone"),
    }
    let mut rows = Vec::new();
    for t in &targets {
        // node_exporter spends ~10 ms a scrape: fewer scrapes keep the run short.
        let runs = if t.name == "node_exporter" {
            (n / 10).max(100)
        } else {
            n
        };
        for gzip in [false, true] {
            rows.push(measure(t, gzip, runs));
        }
    }
    println!("scrape benchmark over loopback, sequential keep-alive scrapes");
    println!(
        "{:<22} {:<9} {:>7} {:>8} {:>9} {:>9} {:>12} {:>12}",
        "target", "encoding", "samples", "bytes", "p50 ms", "p99 ms", "CPU µs/scr", "CPU µs/smpl"
    );
    for r in &rows {
        println!(
            "{:<22} {:<9} {:>7} {:>8} {:>9.3} {:>9.3} {:>12.1} {:>12.4}",
            r.name,
            r.enc,
            r.samples,
            r.bytes,
            r.p50_ms,
            r.p99_ms,
            r.cpu_us_per_scrape,
            r.cpu_us_per_scrape / r.samples as f64
        );
    }
    let per_sample = |name: &str, enc: &str| {
        rows.iter()
            .find(|r| r.name == name && r.enc == enc)
            .map(|r| r.cpu_us_per_scrape / r.samples as f64)
    };
    for enc in ["identity", "gzip"] {
        if let (Some(a), Some(ne)) = (
            per_sample("gpuwarden-agent", enc),
            per_sample("node_exporter", enc),
        ) {
            println!(
                "CPU per sample, {enc}: node_exporter / gpuwarden-agent = {:.0}x",
                ne / a
            );
        }
    }
}
