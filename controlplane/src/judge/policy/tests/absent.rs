//! Absent data is unknown, never down: every field a rule reads, and the default policy on
//! inputs that carry no data at all.

use super::super::*;
use crate::model::observation::{GpuObservation, NodeObservation};

fn bare_gpu() -> GpuObservation {
    GpuObservation {
        index: 0,
        uuid: "GPU-0".into(),
        ..Default::default()
    }
}

fn node(expected_gpus: usize) -> NodeInput {
    NodeInput {
        name: "n".into(),
        pool: "default".into(),
        expected_gpus,
        connectivity: "online".into(),
        ..Default::default()
    }
}

fn obs(g: GpuObservation) -> NodeObservation {
    let mut o = NodeObservation::default();
    o.gpus.insert(g.index, g);
    o
}

#[test]
fn the_default_policy_judges_nothing_it_was_not_told() {
    let p = Policy::default_policy();
    // A GPU seen only by name (and the case: a temperature, no up series).
    let mut warm = bare_gpu();
    warm.values.insert("temperature_celsius", 61.0);
    for g in [bare_gpu(), warm] {
        let o = obs(g);
        for prev in [None, Some((&o, 15.0))] {
            let e = p.eval_observation(&o, prev, &node(1));
            assert_eq!(e.matches, vec![], "no data, no verdict");
            assert_eq!(
                e.failures,
                vec![],
                "every default rule guards what may be absent"
            );
        }
    }
    // A node not observed now, whose expected count is unknown.
    for n in [node(0), node(8)] {
        let e = p.eval_node(&n);
        assert!(
            !e.matches.iter().any(|m| m.rule == "gpu-missing"),
            "{:?}",
            e.matches
        );
        assert_eq!(e.failures, vec![]);
    }
    // An event without a code.
    let ev = EventInput {
        kind: "xid".into(),
        message: "garbled".into(),
        severity: "warning".into(),
        ..Default::default()
    };
    let e = p.eval_event(&ev, &node(1));
    assert_eq!(e.matches, vec![]);
}

#[test]
fn what_was_reported_still_fires() {
    let p = Policy::default_policy();
    let fires = |g: GpuObservation, prev: Option<GpuObservation>, rule: &str| {
        let o = obs(g);
        let before = prev.map(obs);
        let e = p.eval_observation(&o, before.as_ref().map(|b| (b, 60.0)), &node(1));
        e.matches.iter().any(|m| m.rule == rule)
    };
    let mut down = bare_gpu();
    down.up = Some(false);
    assert!(fires(down, None, "gpu-lost"));
    let mut dbe = bare_gpu();
    dbe.ecc_errors
        .insert(("uncorrected".into(), "volatile".into()), 1.0);
    assert!(fires(dbe, None, "ecc-double-bit"));
    let mut link = bare_gpu();
    link.nvlink_up.insert(3, false);
    assert!(fires(link, None, "nvlink-down"));
    let (mut a, mut b) = (bare_gpu(), bare_gpu());
    a.nvlink_errors.insert(0, 1.0);
    b.nvlink_errors.insert(0, 5.0);
    assert!(fires(b.clone(), Some(a), "nvlink-errors-growing"));
    // Growth needs both observations: a counter first seen is not growth.
    assert!(!fires(b, Some(bare_gpu()), "nvlink-errors-growing"));
    // GPUs missing against a known count.
    let e = p.eval_observation(&obs(bare_gpu()), None, &node(2));
    assert!(e.matches.iter().any(|m| m.rule == "gpu-missing"));
}

#[test]
fn absent_fields_are_absent_to_has_and_fail_a_rule_that_reads_them_unguarded() {
    let p = Policy::parse(
        "[[rule]]\nname = \"has-up\"\nscope = \"gpu\"\nwhen = 'has(gpu.up)'\nverdict = \"degraded\"\n\
[[rule]]\nname = \"raw-up\"\nscope = \"gpu\"\nwhen = '!gpu.up'\nverdict = \"degraded\"\n\
[[rule]]\nname = \"has-count\"\nscope = \"node\"\nwhen = 'has(node.gpu_count) || has(node.expected_gpus) || has(node.driver_version)'\nverdict = \"degraded\"\n",
    )
    .unwrap();
    let e = p.eval_observation(&obs(bare_gpu()), None, &node(0));
    assert_eq!(
        e.matches
            .iter()
            .map(|m| m.rule.as_str())
            .collect::<Vec<_>>(),
        ["has-count"]
    );
    assert_eq!(e.failures.len(), 1, "{:?}", e.failures);
    assert_eq!(e.failures[0].rule, "raw-up");
    let e = p.eval_node(&node(0));
    assert!(e.matches.is_empty(), "{:?}", e.matches);
    // The fields, one by one: absent on a bare GPU, present once reported.
    for f in [
        "up",
        "ecc_corrected",
        "ecc_uncorrected",
        "ecc_corrected_per_hour",
        "nvlink_down",
        "nvlink_errors",
        "nvlink_errors_delta",
        "pcie_replays_delta",
    ] {
        let p = Policy::parse(&format!(
            "[[rule]]\nname = \"r\"\nscope = \"gpu\"\nwhen = 'has(gpu.{f})'\nverdict = \"degraded\"\n"
        ))
        .unwrap();
        let o = obs(bare_gpu());
        let e = p.eval_observation(&o, Some((&o, 60.0)), &node(1));
        assert!(e.matches.is_empty(), "gpu.{f} is absent without data");
        let (_, full, _, _) = super::super::input::samples();
        let o = obs(full);
        let e = p.eval_observation(&o, Some((&o, 60.0)), &node(1));
        assert_eq!(e.matches.len(), 1, "gpu.{f} is present with data");
    }
}
