//! `decide` over tables: sizes, bounds, cooldowns, in-flight instances, scale-down. Tests
//! named `navarch_*` guard a fault of Navarch's pool manager (issue #13).

use super::*;
use crate::model::pool::{AutoscalerSpec, PoolSpec, ReactiveSpec};
use crate::model::{Connectivity, Health, Status};
use crate::pool::Pool;

pub(super) const NOW: i64 = 1_800_000_000_000;
pub(super) const MIN: i64 = 60_000;

/// A `fake` pool, cooldowns 1m up and 5m down, registration timeout 10m.
pub(super) fn pool(min: u32, max: u32, f: impl FnOnce(&mut PoolSpec)) -> Pool {
    let mut spec = PoolSpec::new("p", "fake", min, max);
    f(&mut spec);
    Pool::build(spec).expect("valid pool")
}

pub(super) fn node(id: &str, status: Status, health: Health, conn: Connectivity) -> NodeView {
    NodeView {
        id: id.into(),
        instance_id: Some(format!("i-{id}")),
        status,
        health,
        connectivity: conn,
        busy: false,
        drained: false,
    }
}

pub(super) fn up(id: &str) -> NodeView {
    node(id, Status::Active, Health::Healthy, Connectivity::Online)
}

pub(super) fn sick(id: &str, status: Status) -> NodeView {
    node(id, status, Health::Unhealthy, Connectivity::Online)
}

pub(super) fn booting(id: &str, created_ms: i64) -> InstanceView {
    InstanceView {
        id: id.into(),
        state: InstanceState::Registering,
        node_id: None,
        created_ms,
    }
}

pub(super) fn state(
    pool: &Pool,
    nodes: Vec<NodeView>,
    instances: Vec<InstanceView>,
) -> PoolState<'_> {
    PoolState {
        pool,
        nodes,
        instances,
        last_scale_up_ms: None,
        last_scale_down_ms: None,
        manual_target: None,
        last_target: None,
        metrics: Metrics::default(),
        fleet: FleetBudget {
            spec: crate::model::pool::BudgetSpec {
                max_percent: 100.0,
                max_nodes: 1000,
            },
            size: 1000,
            out: 0,
        },
        holds: Holds::default(),
    }
}

pub(super) fn provisioned(d: &Decision) -> u32 {
    d.actions
        .iter()
        .map(|a| match a {
            Action::Provision { ids, .. } => ids.len() as u32,
            _ => 0,
        })
        .sum()
}

/// The node actions as `verb:node`, in order.
pub(super) fn node_actions(d: &Decision) -> Vec<String> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Action::Cordon { node, .. } => Some(format!("cordon:{node}")),
            Action::Drain { node, .. } => Some(format!("drain:{node}")),
            Action::TerminateNode { node, .. } => Some(format!("terminate:{node}")),
            Action::Hold { node, .. } => Some(format!("hold:{node}")),
            _ => None,
        })
        .collect()
}

/// Navarch enforced min only through an autoscaler.
#[test]
fn navarch_min_is_enforced_without_an_autoscaler() {
    let p = pool(2, 4, |_| {});
    let d = decide(&state(&p, vec![], vec![]), NOW);
    assert_eq!(d.target, 2);
    assert_eq!(
        d.actions,
        vec![Action::Provision {
            ids: vec![format!("p-{NOW}-0"), format!("p-{NOW}-1")],
            reason: "0 counted of a target of 2: 2 more".into(),
        }]
    );
    assert!(d.starts_scale_up);
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("no autoscaler: min_nodes 2")),
        "{:?}",
        d.reasons
    );
}

/// Navarch did not count instances still booting, so it provisioned again after every
/// cooldown.
#[test]
fn navarch_booting_instances_count_so_nothing_is_provisioned_again_after_the_cooldown() {
    let p = pool(2, 4, |_| {});
    let mut s = state(
        &p,
        vec![],
        vec![booting("a", NOW - 5 * MIN), booting("b", NOW - 9 * MIN)],
    );
    s.last_scale_up_ms = Some(NOW - 9 * MIN);
    let d = decide(&s, NOW);
    assert_eq!(
        (provisioned(&d), d.counts.booting, d.counts.members),
        (0, 2, 2)
    );
    // One booting, one running: still none.
    let mut s = state(&p, vec![up("n1")], vec![booting("b", NOW - MIN)]);
    s.instances[0].state = InstanceState::Provisioning;
    assert_eq!(provisioned(&decide(&s, NOW)), 0);
}

/// Navarch counted cordoned and draining nodes as healthy capacity.
#[test]
fn navarch_cordoned_draining_unhealthy_and_offline_nodes_are_not_capacity() {
    let p = pool(4, 8, |s| s.auto_replace = true);
    let nodes = vec![
        up("a"),
        node("b", Status::Cordoned, Health::Healthy, Connectivity::Online),
        node("c", Status::Draining, Health::Healthy, Connectivity::Online),
        node("d", Status::Active, Health::Healthy, Connectivity::Offline),
        sick("e", Status::Cordoned),
    ];
    let d = decide(&state(&p, nodes, vec![]), NOW);
    assert_eq!((d.counts.serving, d.counts.members), (1, 5));
    assert_eq!(provisioned(&d), 3, "{:?}", d.actions);
}

#[test]
fn never_above_max_with_booting_instances_included() {
    let p = pool(1, 4, |_| {});
    let mut s = state(&p, vec![up("a"), up("b")], vec![booting("c", NOW)]);
    s.manual_target = Some(10);
    let d = decide(&s, NOW);
    assert_eq!((d.target, provisioned(&d)), (4, 1));
    assert!(
        d.reasons[0].contains("manual target 10, held within 1..4"),
        "{:?}",
        d.reasons
    );
    // At max with a node offline: nothing more, and the reason says so.
    let mut s = state(
        &p,
        vec![
            up("a"),
            up("b"),
            up("c"),
            node("d", Status::Active, Health::Healthy, Connectivity::Offline),
        ],
        vec![],
    );
    s.manual_target = Some(4);
    let d = decide(&s, NOW);
    assert_eq!(provisioned(&d), 0);
    assert!(
        d.reasons.iter().any(|r| r.contains("at max_nodes: 4 of 4")),
        "{:?}",
        d.reasons
    );
}

#[test]
fn scale_up_and_scale_down_have_separate_cooldowns_and_min_is_not_held_by_them() {
    let p = pool(3, 10, |_| {});
    // (serving, manual target, last up ago, last down ago) → (provisioned, drains)
    for (serving, target, up_ago, down_ago, want) in [
        (4, 6, Some(30_000), None, (0, 0)),  // up cooldown: 30 s left
        (4, 6, Some(60_000), None, (2, 0)),  // cooldown over
        (1, 6, Some(30_000), None, (2, 0)),  // below min: up to min only
        (6, 3, None, Some(4 * MIN), (0, 0)), // down cooldown: 1 min left
        (6, 3, None, Some(5 * MIN), (0, 3)), // cooldown over
        (6, 3, Some(2 * MIN), Some(60 * MIN), (0, 0)), // a recent scale-up holds scale-down
    ] {
        let nodes = (0..serving).map(|i| up(&format!("n{i}"))).collect();
        let mut s = state(&p, nodes, vec![]);
        s.manual_target = Some(target);
        s.last_scale_up_ms = up_ago.map(|a| NOW - a);
        s.last_scale_down_ms = down_ago.map(|a| NOW - a);
        let d = decide(&s, NOW);
        let drains = node_actions(&d)
            .iter()
            .filter(|a| a.starts_with("drain"))
            .count() as u32;
        assert_eq!(
            (provisioned(&d), drains),
            want,
            "{serving}→{target} {up_ago:?} {down_ago:?}: {:?}",
            d.reasons
        );
        assert_eq!(d.starts_scale_down, drains > 0);
    }
    let mut s = state(&p, (0..4).map(|i| up(&format!("n{i}"))).collect(), vec![]);
    s.manual_target = Some(6);
    s.last_scale_up_ms = Some(NOW - 30_000);
    let d = decide(&s, NOW);
    assert_eq!(d.scale_up_cooldown_left_ms, 30_000);
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("scale-up cooldown: 30 s left")),
        "{:?}",
        d.reasons
    );
}

#[test]
fn scale_down_picks_unhealthy_then_cordoned_then_idle_never_busy_or_self_joined() {
    let p = pool(1, 10, |s| {
        s.remediation.action = Some(crate::model::pool::Plan::Cordon)
    });
    let mut busy = up("b-busy");
    busy.busy = true;
    let mut own = up("f-joined-itself");
    own.instance_id = None;
    let nodes = vec![
        up("a-idle"),
        busy,
        node(
            "c-cordoned",
            Status::Cordoned,
            Health::Healthy,
            Connectivity::Online,
        ),
        sick("d-sick", Status::Cordoned),
        up("e-idle"),
        own,
    ];
    let mut s = state(&p, nodes, vec![]);
    s.manual_target = Some(2);
    let d = decide(&s, NOW);
    // 6 members, target 2: four leave; serving (a, b, e, f) stays at the target.
    assert_eq!(
        node_actions(&d),
        vec![
            "drain:d-sick",
            "drain:c-cordoned",
            "drain:a-idle",
            "drain:e-idle"
        ]
    );
    // With target 3 only one idle node may go.
    s.manual_target = Some(3);
    let d = decide(&s, NOW);
    assert_eq!(
        node_actions(&d),
        vec!["drain:d-sick", "drain:c-cordoned", "drain:a-idle"]
    );
}

#[test]
fn scale_down_drains_before_it_terminates_and_finishes_during_the_cooldown() {
    let p = pool(1, 10, |_| {});
    let mut drained = node("a", Status::Cordoned, Health::Healthy, Connectivity::Online);
    drained.drained = true;
    let draining = node("b", Status::Draining, Health::Healthy, Connectivity::Online);
    let mut s = state(&p, vec![drained, draining, up("c"), up("d")], vec![]);
    s.manual_target = Some(2);
    s.last_scale_down_ms = Some(NOW - MIN);
    let d = decide(&s, NOW);
    assert_eq!(
        node_actions(&d),
        vec!["terminate:a"],
        "b is under way; c and d serve the target"
    );
    let Action::TerminateNode { instance, .. } = &d.actions[0] else {
        panic!()
    };
    assert_eq!(
        instance.as_deref(),
        Some("i-a"),
        "the provider terminates its instance"
    );
    assert!(!d.starts_scale_down, "finishing is not starting");
}

#[test]
fn the_autoscaler_sets_the_target_within_bounds_and_says_why() {
    let p = pool(1, 3, |s| {
        s.autoscaler = Some(AutoscalerSpec::Reactive(ReactiveSpec {
            scale_up_threshold: 0.8,
            scale_down_threshold: 0.3,
            step: 5,
        }))
    });
    let mut s = state(&p, vec![up("a"), up("b")], vec![]);
    s.metrics.utilization = Some(0.95);
    let d = decide(&s, NOW);
    assert_eq!((d.target, provisioned(&d)), (3, 1));
    assert!(
        d.reasons[0].starts_with("reactive: utilization 95% above 80%"),
        "{:?}",
        d.reasons
    );
    // No samples: the last target holds.
    s.metrics.utilization = None;
    s.last_target = Some(2);
    assert_eq!(decide(&s, NOW).target, 2);
    // The manual target wins over the autoscaler.
    s.manual_target = Some(1);
    s.metrics.utilization = Some(0.95);
    assert_eq!(decide(&s, NOW).target, 1);
}

/// Navarch kept the pool's nodes in memory: after a restart it could neither scale down
/// nor replace. `decide` reads only the state it is given, so the same stored state gives
/// the same decision, ids included, in a new process.
#[test]
fn navarch_the_same_stored_state_gives_the_same_decision_after_a_restart() {
    let p = pool(2, 6, |s| s.auto_replace = true);
    let mut s = state(
        &p,
        vec![up("a"), up("b"), up("c"), sick("d", Status::Active)],
        vec![],
    );
    s.manual_target = Some(3);
    let first = decide(&s, NOW);
    let p2 = pool(2, 6, |s| s.auto_replace = true);
    let mut s2 = state(&p2, s.nodes.clone(), vec![]);
    s2.manual_target = Some(3);
    assert_eq!(decide(&s2, NOW), first);
    assert_eq!(node_actions(&first), vec!["cordon:d"]);
}

/// The API shows the last decisions as JSON: each action with its kind and target.
#[test]
fn a_decision_serializes_with_each_action_named() {
    let p = pool(1, 4, |_| {});
    let mut s = state(&p, vec![up("a"), up("b")], vec![]);
    s.manual_target = Some(1);
    let d = decide(&s, NOW);
    let j = serde_json::to_value(&d).expect("serializes");
    assert_eq!(j["target"], 1);
    assert_eq!(j["actions"][0]["action"], "drain");
    assert_eq!(j["actions"][0]["node"], "a");
    assert_eq!(j["counts"]["serving"], 2);
}
