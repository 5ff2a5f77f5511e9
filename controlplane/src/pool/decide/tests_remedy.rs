//! `decide` for unhealthy nodes: replacement order, the budget, the plan.

use super::tests::*;
use super::*;
use crate::model::pool::Plan;
use crate::model::Status;

/// Navarch's replace terminated before it provisioned and skipped the drain: here the
/// replacement comes first while below max, then the drain, then the terminate.
#[test]
fn navarch_replace_provisions_first_below_max_then_drains_then_terminates() {
    let p = pool(4, 5, |s| s.auto_replace = true);
    let mut s = state(
        &p,
        vec![up("a"), up("b"), up("c"), sick("u", Status::Active)],
        vec![],
    );
    let d = decide(&s, NOW);
    assert_eq!(
        (provisioned(&d), node_actions(&d)),
        (1, vec!["cordon:u".to_string()])
    );
    // Cordoned, the replacement booting: no drain yet.
    s.nodes[3].status = Status::Cordoned;
    s.instances.push(booting("r", NOW));
    s.last_scale_up_ms = Some(NOW);
    let d = decide(&s, NOW + 1);
    assert_eq!((provisioned(&d), node_actions(&d)), (0, vec![]));
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("wait for their replacement")),
        "{:?}",
        d.reasons
    );
    // The replacement serves: drain, then terminate.
    s.instances.clear();
    s.nodes.push(up("r"));
    assert_eq!(node_actions(&decide(&s, NOW + 2)), vec!["drain:u"]);
    s.nodes[3].drained = true;
    let d = decide(&s, NOW + 3);
    assert_eq!(
        (provisioned(&d), node_actions(&d)),
        (0, vec!["terminate:u".to_string()])
    );
}

/// Navarch's replace also ignored max: at max the unhealthy node is drained first, and
/// its replacement comes once it is gone.
#[test]
fn navarch_at_max_the_unhealthy_node_is_drained_before_any_replacement() {
    let p = pool(4, 4, |s| s.auto_replace = true);
    let mut s = state(
        &p,
        vec![up("a"), up("b"), up("c"), sick("u", Status::Cordoned)],
        vec![],
    );
    let d = decide(&s, NOW);
    assert_eq!(
        (provisioned(&d), node_actions(&d)),
        (0, vec!["drain:u".to_string()])
    );
    s.nodes[3].status = Status::Terminating;
    assert_eq!(provisioned(&decide(&s, NOW)), 1);
}

/// …and ignored the cooldown: a replacement above min waits for it (the unhealthy node
/// stays cordoned meanwhile, its replacement still to come).
#[test]
fn navarch_a_replacement_above_min_waits_for_the_scale_up_cooldown() {
    let p = pool(2, 6, |s| s.auto_replace = true);
    let mut s = state(
        &p,
        vec![up("a"), up("b"), up("c"), sick("u", Status::Cordoned)],
        vec![],
    );
    s.manual_target = Some(4);
    s.last_scale_up_ms = Some(NOW - 10_000);
    let d = decide(&s, NOW);
    assert_eq!((provisioned(&d), node_actions(&d)), (0, vec![]));
    assert!(
        d.reasons.iter().any(|r| r.contains("scale-up cooldown")),
        "{:?}",
        d.reasons
    );
    s.last_scale_up_ms = Some(NOW - MIN);
    assert_eq!(provisioned(&decide(&s, NOW)), 1);
}

/// Issue #13: a fatal XID on 5 of 10 nodes with a budget of 2 → 2 remediated, 3 held and
/// visible; the held ones go as the first return.
#[test]
fn five_unhealthy_of_ten_with_a_budget_of_two_cordons_two_and_holds_three() {
    let p = pool(1, 10, |s| {
        s.budget.max_percent = 100.0;
        s.budget.max_nodes = 2;
    });
    let mut nodes: Vec<NodeView> = (0..5).map(|i| up(&format!("ok{i}"))).collect();
    nodes.extend((0..5).map(|i| sick(&format!("bad{i}"), Status::Active)));
    let mut s = state(&p, nodes, vec![]);
    s.manual_target = Some(10);
    let d = decide(&s, NOW);
    assert_eq!(
        node_actions(&d),
        vec![
            "cordon:bad0",
            "cordon:bad1",
            "hold:bad2",
            "hold:bad3",
            "hold:bad4"
        ]
    );
    assert_eq!((d.counts.remediating, d.counts.held), (2, 3));
    let Some(Action::Hold { reason, .. }) =
        d.actions.iter().find(|a| matches!(a, Action::Hold { .. }))
    else {
        panic!()
    };
    assert!(reason.contains("pool remediation budget full"), "{reason}");
    // Two are out; then one of them is terminated: one held node goes next.
    s.nodes[5].status = Status::Cordoned;
    s.nodes[6].status = Status::Cordoned;
    let d = decide(&s, NOW);
    assert!(
        node_actions(&d)
            .iter()
            .filter(|a| a.starts_with("hold"))
            .count()
            == 3
    );
    s.nodes[5].status = Status::Terminated;
    let d = decide(&s, NOW);
    assert!(
        node_actions(&d).contains(&"cordon:bad2".to_string()),
        "{:?}",
        d.actions
    );
}

#[test]
fn the_fleet_budget_holds_a_pool_with_room_of_its_own() {
    let p = pool(1, 10, |s| s.budget.max_nodes = 5);
    let mut s = state(&p, vec![up("a"), sick("u", Status::Active)], vec![]);
    s.fleet.spec.max_nodes = 3;
    s.fleet.out = 3;
    let d = decide(&s, NOW);
    assert_eq!(node_actions(&d), vec!["hold:u"]);
}

/// Without auto_replace an unhealthy node counts toward the size while it is there: it is
/// remediated by the plan, and the pool refills once it is gone (no surge).
#[test]
fn without_auto_replace_the_pool_refills_after_the_unhealthy_node_is_gone() {
    // Terminating is the operator's explicit plan here: without `auto_replace` a pool's plan
    // is inherited (`cordon` by default), never escalated by declaring the pool.
    let p = pool(1, 8, |s| {
        s.remediation.action = Some(Plan::CordonDrainTerminate)
    });
    let mut s = state(
        &p,
        vec![up("a"), up("b"), up("c"), sick("u", Status::Active)],
        vec![],
    );
    s.manual_target = Some(4);
    let d = decide(&s, NOW);
    assert_eq!(
        (provisioned(&d), node_actions(&d)),
        (0, vec!["cordon:u".to_string()])
    );
    s.nodes[3].status = Status::Cordoned;
    assert_eq!(
        node_actions(&decide(&s, NOW)),
        vec!["drain:u"],
        "no waiting without auto_replace"
    );
    s.nodes[3].status = Status::Terminating;
    assert_eq!(provisioned(&decide(&s, NOW)), 1);
}

#[test]
fn the_plan_decides_how_far_remediation_goes() {
    for (plan, want) in [
        (Plan::Nothing, vec![]),
        (Plan::Cordon, vec![]),
        (Plan::CordonDrain, vec!["drain:u"]),
        (Plan::CordonDrainTerminate, vec!["drain:u"]),
    ] {
        let p = pool(1, 8, |s| s.remediation.action = Some(plan));
        let mut s = state(&p, vec![up("a"), sick("u", Status::Cordoned)], vec![]);
        s.manual_target = Some(2);
        assert_eq!(node_actions(&decide(&s, NOW)), want, "{plan:?}");
        s.nodes[1].drained = true;
        let terminates = node_actions(&decide(&s, NOW)) == vec!["terminate:u"];
        assert_eq!(terminates, plan == Plan::CordonDrainTerminate, "{plan:?}");
    }
    let p = pool(1, 8, |s| s.remediation.action = Some(Plan::Nothing));
    let s = state(&p, vec![up("a"), sick("u", Status::Active)], vec![]);
    assert_eq!(node_actions(&decide(&s, NOW)), Vec::<String>::new());
}

/// A newcomer's find: with the budget at 0 ("pauses remediation"), an unhealthy node an
/// operator cordoned to look at was drained and terminated by the pool manager. The steps
/// after the cordon are within the budget too; a raised budget lets them go on.
#[test]
fn a_budget_of_zero_pauses_the_drain_of_a_node_an_operator_cordoned() {
    let p = pool(4, 4, |s| {
        s.remediation.action = Some(Plan::CordonDrainTerminate);
        s.budget.max_percent = 100.0;
        s.budget.max_nodes = 0;
    });
    let mut s = state(
        &p,
        vec![up("a"), up("b"), up("c"), sick("u", Status::Cordoned)],
        vec![],
    );
    let d = decide(&s, NOW);
    assert!(node_actions(&d).is_empty(), "{:?}", d.actions);
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("wait for the remediation budget")),
        "{:?}",
        d.reasons
    );
    // Drained already (by hand): not terminated either.
    s.nodes[3].drained = true;
    assert!(node_actions(&decide(&s, NOW)).is_empty());
    // The budget raised to 1: the terminate goes on.
    s.holds.budget = Some(crate::model::pool::BudgetSpec {
        max_percent: 100.0,
        max_nodes: 1,
    });
    assert_eq!(node_actions(&decide(&s, NOW)), vec!["terminate:u"]);
}
