//! Fault → cordon latency: from the moment an agent's XID 79 counter moves to the moment the
//! control plane has stored the cordon command for its node, with 1,000 agents scraped every
//! second.
//!
//! In-process: the real scheduler, workers, parser, observation, health policy, store
//! (a SQLite file), health state machine and remediation loop; only the transport is a
//! fake [`Fetch`] that serves each agent's body and events from memory (HTTP scrape cost is
//! measured by `benches/ingest.sh`). Faults hit a different node every `GAP_MS`; the
//! latency of each is the stored command's `created_at` minus the injection time.
//!
//! With `NOTIFY=1` the injected fault also sends the agent's urgent-event notice: the bench
//! calls [`Urgent::notice`], the function `POST /v1/nodes/{id}/notify` calls once it has
//! authenticated the node, so the notice path (coalescing set, notice workers, the bounded
//! events read, judging, remediation) is measured, but not HTTP's loopback cost nor the
//! agent's sender (both well under a millisecond on one host; a node token lookup adds one
//! indexed query).
//!
//! `cargo bench -p gpuwarden-controlplane --bench remediation`
//! env: AGENTS=1000 INTERVAL_MS=1000 FAULTS=100 GAP_MS=200 WARM_S=5 NOTIFY=0

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpuwarden_controlplane::act::remediate::Remediator;
use gpuwarden_controlplane::act::wake::Links;
use gpuwarden_controlplane::clock::{Clock, SystemClock};
use gpuwarden_controlplane::config::{Plan, RemediationConfig};
use gpuwarden_controlplane::judge::policy::Policy;
use gpuwarden_controlplane::metrics::Metrics;
use gpuwarden_controlplane::scrape::fleet::{Fleet, FleetSettings};
use gpuwarden_controlplane::scrape::{Fetch, ScrapeError, Scraper, Urgent};
use gpuwarden_controlplane::store::{Registration, Store, StoreOptions};
use gpuwarden_wire::event::{Action, EventKind, EventsPage, HealthEvent, Severity};

fn env(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// An 8-GPU body shaped like the agent's: 40 gauges per GPU plus the XID counter.
fn body(xid79: u32) -> Vec<u8> {
    let mut s = String::from(
        "# TYPE gpuwarden_node_info gauge\ngpuwarden_node_info{node=\"n\",driver_version=\"550.54.15\",cuda_version=\"12.4\",agent_version=\"0.1.0\",backend=\"fake\"} 1\n",
    );
    let _ = writeln!(s, "# TYPE gpuwarden_gpu_up gauge");
    for g in 0..8 {
        let _ = writeln!(
            s,
            "gpuwarden_gpu_up{{gpu=\"{g}\",uuid=\"GPU-{g}\",model=\"H100\"}} 1"
        );
    }
    let _ = writeln!(s, "# TYPE gpuwarden_gpu_temperature_celsius gauge");
    for g in 0..8 {
        let _ = writeln!(
            s,
            "gpuwarden_gpu_temperature_celsius{{gpu=\"{g}\",uuid=\"GPU-{g}\",model=\"H100\"}} {}",
            40 + g
        );
    }
    for m in 0..38 {
        let _ = writeln!(s, "# TYPE gpuwarden_gpu_bench_metric_{m} gauge");
        for g in 0..8 {
            let _ = writeln!(s, "gpuwarden_gpu_bench_metric_{m}{{gpu=\"{g}\",uuid=\"GPU-{g}\",model=\"H100\"}} {}.5", m * g);
        }
    }
    let _ = writeln!(s, "# TYPE gpuwarden_gpu_xid_errors_total counter");
    let _ = writeln!(
        s,
        "gpuwarden_gpu_xid_errors_total{{gpu=\"0\",uuid=\"GPU-0\",model=\"H100\",xid=\"79\"}} {xid79}"
    );
    s.into_bytes()
}

/// Agents in memory: a healthy body for all, a faulty one (and its event) for the injected.
struct Agents {
    healthy: Vec<u8>,
    faulty: Vec<u8>,
    injected: Mutex<HashMap<String, i64>>,
}

impl Fetch for Agents {
    fn metrics(&self, address: &str, body: &mut Vec<u8>) -> Result<(), ScrapeError> {
        body.clear();
        let hit = self
            .injected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(address);
        body.extend_from_slice(if hit { &self.faulty } else { &self.healthy });
        Ok(())
    }

    fn events(&self, address: &str, after: i64, _limit: usize) -> Result<EventsPage, ScrapeError> {
        let hit = self
            .injected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(address)
            .copied();
        let events = match hit {
            Some(at) if after < 1 => vec![HealthEvent {
                seq: 1,
                time: gpuwarden_controlplane::clock::rfc3339(at),
                gpu: Some(0),
                uuid: Some("GPU-0".into()),
                kind: EventKind::Xid,
                code: Some(79),
                message: "GPU has fallen off the bus".into(),
                severity: Severity::Fatal,
                action: Some(Action::RebootNode),
                source: "nvml".into(),
            }],
            _ => Vec::new(),
        };
        Ok(EventsPage {
            next: if events.is_empty() {
                after.max(0) as u64
            } else {
                1
            },
            events,
            instance: "bench".into(),
            truncated: false,
            more: false,
        })
    }
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let agents = env("AGENTS", 1000) as usize;
    let interval = Duration::from_millis(env("INTERVAL_MS", 1000));
    let faults = env("FAULTS", 100) as usize;
    let gap = Duration::from_millis(env("GAP_MS", 200));
    let warm = Duration::from_secs(env("WARM_S", 5));
    let notify = env("NOTIFY", 0) == 1;

    let dir = std::env::temp_dir().join(format!("gw-bench-remediation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}", dir.join("gw.db").display());
    let store = Arc::new(Store::open(&url, &StoreOptions::default()).expect("store"));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let fleet = Arc::new(Fleet::new(FleetSettings {
        interval,
        offline_after: 3,
        replica: "bench".into(),
        health: Default::default(),
    }));
    let now = clock.now_ms();
    let mut nodes = Vec::with_capacity(agents);
    for i in 0..agents {
        let name = format!("gpu-{i:05}");
        let row = store
            .register(&Registration {
                new_id: format!("node-{i:05}"),
                name: name.clone(),
                pool: None,
                labels: Default::default(),
                address: format!("http://{name}:9410"),
                capabilities: "{\"gpus\":[{},{},{},{},{},{},{},{}]}".replace(
                    "{}",
                    "{\"index\":0,\"uuid\":\"u\",\"model\":\"H100\",\"memory_bytes\":1}",
                ),
                token_digest: format!("d{i}"),
                token_expires: None,
                actor: "bench".into(),
                bootstrap: false,
                now,
            })
            .expect("register")
            .node;
        fleet.sync(&row, now);
        nodes.push((row.id, format!("http://{name}:9410")));
    }
    let fetch = Arc::new(Agents {
        healthy: body(0),
        faulty: body(1),
        injected: Mutex::default(),
    });
    let metrics = Metrics::new();
    let urgent = Arc::new(Urgent::default());
    let links = Links::default();
    let remediator = Remediator::new(
        store.clone(),
        clock.clone(),
        RemediationConfig {
            action: Plan::Cordon,
            ..RemediationConfig::default()
        },
        metrics.clone(),
        links.notifier.clone(),
        links.dispatch.clone(),
        links.remediate.clone(),
    )
    .spawn()
    .expect("remediation");
    let scraper = Scraper {
        fleet: fleet.clone(),
        store: store.clone(),
        fetch: fetch.clone(),
        clock: clock.clone(),
        metrics: metrics.clone(),
        sample_limit: 50_000,
        body_retain_bytes: 1 << 20,
        policy: Arc::new(std::sync::RwLock::new(Arc::new(Policy::default_policy()))),
        links,
        event_reads: Default::default(),
        urgent: urgent.clone(),
    }
    .spawn(
        64,
        (Duration::from_secs(5), Duration::from_secs(300)),
        (Duration::from_secs(86_400), Duration::from_secs(86_400)),
    )
    .expect("scraper");

    println!(
        "{agents} agents at {} ms; warming up {} s",
        interval.as_millis(),
        warm.as_secs()
    );
    std::thread::sleep(warm);
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let scrapes0 = metrics.scrapes.with_label_values(&["success"]).get();
    let mut injected = Vec::new();
    for (id, address) in nodes
        .iter()
        .step_by((agents / faults.max(1)).max(1))
        .take(faults)
    {
        let at = clock.now_ms();
        fetch
            .injected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(address.clone(), at);
        injected.push((id.clone(), at));
        if notify {
            let n = gpuwarden_wire::notice::UrgentNotice {
                instance: "bench".into(),
                seq: 1,
            };
            urgent.notice(&fleet, &metrics, id, &n);
        }
        std::thread::sleep(gap);
    }
    std::thread::sleep(interval * 3);
    let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    let scrapes = metrics.scrapes.with_label_values(&["success"]).get() - scrapes0;
    remediator.stop();
    scraper.stop();

    let mut lat = Vec::new();
    let mut missing = 0;
    for (id, at) in &injected {
        match store
            .commands(id, 5)
            .expect("commands")
            .iter()
            .find(|c| c.kind == "cordon")
        {
            Some(c) => lat.push((c.created_at - at) as f64),
            None => {
                missing += 1;
                let n = store.node(id).expect("node");
                let ev = store.events(id, 0, 10).map(|e| e.len()).unwrap_or(0);
                println!(
                    "MISSING {id}: health {} status {} events {ev} transitions {:?}",
                    n.health,
                    n.status,
                    store
                        .transitions(id, 5)
                        .unwrap_or_default()
                        .iter()
                        .map(|t| format!("{}:{}->{}", t.field, t.from_state, t.to_state))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "RESULT fault->cordon agents={agents} interval_ms={} notify={} faults={} missing={missing} p50_ms={:.0} p90_ms={:.0} p99_ms={:.0} max_ms={:.0} goal_ms={}",
        interval.as_millis(),
        u8::from(notify),
        lat.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        if notify {
            1000
        } else {
            interval.as_millis() + 100
        }
    );
    println!(
        "RESULT load scrapes_per_s={:.0} cpu_cores={:.2} (whole process, while faults were injected)",
        scrapes as f64 / wall,
        cpu / wall
    );
    let _ = std::fs::remove_dir_all(&dir);
}
