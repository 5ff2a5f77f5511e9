//! The default policy rule by rule (inputs that must fire and inputs that must not), precise
//! errors for invalid policies, and run-time failures that are reported, not skipped.

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
        uuid: format!("GPU-{index}"),
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
        g.values.insert(k.into(), v);
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
    // What the table says to ignore degrades nothing (43, 45: the issue's XIDs).
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
                g.values.insert("remapped_rows_failure".into(), 1.0);
            }),
            Box::new(|g| {
                g.values.remove("remapped_rows_failure");
            }),
        ),
        (
            "row-remap-pending",
            Box::new(|g| {
                g.values.insert("remapped_rows_pending".into(), 1.0);
            }),
            Box::new(|g| {
                g.values.remove("remapped_rows_pending");
            }),
        ),
        (
            "thermal-critical",
            Box::new(|g| {
                g.values.insert("temperature_celsius".into(), 95.0);
            }),
            Box::new(|g| {
                g.values.insert("temperature_celsius".into(), 84.9);
            }),
        ),
        (
            "thermal-warning",
            Box::new(|g| {
                g.values.insert("temperature_celsius".into(), 86.0);
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
                g.values.insert("power_watts".into(), 760.0);
            }),
            Box::new(|g| {
                g.values.insert("power_watts".into(), 730.0);
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
                g.values.insert("pcie_link_width".into(), 8.0);
            }),
            Box::new(|g| {
                g.values.remove("pcie_link_max_width");
                g.values.insert("pcie_link_width".into(), 8.0);
            }),
        ),
        (
            "pcie-replays-growing",
            Box::new(|g| {
                g.values.insert("pcie_replays_total".into(), 12.0);
            }),
            Box::new(|g| {
                g.values.insert("pcie_replays_total".into(), 9.0);
            }),
        ),
        (
            "recovery-action",
            Box::new(|g| {
                g.values.insert("recovery_action".into(), 2.0);
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

fn errors(text: &str) -> Vec<PolicyError> {
    Policy::parse(text).unwrap_err()
}

#[test]
fn invalid_policies_name_the_rule_and_the_position_of_every_problem() {
    let text = "\
[[rule]]
name = \"a\"
scope = \"event\"
when = 'event.kind == '
verdict = \"unhealthy\"

[[rule]]
name = \"a\"
scope = \"cluster\"
when = 'true'
verdict = \"bad\"
for = \"soon\"
action = \"pray\"

[[rule]]
name = \"b\"
scope = \"event\"
when = 'event.kind == \"xid\"'
verdict = \"degraded\"
for = \"1m\"

[[rule]]
name = \"c\"
scope = \"gpu\"
when = 'gpu.temprature_celsius > 90.0'
verdict = \"degraded\"

[[rule]]
name = \"d\"
scope = \"node\"
when = 'gpu.up'
verdict = \"degraded\"

[[rule]]
name = \"e\"
scope = \"event\"
when = 'event.code + \"x\" == 1'
verdict = \"degraded\"
";
    let e = errors(text);
    let got: Vec<(Option<&str>, usize, usize, &str)> = e
        .iter()
        .map(|e| (e.rule.as_deref(), e.line, e.column, e.message.as_str()))
        .collect();
    let find = |rule: &str, needle: &str| {
        got.iter()
            .find(|g| g.0 == Some(rule) && g.3.contains(needle))
            .unwrap_or_else(|| panic!("no error for {rule} with {needle:?} in {got:#?}"))
    };
    let syntax = find("a", "CEL: Syntax error");
    assert_eq!(
        (syntax.1, syntax.2),
        (4, 23),
        "where the expression ends and an operand was expected"
    );
    assert_eq!(find("a", "appears twice").1, 8);
    assert_eq!(find("a", "unknown scope \"cluster\"").1, 9);
    assert_eq!(find("a", "unknown verdict \"bad\"").1, 11);
    assert_eq!(find("a", "for = \"soon\"").1, 12);
    assert_eq!(find("a", "unknown action \"pray\"").1, 13);
    assert_eq!(find("b", "`for` applies to gpu and node rules").1, 20);
    let typo = find("c", "no field \"temprature_celsius\"");
    assert_eq!((typo.1, typo.2), (25, 9));
    assert!(find("d", "unknown name \"gpu\"").3.contains("sees `node`"));
    find("e", "type error");
    // And the text of an error says it all.
    assert_eq!(
        e[0].to_string(),
        format!("rule \"a\", line 4, column 23: {}", e[0].message)
    );

    let e = errors("[[rule]]\nname = \"x\"\nscope = \"event\"\nwhen = 'true'\nverdict = \"degraded\"\ncolour = 1\n");
    // The unknown key is reported in its rule, at its line.
    assert_eq!((e[0].line, e[0].rule.as_deref()), (6, Some("x")));
    assert!(e[0].message.contains("colour"), "{}", e[0].message);
    let e = errors("[[rule]\n");
    assert_eq!(e[0].line, 1);
    let e = errors("");
    assert!(e[0].message.contains("no [[rule]]"));
    let e = errors("[[rule]]\nname = \"x\"\nscope = \"event\"\nverdict = \"degraded\"\n");
    assert!(e[0].message.contains("when"), "{}", e[0].message);
}

#[test]
fn a_rule_that_fails_at_run_time_is_reported_not_skipped() {
    let p = Policy::parse(
        "[[rule]]\nname = \"xid79-count\"\nscope = \"gpu\"\nwhen = 'gpu.xid_errors[\"79\"] > 0.0'\nverdict = \"degraded\"\n\n\
         [[rule]]\nname = \"hot\"\nscope = \"gpu\"\nwhen = 'gpu.temperature_celsius > 50.0'\nverdict = \"degraded\"\n",
    )
    .unwrap();
    let e = p.eval_observation(&healthy(), None, &node());
    assert_eq!(e.failures.len(), 2, "one per GPU: {:?}", e.failures);
    assert_eq!(
        (e.failures[0].rule.as_str(), e.failures[0].input.as_str()),
        ("xid79-count", "gpu 0")
    );
    assert!(
        e.failures[0].error.contains("79"),
        "{}",
        e.failures[0].error
    );
    assert_eq!(e.matches.len(), 2, "the other rules still ran");
}

#[test]
fn every_documented_field_reads_the_same_through_dot_index_and_has() {
    let p = Policy::parse(
        r#"
[[rule]]
name = "gpu-fields"
scope = "gpu"
when = '''
gpu.index == 1 && gpu.uuid == "GPU-1" && gpu.model.startsWith("NVIDIA") && gpu.up &&
gpu["temperature_celsius"] == 60.0 && has(gpu.power_watts) && !has(gpu.no_such_value) &&
gpu.xid_errors["13"] == 2.0 && size(gpu.xid_errors) == 1 && gpu.ecc_corrected == 0.0 &&
gpu.nvlink_down == 0 && gpu.clock_events.size() == 1 && "hw_slowdown" in gpu.clock_events &&
gpu.ecc_corrected_per_hour == 0.0 && gpu.pcie_replays_delta == 0.0
'''
verdict = "degraded"

[[rule]]
name = "node-fields"
scope = "node"
when = '''
node.name == "gpu-01" && node.pool == "train" && node.labels.rack == "r7" &&
!has(node.labels.zone) && node.gpu_count == 2 && node.expected_gpus == 2 &&
node.health_checks["dcgm"] == 1.0 && node.driver_version == "550.54" &&
node.connectivity == "online"
'''
verdict = "degraded"

[[rule]]
name = "event-fields"
scope = "event"
when = '''
event.kind == "xid" && event.code == 13 && event.gpu == 0 && event.uuid == "GPU-0" &&
event.severity == "warning" && event.action == "ignore" && event.source == "nvml" &&
event.seq == 7 && event.message.contains("13")
'''
verdict = "degraded"
"#,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let mut o = obs_with(|g| {
        if g.index == 1 {
            g.xid_errors.insert(13, 2.0);
            g.clock_events.insert("hw_slowdown".into());
        }
    });
    o.driver_version = Some("550.54".into());
    o.health_checks.insert("dcgm".into(), 1.0);
    let mut n = node();
    n.labels.insert("rack".into(), "r7".into());
    // The growth fields need a previous observation (without one they are absent).
    let e = p.eval_observation(&o, Some((&o, 60.0)), &n);
    assert!(e.failures.is_empty(), "{:?}", e.failures);
    assert_eq!(fired(&e), ["gpu-fields", "node-fields"]);
    assert_eq!(e.matches[0].gpu, Some(1), "only GPU 1 matches");
    let mut ev = event("xid", Some(13));
    ev.seq = 7;
    ev.severity = "warning".into();
    ev.action = Some("ignore".into());
    ev.source = "nvml".into();
    ev.message = "XID 13 on GPU 0".into();
    ev.gpu = Some(0);
    ev.uuid = Some("GPU-0".into());
    let e = p.eval_event(&ev, &n);
    assert!(e.failures.is_empty(), "{:?}", e.failures);
    assert_eq!(fired(&e), ["event-fields"]);
}

#[test]
fn remembered_results_are_the_results_of_running_every_rule() {
    // 300 scrapes of a node whose values move like a real one's (and sometimes fail): the
    // memoized evaluation must give exactly what a full evaluation gives, every time.
    let p = Policy::default_policy();
    let mut memo = RuleMemo::default();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut o = obs_with(|_| {});
    let mut prev: Option<NodeObservation> = None;
    let mut n = node();
    for step in 0..300 {
        for g in o.gpus.values_mut() {
            g.values
                .insert("temperature_celsius".into(), 60.0 + rng.f64() * 40.0);
            g.values
                .insert("power_watts".into(), 600.0 + rng.f64() * 150.0);
            if rng.u8(..) < 8 {
                *g.xid_errors.entry(13).or_insert(0.0) += 1.0;
            }
            if rng.u8(..) < 8 {
                g.up = g.up.map(|u| !u);
            }
            if rng.u8(..) < 8 {
                g.clock_events.insert("hw_slowdown".into());
            } else if rng.u8(..) < 16 {
                g.clock_events.clear();
            }
            if rng.u8(..) < 4 {
                let w = g.values.entry("pcie_link_width".into()).or_insert(16.0);
                *w = if *w == 16.0 { 8.0 } else { 16.0 };
            }
            if rng.u8(..) < 4 {
                *g.ecc_errors
                    .entry(("corrected".into(), "volatile".into()))
                    .or_insert(0.0) += 500.0;
            }
        }
        if rng.u8(..) < 10 {
            o.health_checks
                .insert("dcgm".into(), f64::from(rng.u8(..3)));
        }
        if rng.u8(..) < 10 {
            n.connectivity = if n.connectivity == "online" {
                "offline".into()
            } else {
                "online".into()
            };
        }
        let prev_ref = prev.as_ref().map(|p| (p, 15.0));
        let full = p.eval_observation(&o, prev_ref, &n);
        let remembered = p.eval_observation_memo(&o, prev_ref, &n, &mut memo);
        assert_eq!(remembered, full, "scrape {step}");
        prev = Some(o.clone());
    }
}

#[test]
fn another_policy_does_not_use_the_results_remembered_for_the_first() {
    let hot = |limit: f64| {
        Policy::parse(&format!(
            "[[rule]]\nname = \"hot\"\nscope = \"gpu\"\nwhen = 'gpu.temperature_celsius > {limit:.1}'\nverdict = \"degraded\"\n"
        ))
        .unwrap()
    };
    let o = obs_with(|g| {
        g.values.insert("temperature_celsius".into(), 70.0);
    });
    let mut memo = RuleMemo::default();
    let a = hot(80.0);
    assert!(a
        .eval_observation_memo(&o, None, &node(), &mut memo)
        .matches
        .is_empty());
    let b = hot(65.0);
    assert_eq!(
        b.eval_observation_memo(&o, None, &node(), &mut memo)
            .matches
            .len(),
        1,
        "the same rule name and fields, another policy: evaluated again (GPU 1 is at 70 °C)"
    );
}

/// Issue: `policies validate` stopped at the first unknown key or type error. Every
/// structural problem of every rule is reported at once, each at its line.
#[test]
fn every_structural_problem_of_every_rule_is_reported_at_once() {
    let text = "[[rule]]\nname = \"a\"\nscope = \"event\"\nwhen = 'true'\nverdict = \"degraded\"\ncolour = 1\n\n\
                [[rule]]\nname = \"b\"\nscope = \"node\"\nwhen = \"true\"\nverdict = 2\n\n\
                [[rule]]\nname = \"c\"\nscope = \"node\"\nverdict = \"degraded\"\n\n\
                [[rule]]\nname = \"d\"\nscope = \"node\"\nwhen = \"true\"\nverdict = \"broken\"\n\n\
                [extra]\nx = 1\n";
    let e = errors(text);
    let got: Vec<(Option<&str>, usize, &str)> = e
        .iter()
        .map(|e| (e.rule.as_deref(), e.line, e.message.as_str()))
        .collect();
    assert_eq!(e.len(), 5, "{got:#?}");
    assert!(
        got.iter()
            .any(|(r, l, m)| r.is_none() && *l == 25 && m.contains("\"extra\"")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|(r, l, m)| *r == Some("a") && *l == 6 && m.contains("\"colour\"")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|(r, l, m)| *r == Some("b") && *l == 12 && m.contains("verdict must be a string")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|(r, l, m)| *r == Some("c") && *l == 14 && m.contains("missing key \"when\"")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|(r, l, m)| *r == Some("d") && *l == 23 && m.contains("unknown verdict")),
        "{got:#?}"
    );
    assert!(got.iter().all(|(_, _, m)| !m.contains('`')), "{got:#?}");
}

mod absent;
mod limits;
