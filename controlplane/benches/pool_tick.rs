//! The pool manager's tick at 10,000 nodes in 100 pools on SQLite: CPU and wall time per
//! tick, beside the store reads alone (the pools, every node, the live instances: what any
//! tick must read) with their ratio. The fleet is steady (every pool at its target, all
//! nodes active, online, healthy, their instances running), so the figure is what an idle
//! fleet pays every `[pool_manager] interval`; each node has an 8-GPU observation, so the
//! pool's utilization and workload are summed as in production.
//!
//! `cargo bench -p gpuwarden-controlplane --bench pool_tick`
//! env: POOLS=100 NODES=100 TICKS=30

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use gpuwarden_controlplane::act::managed::{Held, ManagedPools};
use gpuwarden_controlplane::clock::{FakeClock, SharedClock};
use gpuwarden_controlplane::model::observation::{GpuObservation, NodeObservation};
use gpuwarden_controlplane::model::pool::PoolSpec;
use gpuwarden_controlplane::pool::manager::{AlwaysLeader, Ctx, ManagerSettings, PoolManager};
use gpuwarden_controlplane::pool::provider::ProviderEnv;
use gpuwarden_controlplane::store::pool_rows::PoolRow;
use gpuwarden_controlplane::store::rows::NewAudit;
use gpuwarden_controlplane::store::{InstanceFilter, Store, StoreOptions};

const NOW: i64 = 1_800_000_000_000;

fn env(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Process CPU seconds (user + system) from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let (pools, per, ticks) = (env("POOLS", 100), env("NODES", 100), env("TICKS", 30));
    let dir = std::env::temp_dir().join(format!("gw-bench-pool-tick-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("gw.db");
    let store = Arc::new(
        Store::open(
            &format!("sqlite://{}", path.display()),
            &StoreOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}")),
    );
    for p in 0..pools {
        let spec: PoolSpec = serde_json::from_value(serde_json::json!({
            "name": format!("pool-{p}"), "provider": "fake", "min_nodes": per, "max_nodes": per + 10,
            "autoscaler": {"type": "reactive"}}))
        .unwrap_or_else(|e| panic!("{e}"));
        let row = PoolRow::new(&spec, "api", None, NOW).unwrap_or_else(|e| panic!("{e}"));
        store
            .create_pool(
                &row,
                NewAudit::ok(
                    "bench",
                    "pool.create",
                    &spec.name,
                    serde_json::json!({}),
                    NOW,
                ),
            )
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let n = pools * per;
    let mut c = diesel::SqliteConnection::establish(path.to_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    c.batch_execute(&format!(
        "WITH RECURSIVE seq(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM seq WHERE x < {last})
         INSERT INTO nodes (id, name, pool, labels, address, status, health, connectivity, capabilities,
             source, agent_instance, event_cursor, deregistered, created_at, updated_at, last_seen, instance_id)
         SELECT 'node-' || x, 'n-' || x, 'pool-' || (x / {per}), '{{}}', 'http://127.0.0.1:1', 'active', 'healthy',
             'online', '{{}}', 'created', NULL, 0, 0, {NOW}, {NOW}, {NOW}, 'i-' || x FROM seq;
         WITH RECURSIVE seq(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM seq WHERE x < {last})
         INSERT INTO instances (id, pool, provider, provider_id, state, node_id, token_digest, error, attempts,
             created_at, state_since, updated_at)
         SELECT 'i-' || x, 'pool-' || (x / {per}), 'fake', 'fake-' || x, 'running', 'node-' || x, NULL, NULL, 1,
             {NOW}, {NOW}, {NOW} FROM seq;",
        last = n - 1
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let mut obs: HashMap<String, Arc<NodeObservation>> = HashMap::new();
    for i in 0..n {
        let mut o = NodeObservation::default();
        for g in 0..8u32 {
            let mut gpu = GpuObservation {
                index: g,
                ..GpuObservation::default()
            };
            gpu.values.insert("utilization_ratio", 0.5);
            gpu.values.insert("compute_processes", 1.0);
            o.gpus.insert(g, gpu);
        }
        obs.insert(format!("node-{i}"), Arc::new(o));
    }
    let clock = FakeClock::at(NOW);
    let shared: SharedClock = Arc::new(clock.clone());
    let ctx = Ctx {
        store: store.clone(),
        clock: shared,
        env: ProviderEnv::new("http://127.0.0.1:1", dir.join("providers")),
        leader: Arc::new(AlwaysLeader),
        observations: Arc::new(Mutex::new(obs)),
        settings: ManagerSettings::default(),
        providers: Default::default(),
        in_flight: Arc::default(),
        select: Arc::default(),
        errors: Arc::default(),
        managed: ManagedPools::default(),
        held: Held::new(None),
        notifier: Default::default(),
        dispatch: Arc::default(),
        wake: Arc::default(),
    };
    let mgr = PoolManager::new(ctx);
    // Warm up: the first tick compiles the pools and fills the histories.
    let first = mgr.tick().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (first.pools, first.actions, first.failed),
        (pools, 0, 0),
        "the fleet is steady"
    );
    let (mut wall, cpu0) = (Vec::new(), cpu_seconds());
    for _ in 0..ticks {
        clock.advance(10_000);
        let t = Instant::now();
        let r = mgr.tick().unwrap_or_else(|e| panic!("{e}"));
        wall.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.actions, 0);
    }
    let cpu_tick = (cpu_seconds() - cpu0) / ticks as f64 * 1000.0;
    // Beside it: the reads every tick needs, alone.
    let (mut reads, cpu1) = (Vec::new(), cpu_seconds());
    for _ in 0..ticks {
        let t = Instant::now();
        let p = store.pools().map(|p| p.len()).unwrap_or(0);
        let nodes = store.all_nodes().map(|v| v.len()).unwrap_or(0);
        let filter = InstanceFilter {
            limit: i64::from(i32::MAX),
            ..InstanceFilter::default()
        };
        let inst = store
            .list_instances(&filter)
            .map(|v| v.0.len())
            .unwrap_or(0);
        std::hint::black_box((p, nodes, inst));
        reads.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let cpu_reads = (cpu_seconds() - cpu1) / ticks as f64 * 1000.0;
    let (p50, p99) = (pct(&mut wall, 0.5), pct(&mut wall, 0.99));
    let r50 = pct(&mut reads, 0.5);
    println!("pool manager tick: {pools} pools x {per} nodes = {n} nodes, SQLite, {ticks} ticks (steady fleet, 8-GPU observations)");
    println!("  tick:        CPU {cpu_tick:.1} ms/tick; wall p50 {p50:.1} ms, p99 {p99:.1} ms");
    println!("  reads alone: CPU {cpu_reads:.1} ms/tick; wall p50 {r50:.1} ms (pools + all nodes + live instances)");
    println!(
        "  ratio tick/reads: CPU {:.2}x, wall {:.2}x",
        cpu_tick / cpu_reads.max(0.001),
        p50 / r50.max(0.001)
    );
    println!(
        "  at the default 10 s interval: {:.2} % of one core",
        cpu_tick / Duration::from_secs(10).as_millis() as f64 * 100.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
