//! The plugin benchmarks that run a real agent: cold start (agent start to first plugin
//! result, with and without the compile cache) and resident memory over time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gpuwarden_agent::plugin::manager::digest_file;

use crate::common;

const AGENT: &str = env!("CARGO_BIN_EXE_gpuwarden-agent");

struct Agent(std::process::Child);
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path) -> (Agent, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(AGENT)
        .args(["--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Agent(child), format!("http://127.0.0.1:{port}"))
}

fn get(url: &str) -> Option<String> {
    let mut r = ureq::get(url).call().ok()?;
    r.body_mut().read_to_string().ok()
}

/// Prints the median time from agent start to the first `thermal` result, with and without
/// the compile cache.
pub fn cold_start(plugins: &Path) {
    let dir = std::env::temp_dir().join(format!("gw-bench-cold-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let wasm = plugins.join("thermal.wasm");
    let cache = dir.join("cache");
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gpu]\nbackend = \"fake\"\nfake_count = 8\n[plugin]\ncache_dir = \"{}\"\n[[plugins]]\nname = \"thermal\"\npath = \"{}\"\nsha256 = \"{}\"\ninterval = \"100ms\"\n",
            cache.display(),
            wasm.display(),
            digest_file(&wasm).unwrap()
        ),
    )
    .unwrap();
    println!("cold start: agent start to first `thermal` result (interval 100 ms; median of 5)");
    for (label, clear) in [
        ("without the compile cache", true),
        ("with the compile cache", false),
    ] {
        let mut times = Vec::new();
        for _ in 0..5 {
            if clear {
                let _ = std::fs::remove_dir_all(&cache);
            }
            let t = Instant::now();
            let (_agent, base) = start(&cfg);
            loop {
                if let Some(body) = get(&format!("{base}/v1/plugins")) {
                    if body.contains("\"last_result\":{") {
                        break;
                    }
                }
                assert!(t.elapsed() < Duration::from_secs(60), "no result");
                std::thread::sleep(Duration::from_millis(2));
            }
            times.push(t.elapsed());
        }
        times.sort();
        println!("  {label:<28} {:>8.1} ms", times[2].as_secs_f64() * 1e3);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs an agent with every example plugin at a 1 s interval for `seconds` and prints its
/// resident memory (KiB) as it goes and at the end.
pub fn rss(plugins: &Path, seconds: u64) {
    let dir = std::env::temp_dir().join(format!("gw-bench-rss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // On-demand runs need the node token's digest: a token kept as if from a registration.
    let token_file = dir.join("node-token");
    // At least 16 characters, readable by its owner only: the agent refuses anything else.
    std::fs::write(&token_file, "gwn_bench_token_0123456789\n").unwrap();
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let digest: String = <sha2::Sha256 as sha2::Digest>::digest(b"gwn_bench_token_0123456789")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let bearer = format!("Bearer {digest}");
    let mut cfg = format!(
        "[gpu]\nbackend = \"fake\"\nfake_count = 8\n[plugin]\ninterval = \"1s\"\n[control_plane]\ntoken_file = \"{}\"\n",
        token_file.display()
    );
    for (name, file) in [
        ("xid", "xid"),
        ("thermal", "thermal"),
        ("ecc", "ecc"),
        ("pcie", "pcie"),
        ("nvlink", "nvlink"),
        ("gpu-sanity", "gpu_sanity"),
    ] {
        let w = plugins.join(format!("{file}.wasm"));
        cfg.push_str(&format!(
            "[[plugins]]\nname = \"{name}\"\npath = \"{}\"\nsha256 = \"{}\"\n",
            w.display(),
            digest_file(&w).unwrap()
        ));
    }
    let file = dir.join("agent.toml");
    std::fs::write(&file, cfg).unwrap();
    let (agent, base) = start(&file);
    let pid = agent.0.id();
    let status = |key: &str| common::status_kib(pid, key);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        let _ = get(&format!("{base}/metrics"));
        if n.is_multiple_of(10) {
            let _ = ureq::post(&format!("{base}/v1/plugins/gpu-sanity/run"))
                .header("Authorization", &bearer)
                .send("");
        }
        n += 1;
        if n.is_multiple_of(60) {
            // An agent that exited has no VmRSS: say so instead of printing 0.
            assert!(status("VmRSS:") > 0, "the agent exited (pid {pid})");
            println!(
                "  {:>4} s: RSS {} KiB",
                start.elapsed().as_secs(),
                status("VmRSS:")
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let runs = get(&format!("{base}/metrics")).unwrap_or_default();
    let total: f64 = runs
        .lines()
        .filter(|l| l.starts_with("gpuwarden_health_check_runs_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    println!(
        "agent RSS with 5 example checks at 1 s + gpu-sanity every 10 s, after {} s and {total} check runs: {} KiB (peak {} KiB)",
        start.elapsed().as_secs(),
        status("VmRSS:"),
        status("VmHWM:")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
