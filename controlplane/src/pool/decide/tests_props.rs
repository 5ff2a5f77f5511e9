//! `decide` over 5,000 random pools (seeded): the bounds hold whatever the state.

use std::collections::BTreeMap;

use super::tests::*;
use super::*;
use crate::model::pool::Plan;
use crate::model::{Connectivity, Health, Status};

fn random_state<'a>(rng: &mut fastrand::Rng, pool: &'a crate::pool::Pool) -> PoolState<'a> {
    let statuses = [
        Status::Pending,
        Status::Active,
        Status::Active,
        Status::Active,
        Status::Cordoned,
        Status::Draining,
        Status::Terminating,
        Status::Terminated,
    ];
    let healths = [
        Health::Healthy,
        Health::Healthy,
        Health::Degraded,
        Health::Unknown,
        Health::Unhealthy,
    ];
    let nodes = (0..rng.usize(0..12))
        .map(|i| {
            let mut n = node(
                &format!("n{i}"),
                statuses[rng.usize(0..statuses.len())],
                healths[rng.usize(0..healths.len())],
                if rng.u8(0..8) == 0 {
                    Connectivity::Offline
                } else {
                    Connectivity::Online
                },
            );
            n.busy = rng.bool();
            n.drained = rng.bool();
            if rng.u8(0..5) == 0 {
                n.instance_id = None;
            }
            n
        })
        .collect();
    let instances = (0..rng.usize(0..4))
        .map(|i| {
            let mut b = booting(&format!("b{i}"), NOW - rng.i64(0..15 * MIN));
            b.state = [
                InstanceState::Provisioning,
                InstanceState::Registering,
                InstanceState::Failed,
            ][rng.usize(0..3)];
            b
        })
        .collect();
    let mut s = state(pool, nodes, instances);
    s.manual_target = rng.bool().then(|| rng.u32(0..15));
    s.last_scale_up_ms = rng.bool().then(|| NOW - rng.i64(0..10 * MIN));
    s.last_scale_down_ms = rng.bool().then(|| NOW - rng.i64(0..10 * MIN));
    s
}

#[test]
fn random_pools_keep_every_bound() {
    let mut rng = fastrand::Rng::with_seed(13);
    let mut kinds: BTreeMap<&str, u32> = BTreeMap::new();
    for case in 0..5_000 {
        let (min, max) = (rng.u32(0..4), rng.u32(4..10));
        let plans = [
            Plan::Nothing,
            Plan::Cordon,
            Plan::CordonDrain,
            Plan::CordonDrainTerminate,
        ];
        let plan = plans[rng.usize(0..4)];
        let auto = rng.bool();
        let p = pool(min, max, |s| {
            s.auto_replace = auto;
            s.remediation.action = Some(plan);
        });
        let s = random_state(&mut rng, &p);
        let d = decide(&s, NOW);
        let ctx = format!("case {case}: {:?}\n{:?}\n{:?}", s.nodes, s.instances, d);
        assert_eq!(decide(&s, NOW), d, "deterministic: {ctx}");
        assert!((min..=max).contains(&d.target), "{ctx}");
        if d.counts.members <= max {
            assert!(
                d.counts.members + provisioned(&d) <= max,
                "never above max: {ctx}"
            );
        }
        for a in &d.actions {
            let k = match a {
                Action::Provision { .. } => "provision",
                Action::Cordon { .. } => "cordon",
                Action::Drain { .. } => "drain",
                Action::TerminateNode { .. } => "terminate_node",
                Action::TerminateInstance { .. } => "terminate_instance",
                Action::FailInstance { .. } => "fail_instance",
                Action::Hold { .. } => "hold",
            };
            *kinds.entry(k).or_default() += 1;
        }
        let by_id: BTreeMap<&str, &NodeView> = s.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let mut seen = BTreeMap::new();
        let mut serving_drained = 0;
        for a in &d.actions {
            let (node, verb) = match a {
                Action::Cordon { node, .. } => (node, "cordon"),
                Action::Drain { node, .. } => (node, "drain"),
                Action::TerminateNode { node, .. } => (node, "terminate"),
                Action::Hold { node, .. } => (node, "hold"),
                _ => continue,
            };
            assert!(
                seen.insert(node.clone(), verb).is_none(),
                "one action per node: {ctx}"
            );
            let n = by_id[node.as_str()];
            let sick = n.health == Health::Unhealthy;
            if !sick {
                // Only scale-down acts on healthy nodes: never busy ones being started,
                // never ones that joined by themselves.
                assert!(
                    n.instance_id.is_some(),
                    "self-joined node scaled down: {ctx}"
                );
                assert!(!(verb == "drain" && n.busy), "busy node drained: {ctx}");
                assert!(verb == "drain" || verb == "terminate", "{ctx}");
            }
            if verb == "drain" && n.is_serving() {
                serving_drained += 1;
            }
            assert!(!n.is_gone(), "acted on a node already leaving: {ctx}");
        }
        assert!(
            serving_drained <= d.counts.serving.saturating_sub(d.target),
            "serving capacity never drained below the target: {ctx}"
        );
    }
    // The random pools reach every kind of action, often.
    assert_eq!(kinds.len(), 7, "{kinds:?}");
    assert!(kinds.values().all(|n| *n >= 100), "{kinds:?}");
}
