//! Native rules (`fast`) give exactly what the interpreter gives: the shipped policy, the
//! policies of the other tests and a set of rules of every native shape, run both ways over
//! generated observations (absent fields, NaN, ±Inf, huge and negative values, no previous
//! observation, GPUs missing), with and without the rule memory.

use super::super::*;
use super::node;
use crate::model::observation::{GpuObservation, NodeObservation};

/// Rules of every shape the native path takes (and a few it leaves to the interpreter),
/// including ones that fail at run time on some inputs.
const SHAPES: &[(&str, &str)] = &[
    ("gpu", "has(gpu.temperature_celsius) && gpu.temperature_celsius >= 85.0"),
    ("gpu", "gpu.temperature_celsius > 90.0"),
    ("gpu", "gpu.temperature_celsius > 90"),
    ("gpu", "gpu.temperature_celsius == 90 || gpu.temperature_celsius != 60.0"),
    ("gpu", "gpu.temperature_celsius <= gpu.memory_temperature_celsius"),
    ("gpu", "gpu.power_watts > gpu.power_limit_watts * 1.05"),
    ("gpu", "gpu.power_watts * 2.0 < 1.0 * gpu.power_limit_watts"),
    ("gpu", "has(gpu.power_watts) && has(gpu.power_limit_watts) && gpu.power_watts > gpu.power_limit_watts * 1.05"),
    ("gpu", "gpu.nvlink_down > 0"),
    ("gpu", "gpu.nvlink_down >= 1.5"),
    ("gpu", "gpu.nvlink_down == 0.0 && gpu.index < 2"),
    ("gpu", "gpu.index * 2 > 1"),
    ("gpu", "!gpu.up"),
    ("gpu", "gpu.up"),
    ("gpu", "gpu.up == false || gpu.up != true"),
    ("gpu", "has(gpu.up) && !gpu.up"),
    ("gpu", "gpu.uuid == \"GPU-1\" || gpu.model < \"NVIDIA\""),
    ("gpu", "gpu.model >= \"H\" && gpu.uuid != \"x\""),
    ("gpu", "gpu.temperature_celsius > 90.0 || true"),
    ("gpu", "true && gpu.temperature_celsius > 90.0"),
    ("gpu", "false || gpu.temperature_celsius > 90.0"),
    ("gpu", "gpu.temperature_celsius > 90.0 && false"),
    ("gpu", "!(gpu.ecc_uncorrected > 0.0) || gpu.ecc_corrected_per_hour < 100.0"),
    ("gpu", "gpu.nvlink_errors_delta > 0.0 || gpu.pcie_replays_delta >= 10.0"),
    ("gpu", "gpu.ecc_corrected == gpu.ecc_uncorrected"),
    ("gpu", "gpu.nvlink_errors != 0.0"),
    ("gpu", "gpu.temperature_celsius == gpu.temperature_celsius"),
    ("gpu", "gpu.temperature_celsius != gpu.temperature_celsius"),
    ("gpu", "has(gpu.no_such_value) || gpu.index >= 0"),
    ("gpu", "node.gpu_count > gpu.index && node.name == \"gpu-01\""),
    ("gpu", "node.expected_gpus < gpu.nvlink_down"),
    ("gpu", "gpu.clock_events.exists(r, r == \"hw_slowdown\")"),
    ("gpu", "has(gpu.xid_errors) && gpu.xid_errors.size() > 0"),
    ("gpu", "gpu.temperature_celsius - 1.0 > 90.0"),
    ("node", "has(node.expected_gpus) && has(node.gpu_count) && node.gpu_count < node.expected_gpus"),
    ("node", "node.gpu_count < node.expected_gpus"),
    ("node", "node.connectivity == \"offline\" || (has(node.driver_version) && node.driver_version >= \"550\")"),
    ("node", "has(node.driver_version) && node.driver_version != \"550.54\""),
    ("node", "node.health_checks.exists(c, node.health_checks[c] == 2.0)"),
];

/// The shipped policy, the other tests' policies and [`SHAPES`].
fn policies() -> Vec<String> {
    let mut out = vec![DEFAULT_POLICY.to_string()];
    let rule = |i: usize, scope: &str, when: &str| {
        format!("[[rule]]\nname = \"r{i}\"\nscope = \"{scope}\"\nwhen = '{when}'\nverdict = \"degraded\"\n\n")
    };
    out.push(
        SHAPES
            .iter()
            .enumerate()
            .map(|(i, (s, w))| rule(i, s, w))
            .collect(),
    );
    // Rules of the other tests (simulation, API, absent fields, memory).
    for (i, (s, w)) in [
        (
            "gpu",
            "has(gpu.temperature_celsius) && gpu.temperature_celsius >= 80.0",
        ),
        ("gpu", "gpu.temperature_celsius > 50.0"),
        ("gpu", "gpu.index == 1"),
        ("gpu", "has(gpu.up)"),
        (
            "node",
            "has(node.gpu_count) || has(node.expected_gpus) || has(node.driver_version)",
        ),
        ("gpu", "gpu.xid_errors[\"79\"] > 0.0"),
    ]
    .iter()
    .enumerate()
    {
        out.push(rule(i, s, w));
    }
    out
}

/// The same policy with every rule left to the interpreter.
fn interpreted(text: &str) -> Policy {
    let mut p = Policy::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
    for r in &mut p.rules {
        r.fast = None;
    }
    p
}

fn pick(rng: &mut fastrand::Rng) -> Option<f64> {
    const ODD: [f64; 12] = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN_POSITIVE,
        9_007_199_254_740_992.0,
        1e300,
        -1e300,
    ];
    match rng.u8(..10) {
        0 => None,
        1 | 2 => Some(ODD[rng.usize(..ODD.len())]),
        _ => Some((rng.f64() * 200.0 - 20.0).round()),
    }
}

fn random_gpu(rng: &mut fastrand::Rng, index: u32) -> GpuObservation {
    let mut g = GpuObservation {
        index,
        uuid: format!("GPU-{index}").into(),
        model: ["NVIDIA H100", "H200", ""][rng.usize(..3)].into(),
        up: [None, Some(true), Some(false)][rng.usize(..3)],
        ..Default::default()
    };
    let names = [
        "temperature_celsius",
        "memory_temperature_celsius",
        "power_watts",
        "power_limit_watts",
        "pcie_link_width",
        "pcie_link_max_width",
        "pcie_link_generation",
        "pcie_link_max_generation",
        "pcie_replays_total",
        "remapped_rows_pending",
        "remapped_rows_failure",
        "recovery_action",
    ];
    let pairs: Vec<(&str, f64)> = names
        .iter()
        .filter_map(|n| pick(rng).map(|v| (*n, v)))
        .collect();
    g.values = crate::model::observation::Values::from_pairs(pairs);
    for ty in ["corrected", "uncorrected"] {
        if let Some(v) = pick(rng) {
            g.ecc_errors.insert((ty.into(), "volatile".into()), v);
        }
    }
    for l in 0..rng.u32(..4) {
        g.nvlink_up.insert(l, rng.bool());
        if let Some(v) = pick(rng) {
            g.nvlink_errors.insert(l, v);
        }
    }
    if rng.bool() {
        g.clock_events.insert("hw_slowdown".into());
    }
    if rng.bool() {
        g.xid_errors.insert(79, 1.0);
    }
    g
}

fn random_obs(rng: &mut fastrand::Rng) -> NodeObservation {
    let mut o = NodeObservation::default();
    for i in 0..rng.u32(..4) {
        o.gpus.insert(i, random_gpu(rng, i));
    }
    o.driver_version =
        [None, Some("550.54".to_string()), Some("535".to_string())][rng.usize(..3)].clone();
    if let Some(v) = pick(rng) {
        o.health_checks.insert("dcgm".into(), v);
    }
    o
}

#[test]
fn native_rules_give_what_the_interpreter_gives() {
    let mut rng = fastrand::Rng::with_seed(12);
    for text in policies() {
        let native = Policy::parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
        let slow = interpreted(&text);
        let (mut m1, mut m2) = (RuleMemo::default(), RuleMemo::default());
        let mut prev = random_obs(&mut rng);
        for step in 0..3000 {
            let o = random_obs(&mut rng);
            let mut n = node();
            n.expected_gpus = rng.usize(..4);
            n.connectivity = ["online", "offline"][rng.usize(..2)].into();
            let dt = [15.0, 0.0, -1.0][rng.usize(..3)];
            let p = (step % 5 != 0).then_some((&prev, dt));
            let a = native.eval_observation(&o, p, &n);
            let b = slow.eval_observation(&o, p, &n);
            assert_eq!(a, b, "step {step}: {o:?}");
            let a = native.eval_observation_memo(&o, p, &n, &mut m1);
            let b = slow.eval_observation_memo(&o, p, &n, &mut m2);
            assert_eq!(a, b, "step {step} (memory): {o:?}");
            prev = o;
        }
    }
}

#[test]
fn the_default_policy_runs_natively_except_its_comprehensions() {
    let p = Policy::default_policy();
    let interpreted: Vec<&str> = p
        .rules()
        .iter()
        .filter(|r| r.scope != Scope::Event && r.fast.is_none())
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        interpreted,
        ["hardware-slowdown", "plugin-unhealthy", "plugin-degraded"]
    );
    assert!(p
        .rules()
        .iter()
        .all(|r| r.scope != Scope::Event || r.fast.is_none()));
}
