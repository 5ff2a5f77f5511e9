//! The loop's replacement, timeout, budget, guard and restart behaviour (see `tests.rs` for
//! the harness).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::tests::{ctx_for, harness, small};
use super::*;
use crate::clock::Clock;
use crate::model::pool::InstanceState;
use crate::model::{Health, Status};
use crate::pool::provider::fake::Call;

#[test]
fn an_unhealthy_node_is_replaced_first_then_drained_and_terminated() {
    // Navarch terminated before it provisioned, skipped the drain, and ignored max.
    let h = harness(small(json!({})));
    h.tick();
    let nodes = h.join_all();
    h.clock.advance(120_000);
    h.tick();
    let bad = &nodes[0];
    let now = h.clock.now_ms();
    h.store
        .set_health(bad, Health::Unhealthy, "fatal-xid: XID 79", "policy", now)
        .unwrap();
    h.clock.advance(1000);
    h.tick();
    assert_eq!(
        h.fake.count(Call::Provision),
        3,
        "the replacement comes first"
    );
    assert_eq!(
        h.store.node(bad).unwrap().status().unwrap(),
        Status::Cordoned
    );
    let cmds = h.store.commands(bad, 10).unwrap();
    assert_eq!(
        cmds.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(),
        ["cordon"],
        "no drain before the replacement serves"
    );
    h.store
        .finish_command(
            &cmds[0].id,
            crate::model::CommandState::Succeeded,
            "ok",
            now,
        )
        .unwrap();
    h.clock.advance(1000);
    h.tick();
    assert_eq!(
        h.store.commands(bad, 10).unwrap().len(),
        1,
        "still waiting for the replacement"
    );
    h.join_all();
    h.clock.advance(1000);
    h.tick();
    let drain = h
        .store
        .commands(bad, 10)
        .unwrap()
        .into_iter()
        .find(|c| c.kind == "drain")
        .expect("drained once the replacement serves");
    h.store
        .finish_command(
            &drain.id,
            crate::model::CommandState::Succeeded,
            "drained",
            h.clock.now_ms(),
        )
        .unwrap();
    h.clock.advance(1000);
    h.tick();
    assert_eq!(
        h.store.node(bad).unwrap().status().unwrap(),
        Status::Terminated
    );
    assert_eq!(h.fake.count(Call::Terminate), 1);
    let inst = h.store.instance_of_node(bad).unwrap().unwrap();
    assert_eq!(inst.state().unwrap(), InstanceState::Terminated);
    h.clock.advance(1000);
    h.tick();
    assert_eq!(
        h.fake.count(Call::Provision),
        3,
        "back at two serving, nothing more"
    );
}

#[test]
fn an_instance_that_never_registers_is_failed_terminated_and_replaced() {
    let h = harness(small(json!({"min_nodes": 1, "registration_timeout": "2m"})));
    h.tick();
    let first = h.in_state(InstanceState::Registering).remove(0);
    h.clock.advance(121_000);
    h.tick();
    assert_eq!(
        h.store.instance(&first.id).unwrap().state().unwrap(),
        InstanceState::Failed
    );
    let node = h.store.node(first.node_id.as_deref().unwrap()).unwrap();
    assert_eq!(
        node.status().unwrap(),
        Status::Terminated,
        "its pre-created node is not capacity to wait for"
    );
    assert_eq!(
        h.fake.count(Call::Provision),
        2,
        "replaced in the evaluation that failed it, not one later"
    );
    assert_eq!(h.in_state(InstanceState::Registering).len(), 1);
    h.clock.advance(1000);
    h.tick();
    assert_eq!(h.fake.count(Call::Provision), 2, "and only once");
    assert_eq!(
        h.store.instance(&first.id).unwrap().state().unwrap(),
        InstanceState::Terminated
    );
    assert_eq!(h.fake.count(Call::Terminate), 1);
}

#[test]
fn a_budget_full_holds_nodes_visibly_and_managed_pools_are_left_to_the_pool_manager() {
    let h = harness(small(
        json!({"min_nodes": 4, "budget": {"max_percent": 100, "max_nodes": 1}}),
    ));
    h.tick();
    let nodes = h.join_all();
    h.clock.advance(120_000);
    h.tick();
    assert!(h.mgr.ctx.managed.contains("p"));
    let now = h.clock.now_ms();
    for n in &nodes[..3] {
        h.store
            .set_health(n, Health::Unhealthy, "fatal-xid", "policy", now)
            .unwrap();
    }
    h.tick();
    let held = h.mgr.ctx.held.all();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.values().all(|h| h.reason.contains("budget full")));
    let cordoned = nodes
        .iter()
        .filter(|n| h.store.node(n).unwrap().status().unwrap() == Status::Cordoned)
        .count();
    assert_eq!(cordoned, 1);
}

#[test]
fn a_process_that_may_not_act_does_nothing() {
    struct No;
    impl Leader for No {
        fn may_act(&self) -> bool {
            false
        }
    }
    let mut h = harness(small(json!({})));
    h.mgr.ctx.leader = Arc::new(No);
    let r = h.tick();
    assert_eq!(r, TickReport::default());
    assert_eq!(h.fake.count(Call::Provision), 0);
}

#[test]
fn nothing_is_lost_in_a_restart() {
    // Navarch kept the pool's node list in memory: after a restart it could neither scale
    // down nor replace. A new manager over the same database carries on.
    let h = harness(small(json!({})));
    h.tick();
    h.join_all();
    let ctx2 = ctx_for(h.store.clone(), &h.clock, &h._dir.0);
    ctx2.providers.preset("p", "fake", h.fake.clone());
    let m2 = PoolManager::new(ctx2);
    h.clock.advance(120_000);
    m2.tick().unwrap();
    assert!(m2.ctx.in_flight.wait_idle(Duration::from_secs(5)));
    assert_eq!(h.fake.count(Call::Provision), 2);
    assert_eq!(h.in_state(InstanceState::Running).len(), 2);
}
