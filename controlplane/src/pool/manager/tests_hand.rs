//! An operator's hand on the budget (a release, a raise, the fleet's too) and the
//! utilization history across a restart (see `tests.rs` for the harness).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::tests::{ctx_for, harness, small, H};
use super::*;
use crate::clock::Clock;
use crate::model::observation::{GpuObservation, NodeObservation};
use crate::model::pool::BudgetSpec;
use crate::model::{Health, Status};
use crate::store::rows::NewAudit;
use crate::store::{BudgetScope, ReleaseRow};

/// A pool at four serving nodes whose budget lets one node out at a time; its node ids,
/// sorted.
fn four_with_a_budget_of_one() -> (H, Vec<String>) {
    let mut h = harness(small(
        json!({"min_nodes": 4, "budget": {"max_percent": 100, "max_nodes": 1}}),
    ));
    // The fleet's budget (by default 10 %: one node of four) is not what is tested here.
    h.mgr.ctx.settings.fleet_budget = BudgetSpec {
        max_percent: 100.0,
        max_nodes: 100,
    };
    h.tick();
    let mut nodes = h.join_all();
    nodes.sort();
    h.clock.advance(120_000);
    h.tick();
    (h, nodes)
}

fn sicken(h: &H, nodes: &[&String]) {
    let now = h.clock.now_ms();
    for n in nodes {
        h.store
            .set_health(n, Health::Unhealthy, "fatal-xid: XID 79", "policy", now)
            .unwrap();
    }
}

fn status(h: &H, n: &str) -> Status {
    h.store.node(n).unwrap().status().unwrap()
}

fn raise(h: &H, scope: BudgetScope, max_nodes: u32) {
    let now = h.clock.now_ms();
    let spec = BudgetSpec {
        max_percent: 100.0,
        max_nodes,
    };
    let entry = NewAudit::ok("alice", "budget.set", &scope.key(), json!({}), now);
    h.store
        .set_budget(&scope, spec, "alice", now, entry)
        .unwrap();
}

#[test]
fn a_release_remediates_exactly_that_node_past_the_budget_and_is_audited() {
    let (h, n) = four_with_a_budget_of_one();
    sicken(&h, &[&n[1], &n[2], &n[3]]);
    h.tick();
    assert_eq!(status(&h, &n[1]), Status::Cordoned);
    let held = h.mgr.ctx.held.all();
    assert_eq!(held.keys().collect::<Vec<_>>(), [&n[2], &n[3]]);
    // The operator releases the last held node, not the next in line.
    let now = h.clock.now_ms();
    let release = ReleaseRow {
        node_id: n[3].clone(),
        pool: "p".into(),
        released_by: "alice".into(),
        released_at: now,
    };
    let entry = NewAudit::ok("alice", "node.release", &n[3], json!({}), now);
    h.store.release_node(&release, entry).unwrap();
    h.clock.advance(1000);
    h.tick();
    assert_eq!(status(&h, &n[3]), Status::Cordoned, "released: remediated");
    assert_eq!(status(&h, &n[2]), Status::Active, "still held");
    assert_eq!(
        h.mgr.ctx.held.all().keys().collect::<Vec<_>>(),
        [&n[2]],
        "only the released node left the holds"
    );
    let cordon = &h.store.commands(&n[3], 10).unwrap()[0];
    assert_eq!(cordon.kind, "cordon");
    assert!(h.store.releases().unwrap().is_empty(), "carried out once");
    let audit = h.store.audit_log(50).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.actor == "alice" && a.action == "node.release" && a.target == n[3]),
        "{audit:?}"
    );
    // The budget counts the released node: nothing more goes while it is out.
    h.clock.advance(1000);
    h.tick();
    assert_eq!(status(&h, &n[2]), Status::Active);
}

#[test]
fn a_raised_budget_lets_the_held_nodes_through_longest_held_first() {
    let (h, n) = four_with_a_budget_of_one();
    sicken(&h, &[&n[1], &n[2], &n[3]]);
    h.tick();
    assert_eq!(status(&h, &n[1]), Status::Cordoned);
    // n[0] turns bad later: held after n[2] and n[3], though its id sorts first.
    h.clock.advance(10_000);
    sicken(&h, &[&n[0]]);
    h.tick();
    assert_eq!(h.mgr.ctx.held.all().len(), 3);
    let mut order = Vec::new();
    for budget in [2, 3, 4] {
        raise(&h, BudgetScope::Pool("p".into()), budget);
        h.clock.advance(1000);
        h.tick();
        let now_out: Vec<&String> = n
            .iter()
            .filter(|x| status(&h, x) == Status::Cordoned && !order.contains(x))
            .filter(|x| *x != &n[1])
            .collect();
        assert_eq!(now_out.len(), 1, "one more per raise: {now_out:?}");
        order.push(now_out[0]);
    }
    assert_eq!(order, [&n[2], &n[3], &n[0]], "longest held first");
    assert!(h.mgr.ctx.held.all().is_empty());
    let sets = h.store.audit_log(100).unwrap();
    assert_eq!(
        sets.iter()
            .filter(|a| a.action == "budget.set" && a.actor == "alice")
            .count(),
        3
    );
}

#[test]
fn a_raised_fleet_budget_lets_held_nodes_through_and_survives_a_restart() {
    let (mut h, n) = four_with_a_budget_of_one();
    raise(&h, BudgetScope::Pool("p".into()), 4);
    h.mgr.ctx.settings.fleet_budget = BudgetSpec {
        max_percent: 100.0,
        max_nodes: 1,
    };
    sicken(&h, &[&n[0], &n[1]]);
    h.tick();
    let held = h.mgr.ctx.held.all();
    assert_eq!(held.keys().collect::<Vec<_>>(), [&n[1]]);
    assert!(held[&n[1]]
        .reason
        .starts_with("fleet remediation budget full"));
    raise(&h, BudgetScope::Fleet, 2);
    // A new manager over the same database reads the raised fleet budget.
    let mut ctx = ctx_for(h.store.clone(), &h.clock, &h._dir.0);
    ctx.settings.fleet_budget = h.mgr.ctx.settings.fleet_budget;
    ctx.providers.preset("p", "fake", h.fake.clone());
    h.mgr = PoolManager::new(ctx);
    h.clock.advance(1000);
    h.tick();
    assert_eq!(status(&h, &n[1]), Status::Cordoned);
}

fn observe(map: &Mutex<HashMap<String, Arc<NodeObservation>>>, nodes: &[String], u: f64) {
    let mut m = map.lock().unwrap();
    for id in nodes {
        let mut o = NodeObservation::default();
        let mut g = GpuObservation::default();
        g.values.insert("utilization_ratio", u);
        o.gpus.insert(0, g);
        m.insert(id.clone(), Arc::new(o));
    }
}

fn last_reasons(h: &H) -> Vec<String> {
    let d = h.store.decisions("p", 1).unwrap().remove(0);
    serde_json::from_str(&d.reasons).unwrap()
}

#[test]
fn the_utilization_history_survives_a_restart_so_the_predictive_decision_is_the_same() {
    let predictive = json!({"type": "predictive", "window": "10m", "horizon": "5m",
        "target_utilization": 0.5, "max_step": 2, "min_samples": 3});
    let mut h = harness(small(
        json!({"min_nodes": 2, "max_nodes": 2, "autoscaler": predictive}),
    ));
    let obs: Arc<Mutex<HashMap<String, Arc<NodeObservation>>>> = Arc::default();
    h.mgr.ctx.observations = obs.clone();
    h.tick();
    let nodes = h.join_all();
    for u in [0.3, 0.4, 0.5, 0.6] {
        observe(&obs, &nodes, u);
        h.clock.advance(60_000);
        h.tick();
    }
    let first = h.mgr.clone();
    // A second manager, as after a restart, over the same database, at the same time.
    let mut ctx = ctx_for(h.store.clone(), &h.clock, &h._dir.0);
    ctx.observations = obs.clone();
    ctx.providers.preset("p", "fake", h.fake.clone());
    h.mgr = PoolManager::new(ctx);
    observe(&obs, &nodes, 0.7);
    h.clock.advance(60_000);
    h.tick();
    let restarted = last_reasons(&h);
    assert!(
        restarted[0].starts_with("predictive: utilization forecast"),
        "{restarted:?}"
    );
    // The first manager, never restarted, decides the same from its memory.
    h.mgr = first;
    h.tick();
    assert_eq!(last_reasons(&h), restarted);
    // Stored: only the window's samples (10 min at one a minute, at most 11).
    let kept = h.store.utilization("p", 0, 10_000).unwrap();
    assert_eq!(kept.len(), 5, "{kept:?}");
    for _ in 0..15 {
        h.clock.advance(60_000);
        h.tick();
    }
    let kept = h.store.utilization("p", 0, 10_000).unwrap();
    assert!(kept.len() <= 11, "pruned to the window: {}", kept.len());
    assert!(kept[0].0 >= h.clock.now_ms() - 600_000);
}
