//! `decide` for 1,000 pools of 100 nodes: microseconds per pool (p50, p99) and per round,
//! beside the cost of cloning each pool's node and instance lists (what the pool manager's
//! loop pays at least to hand `decide` its state), with their ratio.
//!
//! The pools are varied so every rule runs: a reactive autoscaler with utilization and a
//! 30-sample history, a few unhealthy nodes (cordoned, drained, held by the budget), busy
//! and idle nodes, booting instances (one timed out), and targets above and below the
//! current size (scale-up and scale-down).
//!
//! `cargo bench -p gpuwarden-controlplane --bench decide`
//! env: POOLS=1000 NODES=100 ROUNDS=20

use std::hint::black_box;
use std::time::Instant;

use gpuwarden_controlplane::model::pool::{AutoscalerSpec, InstanceState, PoolSpec, ReactiveSpec};
use gpuwarden_controlplane::model::{Connectivity, Health, Status};
use gpuwarden_controlplane::pool::autoscale::Metrics;
use gpuwarden_controlplane::pool::decide::{
    decide, FleetBudget, InstanceView, NodeView, PoolState,
};
use gpuwarden_controlplane::pool::Pool;

fn env(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

const NOW: i64 = 1_800_000_000_000;

fn pool(i: usize, nodes: usize) -> Pool {
    let mut spec = PoolSpec::new(&format!("pool-{i}"), "fake", 2, (nodes + 10) as u32);
    spec.auto_replace = i.is_multiple_of(2);
    spec.budget.max_percent = 20.0;
    spec.budget.max_nodes = 3;
    spec.autoscaler = Some(AutoscalerSpec::Reactive(ReactiveSpec {
        scale_up_threshold: 0.8,
        scale_down_threshold: 0.3,
        step: 2,
    }));
    match Pool::build(spec) {
        Ok(p) => p,
        Err(e) => panic!("bench pool: {e:?}"),
    }
}

fn nodes(i: usize, n: usize) -> (Vec<NodeView>, Vec<InstanceView>) {
    let nodes = (0..n)
        .map(|j| {
            let id = format!("p{i}-n{j}");
            let (status, health, drained) = match j % 25 {
                0 => (Status::Active, Health::Unhealthy, false),
                1 => (Status::Cordoned, Health::Unhealthy, j % 50 == 1),
                2 => (Status::Cordoned, Health::Healthy, false),
                _ => (Status::Active, Health::Healthy, false),
            };
            NodeView {
                instance_id: Some(format!("i-{id}")),
                id,
                status,
                health,
                connectivity: if j % 40 == 3 {
                    Connectivity::Offline
                } else {
                    Connectivity::Online
                },
                busy: j.is_multiple_of(3),
                drained,
            }
        })
        .collect();
    let instances = (0..4)
        .map(|k| InstanceView {
            id: format!("p{i}-boot{k}"),
            state: if k == 0 {
                InstanceState::Provisioning
            } else {
                InstanceState::Registering
            },
            node_id: None,
            created_ms: NOW - if k == 0 { 11 * 60_000 } else { 60_000 },
        })
        .collect();
    (nodes, instances)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let (pools_n, nodes_n, rounds) = (env("POOLS", 1000), env("NODES", 100), env("ROUNDS", 20));
    let pools: Vec<Pool> = (0..pools_n).map(|i| pool(i, nodes_n)).collect();
    let lists: Vec<_> = (0..pools_n).map(|i| nodes(i, nodes_n)).collect();
    let states: Vec<PoolState<'_>> = pools
        .iter()
        .zip(&lists)
        .enumerate()
        .map(|(i, (p, (ns, is)))| PoolState {
            pool: p,
            nodes: ns.clone(),
            instances: is.clone(),
            last_scale_up_ms: Some(NOW - 10 * 60_000),
            last_scale_down_ms: if i.is_multiple_of(3) {
                Some(NOW - 60_000)
            } else {
                None
            },
            manual_target: if i.is_multiple_of(5) {
                Some((nodes_n / 2) as u32)
            } else {
                None
            },
            last_target: Some(nodes_n as u32),
            metrics: Metrics {
                utilization: Some([0.95, 0.5, 0.1][i % 3]),
                history: (0..30).map(|k| (NOW - (30 - k) * 60_000, 0.5)).collect(),
                ..Metrics::default()
            },
            fleet: FleetBudget {
                size: (pools_n * nodes_n) as u32,
                out: 0,
                ..FleetBudget::default()
            },
            holds: Default::default(),
        })
        .collect();
    let mut per_pool = Vec::with_capacity(pools_n * rounds);
    let mut round_ms = Vec::with_capacity(rounds);
    let mut clone_ms = Vec::with_capacity(rounds);
    let mut actions = 0usize;
    for r in 0..rounds {
        let t = Instant::now();
        for (ns, is) in &lists {
            black_box((ns.clone(), is.clone()));
        }
        clone_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let round = Instant::now();
        for s in &states {
            let t = Instant::now();
            let d = black_box(decide(black_box(s), NOW + r as i64));
            per_pool.push(t.elapsed().as_secs_f64() * 1e6);
            actions += d.actions.len();
        }
        round_ms.push(round.elapsed().as_secs_f64() * 1e3);
    }
    per_pool.sort_by(f64::total_cmp);
    round_ms.sort_by(f64::total_cmp);
    clone_ms.sort_by(f64::total_cmp);
    let (r50, c50) = (pct(&round_ms, 0.5), pct(&clone_ms, 0.5));
    println!(
        "decide: {pools_n} pools x {nodes_n} nodes, {rounds} rounds, {} actions per round",
        actions / rounds
    );
    println!(
        "per pool: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        pct(&per_pool, 0.5),
        pct(&per_pool, 0.99),
        pct(&per_pool, 1.0)
    );
    println!(
        "per round (all pools): p50 {r50:.2} ms, max {:.2} ms",
        pct(&round_ms, 1.0)
    );
    println!(
        "beside: cloning the pools' node and instance lists: p50 {c50:.2} ms per round; decide/clone = {:.2}",
        r50 / c50
    );
}
