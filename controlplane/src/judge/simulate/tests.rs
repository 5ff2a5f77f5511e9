use super::*;
use crate::judge::policy::DEFAULT_POLICY;
use crate::store::observations::observation_rows;

const T: i64 = 1_800_000_000_000;

fn event(node: &str, kind: &str, code: Option<i64>, gpu: i32, t: i64) -> EventRow {
    EventRow {
        id: t,
        node_id: node.into(),
        gpu: Some(gpu),
        uuid: Some(format!("GPU-{gpu}")),
        kind: kind.into(),
        code,
        message: format!("{kind} {code:?}"),
        severity: "warning".into(),
        action: "ignore".into(),
        time: t,
        agent_instance: "i".into(),
        agent_seq: t,
        source: "nvml".into(),
    }
}

fn node(id: &str, pool: &str, events: Vec<EventRow>, temp: Option<f64>) -> NodeRecord {
    let observation = temp.map(|t| {
        let mut o = NodeObservation::default();
        let mut g = GpuObservation {
            index: 0,
            uuid: "GPU-0".into(),
            model: "H100".into(),
            up: Some(true),
            ..GpuObservation::default()
        };
        g.values.insert("temperature_celsius", t);
        o.gpus.insert(0, g);
        (o, T + 5_000)
    });
    NodeRecord {
        id: id.into(),
        input: NodeInput {
            name: id.into(),
            pool: pool.into(),
            labels: Default::default(),
            expected_gpus: 1,
            connectivity: "online".into(),
        },
        events,
        observation,
    }
}

/// The default policy, but XID 13 (graphics engine exception) and 80 °C are unhealthy.
fn stricter() -> Policy {
    let extra = r#"
[[rule]]
name = "xid-13-strict"
scope = "event"
when = 'event.kind == "xid" && event.code == 13'
verdict = "unhealthy"

[[rule]]
name = "hot-strict"
scope = "gpu"
when = 'has(gpu.temperature_celsius) && gpu.temperature_celsius >= 80.0'
verdict = "unhealthy"
"#;
    Policy::parse(&format!("{DEFAULT_POLICY}\n{extra}")).unwrap()
}

#[test]
fn a_stricter_candidate_flags_exactly_the_nodes_it_should() {
    let nodes = vec![
        node(
            "a-xid13",
            "train",
            vec![event("a-xid13", "xid", Some(13), 0, T)],
            Some(50.0),
        ),
        node(
            "b-xid79",
            "train",
            vec![event("b-xid79", "xid", Some(79), 1, T + 1)],
            Some(50.0),
        ),
        node("c-warm", "infer", vec![], Some(83.0)),
        node("d-cool", "infer", vec![], Some(60.0)),
        node("e-none", "infer", vec![], None),
    ];
    let current = Policy::default_policy();
    let sim = simulate(&current, &stricter(), &nodes, T - 3_600_000, T + 3_600_000);
    assert_eq!(sim.nodes_evaluated, 5);
    assert_eq!(sim.events_evaluated, 2);
    assert_eq!(sim.observations_evaluated, 4);
    assert_eq!(
        sim.current,
        Counts {
            healthy: 3,
            degraded: 1,
            unhealthy: 1
        }
    );
    assert_eq!(
        sim.candidate,
        Counts {
            healthy: 2,
            degraded: 0,
            unhealthy: 3
        }
    );
    assert_eq!(sim.changed, 2);
    let changed: Vec<(&str, &str, &str)> = sim
        .nodes
        .iter()
        .filter(|n| n.changed)
        .map(|n| {
            (
                n.name.as_str(),
                n.current.verdict.as_str(),
                n.candidate.verdict.as_str(),
            )
        })
        .collect();
    assert_eq!(
        changed,
        [
            ("a-xid13", "degraded", "unhealthy"),
            ("c-warm", "healthy", "unhealthy")
        ]
    );
    // The XID 79 node is flagged by both and listed after the changed ones.
    assert_eq!(sim.nodes.len(), 3);
    assert_eq!(sim.nodes[2].name, "b-xid79");
    assert!(!sim.nodes[2].changed);
    // Each verdict says which rules and what matched.
    let a = &sim.nodes[0].candidate.rules;
    assert_eq!(a[0].rule, "xid-13-strict");
    assert_eq!(a[0].hits, 1);
    assert_eq!(a[0].first, rfc3339(T));
    assert!(a.iter().any(|r| r.rule == "xid" && r.verdict == "degraded"));
    let c = &sim.nodes[1].candidate.rules;
    assert_eq!(c.len(), 1);
    assert!(c[0].example.contains("83"), "{:?}", c[0]);
    assert!(sim.failures.is_empty(), "{:?}", sim.failures);
}

#[test]
fn rules_failing_at_run_time_are_reported_not_skipped() {
    let broken = Policy::parse(
        r#"
[[rule]]
name = "divides"
scope = "event"
when = 'event.code / (event.code - 13) > 1'
verdict = "unhealthy"
"#,
    )
    .unwrap();
    let nodes = vec![node(
        "a",
        "p",
        vec![event("a", "xid", Some(13), 0, T)],
        None,
    )];
    let sim = simulate(&Policy::default_policy(), &broken, &nodes, T - 1, T + 1);
    assert_eq!(sim.failures.len(), 1, "{:?}", sim.failures);
    assert_eq!(sim.failures[0].policy, "candidate");
    assert_eq!(sim.failures[0].rule, "divides");
    assert_eq!(sim.failures[0].count, 1);
}

#[test]
fn stored_observation_rows_come_back_as_the_observation() {
    let mut o = NodeObservation {
        driver_version: Some("550.54".into()),
        ..NodeObservation::default()
    };
    let mut g = GpuObservation {
        index: 3,
        uuid: "GPU-3".into(),
        model: "H100".into(),
        up: Some(true),
        ..GpuObservation::default()
    };
    g.values.insert("temperature_celsius", 71.0);
    g.xid_errors.insert(79, 2.0);
    g.ecc_errors
        .insert(("volatile".into(), "uncorrected".into()), 1.0);
    g.nvlink_up.insert(2, false);
    g.nvlink_errors.insert(2, 7.0);
    g.clock_events.insert("hw_slowdown".into());
    o.gpus.insert(3, g);
    o.health_checks.insert("dcgm-diag".into(), 2.0);
    let rows = observation_rows("n", &o, T);
    let (back, at) = observation_from_rows(&rows).unwrap();
    assert_eq!(at, T);
    assert_eq!(back.gpus, o.gpus);
    assert_eq!(back.health_checks, o.health_checks);
    assert_eq!(back.driver_version, o.driver_version);
    assert!(observation_from_rows(&[]).is_none());
}
