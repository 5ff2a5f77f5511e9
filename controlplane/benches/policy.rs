//! CEL policy cost: event-rule evaluations per second, and the whole default policy over one
//! 8-GPU node observation, contexts included.
//!
//! `cargo bench -p gpuwarden-controlplane --bench policy`; with `POLICY_BENCH=scraped` (or
//! `event`, `every`) in the environment only that case runs (to profile it alone).

use std::time::Instant;

use gpuwarden_controlplane::judge::policy::{EventInput, NodeInput, Policy, RuleMemo, Scope};
use gpuwarden_controlplane::model::observation::{GpuObservation, NodeObservation};

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p) as usize]
}

/// p50 and p99 of 20,000 runs of `step` (which returns the seconds it timed), after 2,000
/// warm-up runs.
fn p50_p99(mut step: impl FnMut(u32) -> f64) -> (f64, f64) {
    let mut times = Vec::with_capacity(20_000);
    for i in 0..22_000 {
        let d = step(i);
        if i >= 2_000 {
            times.push(d);
        }
    }
    (percentile(&mut times, 0.5), percentile(&mut times, 0.99))
}

fn observation() -> NodeObservation {
    let mut o = NodeObservation::default();
    for i in 0..8 {
        let mut g = GpuObservation {
            index: i,
            uuid: format!("GPU-{i}").into(),
            model: "NVIDIA H100 80GB HBM3".into(),
            up: Some(true),
            ..Default::default()
        };
        for (k, v) in [
            ("temperature_celsius", 61.0),
            ("memory_temperature_celsius", 70.0),
            ("power_watts", 420.0),
            ("power_limit_watts", 700.0),
            ("utilization_ratio", 0.93),
            ("memory_used_bytes", 6.0e10),
            ("memory_total_bytes", 8.5e10),
            ("pcie_link_generation", 5.0),
            ("pcie_link_max_generation", 5.0),
            ("pcie_link_width", 16.0),
            ("pcie_link_max_width", 16.0),
            ("pcie_replays_total", 3.0),
            ("remapped_rows_pending", 0.0),
            ("remapped_rows_failure", 0.0),
            ("recovery_action", 0.0),
            ("sm_clock_hertz", 1.98e9),
            ("memory_clock_hertz", 2.6e9),
            ("energy_joules_total", 1.0e9),
        ] {
            g.values.insert(k, v);
        }
        for l in 0..18 {
            g.nvlink_up.insert(l, true);
            g.nvlink_errors.insert(l, 0.0);
        }
        g.xid_errors.insert(13, 1.0);
        g.ecc_errors
            .insert(("corrected".into(), "volatile".into()), 2.0);
        g.ecc_errors
            .insert(("uncorrected".into(), "volatile".into()), 0.0);
        o.gpus.insert(i, g);
    }
    o.health_checks.insert("xid".into(), 0.0);
    o.health_checks.insert("thermal".into(), 0.0);
    o
}

/// Whether the case `name` runs (`POLICY_BENCH` unset: every case).
fn runs(name: &str) -> bool {
    std::env::var("POLICY_BENCH").map_or(true, |c| c == name)
}

fn main() {
    let p = Policy::default_policy();
    let node = NodeInput {
        name: "gpu-01".into(),
        pool: "train".into(),
        expected_gpus: 8,
        connectivity: "online".into(),
        ..Default::default()
    };
    let ev = EventInput {
        seq: 1,
        kind: "xid".into(),
        code: Some(79),
        gpu: Some(3),
        uuid: Some("GPU-3".into()),
        message: "XID 79".into(),
        severity: "fatal".into(),
        action: Some("reboot_node".into()),
        source: "nvml".into(),
    };
    let event_rules = p.rules().iter().filter(|r| r.scope == Scope::Event).count();
    if runs("event") {
        event(&p, &ev, &node, event_rules);
    }
    if runs("every") {
        every_rule(&p, &node, event_rules);
    }
    if runs("scraped") {
        as_scraped(&p, &node);
    }
}

/// Event rules: evaluations per second.
fn event(p: &Policy, ev: &EventInput, node: &NodeInput, event_rules: usize) {
    let n = 50_000;
    for _ in 0..n / 10 {
        std::hint::black_box(p.eval_event(ev, node));
    }
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(p.eval_event(ev, node));
    }
    let per = t.elapsed().as_secs_f64() / f64::from(n);
    println!(
        "event: {event_rules} rules per event, {:.2} µs per event with its context",
        per * 1e6
    );
    println!(
        "  → {:.2} M event-rule evaluations per core-second (goal ≥ 1 M)",
        event_rules as f64 / per / 1e6
    );
}

/// The whole policy on one observation, no rule memory.
fn every_rule(p: &Policy, node: &NodeInput, event_rules: usize) {
    let obs = observation();
    let prev = observation();
    let state_rules = p.rules().len() - event_rules;
    let (p50, p99) = p50_p99(|_| {
        let t = Instant::now();
        let e = p.eval_observation(&obs, Some((&prev, 15.0)), node);
        let d = t.elapsed().as_secs_f64();
        std::hint::black_box(e);
        d
    });
    println!(
        "observation, every rule run: 8 GPUs, {state_rules} gpu/node rules ({} evaluations), contexts included: p50 {:.1} µs, p99 {:.1} µs",
        p.rules().iter().filter(|r| r.scope == Scope::Gpu).count() * 8 + p.rules().iter().filter(|r| r.scope == Scope::Node).count(),
        p50 * 1e6,
        p99 * 1e6
    );
}

/// The scraper's case.
fn as_scraped(p: &Policy, node: &NodeInput) {
    // The scraper's case: the node's rule memory kept from scrape to scrape, and on every
    // scrape each GPU's temperature, power, utilization, clocks and energy move (as they do
    // on a busy GPU), while counters and link state stay. Changing the values is not timed.
    let mut memo = RuleMemo::default();
    let mut obs = observation();
    let mut rng = fastrand::Rng::with_seed(11);
    let (p50, p99) = p50_p99(|i| {
        let prev = obs.clone();
        for g in obs.gpus.values_mut() {
            for (k, base, spread) in [
                ("temperature_celsius", 55.0, 25.0),
                ("memory_temperature_celsius", 60.0, 20.0),
                ("power_watts", 300.0, 400.0),
                ("utilization_ratio", 0.0, 1.0),
                ("memory_used_bytes", 1e10, 7e10),
                ("sm_clock_hertz", 1.4e9, 0.6e9),
                ("energy_joules_total", 1e9 + f64::from(i) * 6000.0, 1.0),
            ] {
                g.values.insert(k, base + rng.f64() * spread);
            }
        }
        let t = Instant::now();
        let e = p.eval_observation_memo(&obs, Some((&prev, 15.0)), node, &mut memo);
        let d = t.elapsed().as_secs_f64();
        std::hint::black_box(e);
        d
    });
    println!(
        "observation, as scraped (rule results kept while what a rule reads is unchanged; temperature, power, clocks moving every scrape): p50 {:.1} µs, p99 {:.1} µs (goal ≤ 20 µs)",
        p50 * 1e6,
        p99 * 1e6
    );
}
