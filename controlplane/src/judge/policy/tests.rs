//! The default policy rule by rule (inputs that must fire and inputs that must not), and the
//! inputs the child modules share: precise errors for invalid policies and run-time failures
//! (`errors`), every documented field (`fields`), remembered results (`memo`), absent data
//! (`absent`) and expressions at and over the limits (`limits`).

use super::*;
use crate::model::observation::{GpuObservation, NodeObservation};
use std::time::Duration;

fn node() -> NodeInput {
    NodeInput {
        name: "gpu-01".into(),
        pool: "train".into(),
        expected_gpus: 2,
        connectivity: "online".into(),
        ..Default::default()
    }
}

fn gpu(index: u32) -> GpuObservation {
    let mut g = GpuObservation {
        index,
        uuid: format!("GPU-{index}").into(),
        model: "NVIDIA H100 80GB HBM3".into(),
        up: Some(true),
        ..Default::default()
    };
    for (k, v) in [
        ("temperature_celsius", 60.0),
        ("power_watts", 400.0),
        ("power_limit_watts", 700.0),
        ("pcie_link_width", 16.0),
        ("pcie_link_max_width", 16.0),
        ("pcie_link_generation", 5.0),
        ("pcie_link_max_generation", 5.0),
        ("pcie_replays_total", 0.0),
        ("remapped_rows_pending", 0.0),
        ("remapped_rows_failure", 0.0),
        ("recovery_action", 0.0),
    ] {
        g.values.insert(k, v);
    }
    for link in 0..18 {
        g.nvlink_up.insert(link, true);
        g.nvlink_errors.insert(link, 0.0);
    }
    g.ecc_errors
        .insert(("corrected".into(), "volatile".into()), 0.0);
    g.ecc_errors
        .insert(("uncorrected".into(), "volatile".into()), 0.0);
    g
}

fn healthy() -> NodeObservation {
    let mut o = NodeObservation::default();
    o.gpus.insert(0, gpu(0));
    o.gpus.insert(1, gpu(1));
    o.health_checks.insert("xid".into(), 0.0);
    o
}

fn fired(e: &Evaluation) -> Vec<String> {
    assert!(
        e.failures.is_empty(),
        "no rule may fail on these inputs: {:?}",
        e.failures
    );
    e.matches.iter().map(|m| m.rule.clone()).collect()
}

fn obs_with(f: impl Fn(&mut GpuObservation)) -> NodeObservation {
    let mut o = healthy();
    f(o.gpus.get_mut(&1).unwrap());
    o
}

fn event(kind: &str, code: Option<i64>) -> EventInput {
    EventInput {
        seq: 7,
        kind: kind.into(),
        code,
        gpu: Some(1),
        uuid: Some("GPU-1".into()),
        message: "m".into(),
        severity: "warning".into(),
        action: Some("reset_gpu".into()),
        source: "nvml".into(),
    }
}

#[test]
fn the_default_policy_loads_and_a_healthy_node_matches_nothing() {
    let p = Policy::default_policy();
    assert!(p.rules().len() >= 19, "{}", p.rules().len());
    let e = p.eval_observation(&healthy(), Some((&healthy(), 15.0)), &node());
    assert_eq!(fired(&e), Vec::<String>::new());
    assert_eq!(e.worst(), None);
}

#[test]
fn xid_rules_follow_the_one_xid_table() {
    let p = Policy::default_policy();
    let e = p.eval_event(&event("xid", Some(79)), &node());
    assert_eq!(fired(&e), ["fatal-xid"]);
    assert_eq!(e.worst(), Some(Verdict::Unhealthy));
    assert_eq!(e.matches[0].gpu, Some(1));
    assert_eq!(
        e.matches[0].action.as_deref(),
        Some("reset_gpu"),
        "the event's action when the rule has none"
    );
    let e = p.eval_event(&event("xid", Some(13)), &node());
    assert_eq!(fired(&e), ["xid"]);
    assert_eq!(e.worst(), Some(Verdict::Degraded));
    // What the table says to ignore degrades nothing (43, 45: the XIDs).
    for code in [43, 45, 63, 92] {
        let e = p.eval_event(&event("xid", Some(code)), &node());
        assert_eq!(fired(&e), Vec::<String>::new(), "XID {code}");
    }
    // XID 110 (security fault) resets the GPU; NVLink5 XIDs read the driver's status.
    assert_eq!(
        fired(&p.eval_event(&event("xid", Some(110)), &node())),
        ["fatal-xid"]
    );
    let mut nv = event("xid", Some(145));
    nv.message = "NVRM: Xid (PCI:0000:18:00): 145, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2 0x00000008 0x00000001 0x00000000 0x00100000 0x00000004)".into();
    assert_eq!(fired(&p.eval_event(&nv, &node())), Vec::<String>::new());
    nv.message = nv.message.replace("Nonfatal", "Fatal");
    assert_eq!(fired(&p.eval_event(&nv, &node())), ["fatal-xid"]);
    // Both functions take the code alone too, and refuse what is not a code.
    let q = Policy::parse(
        "[[rule]]\nname = \"f\"\nscope = \"event\"\nwhen = 'xid_severity(79) == \"fatal\" && xid_action(43) == \"ignore\" && xid_action(145, event.message) == \"reset_gpu\"'\nverdict = \"degraded\"\n",
    )
    .unwrap();
    assert_eq!(fired(&q.eval_event(&nv, &node())), ["f"]);
    let bad = Policy::parse(
        "[[rule]]\nname = \"f\"\nscope = \"event\"\nwhen = 'xid_severity(\"79\") == \"fatal\"'\nverdict = \"degraded\"\n",
    );
    assert!(bad.is_err(), "a string is not an XID code");
    for kind in ["thermal", "ecc", "nvlink", "plugin"] {
        assert_eq!(
            fired(&p.eval_event(&event(kind, Some(79)), &node())),
            Vec::<String>::new(),
            "{kind}"
        );
    }
}

/// A rule, a change that makes it fire, and a change that must not.
type Case = (
    &'static str,
    Box<dyn Fn(&mut GpuObservation)>,
    Box<dyn Fn(&mut GpuObservation)>,
);

#[test]
fn every_gpu_rule_fires_on_its_condition_and_only_then() {
    let p = Policy::default_policy();
    let prev = healthy();
    let cases: Vec<Case> = vec![
        (
            "ecc-double-bit",
            Box::new(|g| {
                g.ecc_errors
                    .insert(("uncorrected".into(), "volatile".into()), 1.0);
            }),
            Box::new(|g| {
                g.ecc_errors
                    .insert(("uncorrected".into(), "aggregate".into()), 3.0);
            }),
        ),
        (
            "ecc-single-bit-rate",
            // 30 in 15 s is 7,200 an hour.
            Box::new(|g| {
                g.ecc_errors
                    .insert(("corrected".into(), "volatile".into()), 30.0);
            }),
            Box::new(|_| {}),
        ),
        (
            "row-remap-failed",
            Box::new(|g| {
                g.values.insert("remapped_rows_failure", 1.0);
            }),
            Box::new(|g| {
                g.values.remove("remapped_rows_failure");
            }),
        ),
        (
            "row-remap-pending",
            Box::new(|g| {
                g.values.insert("remapped_rows_pending", 1.0);
            }),
            Box::new(|g| {
                g.values.remove("remapped_rows_pending");
            }),
        ),
        (
            "thermal-critical",
            Box::new(|g| {
                g.values.insert("temperature_celsius", 95.0);
            }),
            Box::new(|g| {
                g.values.insert("temperature_celsius", 84.9);
            }),
        ),
        (
            "thermal-warning",
            Box::new(|g| {
                g.values.insert("temperature_celsius", 86.0);
            }),
            Box::new(|g| {
                g.values.remove("temperature_celsius");
            }),
        ),
        (
            "hardware-slowdown",
            Box::new(|g| {
                g.clock_events.insert("hw_thermal_slowdown".into());
            }),
            Box::new(|g| {
                g.clock_events.insert("gpu_idle".into());
                g.clock_events.insert("sw_power_cap".into());
            }),
        ),
        (
            "power-over-limit",
            Box::new(|g| {
                g.values.insert("power_watts", 760.0);
            }),
            Box::new(|g| {
                g.values.insert("power_watts", 730.0);
            }),
        ),
        (
            "nvlink-down",
            Box::new(|g| {
                g.nvlink_up.insert(4, false);
            }),
            Box::new(|g| {
                g.nvlink_up.clear();
            }),
        ),
        (
            "nvlink-errors-growing",
            Box::new(|g| {
                g.nvlink_errors.insert(3, 2.0);
            }),
            Box::new(|_| {}),
        ),
        (
            "pcie-degraded",
            Box::new(|g| {
                g.values.insert("pcie_link_width", 8.0);
            }),
            Box::new(|g| {
                g.values.remove("pcie_link_max_width");
                g.values.insert("pcie_link_width", 8.0);
            }),
        ),
        (
            "pcie-replays-growing",
            Box::new(|g| {
                g.values.insert("pcie_replays_total", 12.0);
            }),
            Box::new(|g| {
                g.values.insert("pcie_replays_total", 9.0);
            }),
        ),
        (
            "recovery-action",
            Box::new(|g| {
                g.values.insert("recovery_action", 2.0);
            }),
            Box::new(|g| {
                g.values.remove("recovery_action");
            }),
        ),
        (
            "gpu-lost",
            Box::new(|g| {
                g.up = Some(false);
            }),
            Box::new(|g| {
                g.up = Some(true);
            }),
        ),
    ];
    for (rule, fire, quiet) in &cases {
        let e = p.eval_observation(&obs_with(fire), Some((&prev, 15.0)), &node());
        let f = fired(&e);
        assert!(f.contains(&rule.to_string()), "{rule} should fire: {f:?}");
        let m = e.matches.iter().find(|m| m.rule == *rule).unwrap();
        assert_eq!(m.gpu, Some(1), "{rule}");
        assert!(m.detail.starts_with("GPU 1"), "{rule}: {}", m.detail);
        let e = p.eval_observation(&obs_with(quiet), Some((&prev, 15.0)), &node());
        assert!(
            !fired(&e).contains(&rule.to_string()),
            "{rule} should not fire: {:?}",
            fired(&e)
        );
    }
    // Counters that went down (a restart) are not growth.
    let mut high = healthy();
    high.gpus.get_mut(&1).unwrap().nvlink_errors.insert(3, 50.0);
    let e = p.eval_observation(&healthy(), Some((&high, 15.0)), &node());
    assert_eq!(fired(&e), Vec::<String>::new());
    // Without a previous observation, nothing grows.
    let e = p.eval_observation(
        &obs_with(|g| {
            g.nvlink_errors.insert(3, 2.0);
        }),
        None,
        &node(),
    );
    assert_eq!(fired(&e), Vec::<String>::new());
}

#[test]
fn node_rules_see_missing_gpus_plugin_verdicts_and_connectivity() {
    let p = Policy::default_policy();
    let mut one = healthy();
    one.gpus.remove(&1);
    assert_eq!(
        fired(&p.eval_observation(&one, None, &node())),
        ["gpu-missing"]
    );
    let unknown_count = NodeInput {
        expected_gpus: 0,
        ..node()
    };
    assert_eq!(
        fired(&p.eval_observation(&one, None, &unknown_count)),
        Vec::<String>::new()
    );
    for (status, rule) in [(2.0, "plugin-unhealthy"), (1.0, "plugin-degraded")] {
        let mut o = healthy();
        o.health_checks.insert("thermal".into(), status);
        assert_eq!(fired(&p.eval_observation(&o, None, &node())), [rule]);
    }
    let mut o = healthy();
    o.health_checks.insert("thermal".into(), 3.0);
    assert_eq!(
        fired(&p.eval_observation(&o, None, &node())),
        Vec::<String>::new(),
        "unknown is not a verdict"
    );
    let offline = NodeInput {
        connectivity: "offline".into(),
        ..node()
    };
    let e = p.eval_observation(&healthy(), None, &offline);
    assert_eq!(fired(&e), ["node-offline"]);
    assert_eq!(e.matches[0].hold, Some(Duration::from_secs(600)));
}

mod absent;
mod errors;
mod fast;
mod fields;
mod limits;
mod memo;
