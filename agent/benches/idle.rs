//! Whole-process CPU benchmark: everything the agent does (collections, renders, plugin runs,
//! timers, serving scrapes), not only a scrape, beside node_exporter scraped at the same rate
//! in the same run.
//!
//! `cargo bench -p gpuwarden-agent --bench idle`
//!
//! Starts, all at once, the release `gpuwarden-agent --fake-gpus 8` with no plugins (scraped,
//! and a second one never scraped), the same with the five example health checks at their
//! default interval, and Debian's `prometheus-node-exporter`. After a warm-up every scraped
//! target is scraped (gzip, as Prometheus asks) once per interval. Over that window it prints,
//! per target, the CPU of the whole process (every thread, from `/proc/PID/task/*/schedstat`,
//! and `utime + stime` of `/proc/PID/stat` as a cross-check that also counts threads that
//! ended), per second, per scrape and per sample served, the ratio to node_exporter per
//! sample, and per thread (by name) its CPU and wake-ups per second (voluntary + involuntary
//! context switches from `/proc/PID/task/*/status`).
//!
//! Environment: `IDLE_INTERVAL_S` (scrape interval, default 15), `IDLE_SCRAPES` (scrapes
//! measured, default 8), `IDLE_WARMUP_S` (default 12), `IDLE_BASELINE` (the path of another
//! `gpuwarden-agent` binary, an earlier build: measured too, scraped, with and without the
//! checks, as `base …` rows).

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const AGENT: &str = env!("CARGO_BIN_EXE_gpuwarden-agent");
/// The five example health checks (the diagnostic `gpu-sanity` runs only on demand).
const CHECKS: [(&str, &str); 5] = [
    ("xid", "xid"),
    ("thermal", "thermal"),
    ("ecc", "ecc"),
    ("pcie", "pcie"),
    ("nvlink", "nvlink"),
];

struct Target {
    name: String,
    child: Child,
    /// `None`: started, never scraped.
    url: Option<String>,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
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

fn get(http: &ureq::Agent, url: &str, gzip: bool) -> Option<Vec<u8>> {
    let mut req = http.get(url);
    if gzip {
        req = req.header("accept-encoding", "gzip");
    }
    let mut resp = req.call().ok()?;
    let mut body = Vec::new();
    resp.body_mut().as_reader().read_to_end(&mut body).ok()?;
    Some(body)
}

fn wait_up(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&client(), url, false).is_none() {
        assert!(Instant::now() < deadline, "{url} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn agent(bin: &str, name: &str, config: Option<&Path>, scraped: bool) -> Target {
    agent_env(bin, name, config, scraped, &[])
}

fn agent_env(
    bin: &str,
    name: &str,
    config: Option<&Path>,
    scraped: bool,
    env: &[(&str, &str)],
) -> Target {
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.envs(env.iter().copied());
    match config {
        Some(c) => cmd.arg("--config").arg(c),
        None => cmd.args(["--fake-gpus", "8"]),
    };
    let child = cmd
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start agent");
    let url = format!("http://127.0.0.1:{port}/metrics");
    wait_up(&url);
    Target {
        name: name.into(),
        child,
        url: scraped.then_some(url),
    }
}

fn node_exporter() -> Option<Target> {
    let bin = "prometheus-node-exporter";
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
        url: Some(url),
    })
}

/// One thread's counters.
#[derive(Debug, Clone, Default)]
struct Task {
    comm: String,
    cpu_ns: u64,
    switches: u64,
}

fn tasks(pid: u32) -> BTreeMap<u32, Task> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let tid = e.file_name().to_str()?.parse().ok()?;
            let p = e.path();
            let cpu_ns = std::fs::read_to_string(p.join("schedstat"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            let comm = std::fs::read_to_string(p.join("comm"))
                .ok()?
                .trim()
                .to_string();
            let status = std::fs::read_to_string(p.join("status")).ok()?;
            let switches = status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
            Some((
                tid,
                Task {
                    comm,
                    cpu_ns,
                    switches,
                },
            ))
        })
        .collect()
}

/// `utime + stime` of the whole process (threads that ended included), in clock ticks.
fn stat_ticks(pid: u32) -> u64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The fields after the command name (which may hold spaces) close with ')'.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, utime 14, stime 15 (1-based in proc(5)).
    let n = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    n(14) + n(15)
}

struct Before {
    tasks: BTreeMap<u32, Task>,
    ticks: u64,
}

/// Per thread name: (threads, CPU ns, context switches) over the window.
type ByThread = BTreeMap<String, (usize, u64, u64)>;

struct Window {
    cpu_ns: u64,
    ticks: u64,
    threads: ByThread,
}

fn window(pid: u32, before: &Before) -> Window {
    let after = tasks(pid);
    let mut threads = ByThread::new();
    let mut cpu_ns = 0;
    for (tid, t) in &after {
        let b = before.tasks.get(tid).cloned().unwrap_or_default();
        let e = threads.entry(t.comm.clone()).or_default();
        e.0 += 1;
        e.1 += t.cpu_ns.saturating_sub(b.cpu_ns);
        e.2 += t.switches.saturating_sub(b.switches);
        cpu_ns += t.cpu_ns.saturating_sub(b.cpu_ns);
    }
    Window {
        cpu_ns,
        ticks: stat_ticks(pid).saturating_sub(before.ticks),
        threads,
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn config_with_checks(dir: &Path, plugins: &Path) -> std::path::PathBuf {
    let mut cfg = String::from("[gpu]\nbackend = \"fake\"\nfake_count = 8\n");
    for (name, file) in CHECKS {
        let w = plugins.join(format!("{file}.wasm"));
        cfg.push_str(&format!(
            "[[plugins]]\nname = \"{name}\"\npath = \"{}\"\nsha256 = \"{}\"\n",
            w.display(),
            gpuwarden_agent::plugin::manager::digest_file(&w).unwrap()
        ));
    }
    let file = dir.join("agent.toml");
    std::fs::write(&file, cfg).unwrap();
    file
}

fn main() {
    let interval = Duration::from_secs(env_u64("IDLE_INTERVAL_S", 15));
    let scrapes = env_u64("IDLE_SCRAPES", 8) as u32;
    let warmup = Duration::from_secs(env_u64("IDLE_WARMUP_S", 12));
    let plugins = common::build_plugins();
    let dir = std::env::temp_dir().join(format!("gw-bench-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = config_with_checks(&dir, &plugins);

    let mut targets = vec![
        agent(AGENT, "agent, not scraped", None, false),
        agent(AGENT, "agent", None, true),
        agent(AGENT, "agent + 5 checks", Some(&cfg), true),
        // More runtime threads: what each costs an agent (nothing while idle).
        agent_env(
            AGENT,
            "agent, 2 workers",
            None,
            true,
            &[("GPUWARDEN_SERVER__WORKERS", "2")],
        ),
    ];
    if let Ok(base) = std::env::var("IDLE_BASELINE") {
        targets.push(agent(&base, "base agent", None, true));
        targets.push(agent(&base, "base agent + 5 checks", Some(&cfg), true));
    }
    match node_exporter() {
        Some(t) => targets.push(t),
        None => eprintln!(
            "prometheus-node-exporter not found (apt-get install prometheus-node-exporter): no peer"
        ),
    }
    let http = client();
    // Samples per scrape, from one plain scrape of each.
    let samples: Vec<usize> = targets
        .iter()
        .map(|t| {
            t.url.as_deref().map_or(0, |u| {
                String::from_utf8_lossy(&get(&http, u, false).unwrap_or_default())
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.is_empty())
                    .count()
            })
        })
        .collect();
    std::thread::sleep(warmup);
    let load0 = loadavg();
    let before: Vec<Before> = targets
        .iter()
        .map(|t| Before {
            tasks: tasks(t.child.id()),
            ticks: stat_ticks(t.child.id()),
        })
        .collect();
    let start = Instant::now();
    let mut latency: Vec<Vec<Duration>> = vec![Vec::new(); targets.len()];
    for k in 0..scrapes {
        for (i, t) in targets.iter().enumerate() {
            if let Some(u) = &t.url {
                let s = Instant::now();
                get(&http, u, true).expect("scrape");
                latency[i].push(s.elapsed());
            }
        }
        let next = start + interval * (k + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let seconds = start.elapsed().as_secs_f64();
    let windows: Vec<Window> = targets
        .iter()
        .zip(&before)
        .map(|(t, b)| window(t.child.id(), b))
        .collect();
    let load1 = loadavg();

    println!(
        "whole-process CPU over {seconds:.1} s: {scrapes} gzip scrapes every {} s after {} s of warm-up (8 fake GPUs; the checks at their default interval)",
        interval.as_secs(),
        warmup.as_secs()
    );
    println!(
        "machine: {} CPUs; load average at start {load0}, at end {load1}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<20} {:>7} {:>9} {:>9} {:>10} {:>11} {:>11} {:>9} {:>10}",
        "target",
        "samples",
        "CPU ms",
        "stat ms",
        "CPU µs/s",
        "µs/scrape",
        "ns/sample",
        "NE/this",
        "wakeups/s"
    );
    let per_sample = |i: usize| {
        (samples[i] > 0).then(|| windows[i].cpu_ns as f64 / f64::from(scrapes) / samples[i] as f64)
    };
    let ne = targets
        .iter()
        .position(|t| t.name == "node_exporter")
        .and_then(per_sample);
    for (i, t) in targets.iter().enumerate() {
        let w = &windows[i];
        let wakeups: u64 = w.threads.values().map(|v| v.2).sum();
        let ps = per_sample(i);
        println!(
            "{:<20} {:>7} {:>9.2} {:>9} {:>10.1} {:>11} {:>11} {:>9} {:>10.2}",
            t.name,
            samples[i],
            w.cpu_ns as f64 / 1e6,
            w.ticks * 10,
            w.cpu_ns as f64 / 1e3 / seconds,
            if t.url.is_some() {
                format!("{:.1}", w.cpu_ns as f64 / 1e3 / f64::from(scrapes))
            } else {
                "-".into()
            },
            ps.map_or("-".into(), |v| format!("{v:.1}")),
            match (ne, ps) {
                (Some(n), Some(p)) if t.name != "node_exporter" => format!("{:.1}x", n / p),
                _ => "-".into(),
            },
            wakeups as f64 / seconds,
        );
    }
    println!("(CPU ms: schedstat of the threads alive at the end; stat ms: utime+stime, 10 ms ticks, ended threads included; NE/this: node_exporter's CPU per sample ÷ this target's)");
    for (i, t) in targets.iter().enumerate() {
        let mut lat = latency[i].clone();
        let p50 = if lat.is_empty() {
            String::new()
        } else {
            format!(", scrape p50 {:.2} ms", common::pct_us(&mut lat, 0.5) / 1e3)
        };
        println!("{}{p50}: per thread", t.name);
        for (comm, (n, cpu, sw)) in &windows[i].threads {
            println!(
                "    {comm:<18} x{n:<3} CPU {:>9.1} µs/s   wake-ups {:>7.2}/s",
                *cpu as f64 / 1e3 / seconds,
                *sw as f64 / seconds
            );
        }
    }
    drop(targets);
    std::fs::remove_dir_all(&dir).unwrap();
}
