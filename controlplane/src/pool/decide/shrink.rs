//! Scale-down: above the target, nodes leave in this order: unhealthy ones that the plan
//! does not terminate, then cordoned ones, then idle ones (no busy slots, no compute
//! processes). Never a busy node, never serving capacity below the target (so never below
//! `min_nodes`), never a node that joined by itself, and always a drain before the
//! terminate. A new drain waits for the scale-down cooldown (after the last scale-down
//! and after the last scale-up); finishing one (the terminate after the drain) does not.

use crate::model::pool::Plan;
use crate::model::{Health, Status};

use super::decision::{Action, Decision};
use super::state::{NodeView, PoolState};

pub(super) fn scale_down(s: &PoolState<'_>, d: &mut Decision, _now_ms: i64) {
    let plan = s.pool.spec.plan(Plan::Cordon);
    let terminating_sick = if plan >= Plan::CordonDrainTerminate {
        d.counts.unhealthy
    } else {
        0
    };
    let mut excess = d
        .counts
        .members
        .saturating_sub(d.target)
        .saturating_sub(terminating_sick);
    if excess == 0 {
        return;
    }
    let acted = |d: &Decision, id: &str| {
        d.actions.iter().any(|a| match a {
            Action::Cordon { node, .. }
            | Action::Drain { node, .. }
            | Action::TerminateNode { node, .. }
            | Action::Hold { node, .. } => node == id,
            _ => false,
        })
    };
    let rank = |n: &NodeView| -> Option<(u8, u8)> {
        // A busy node is never drained; one already draining is under way, busy or not.
        let starts = n.status != Status::Draining && !(n.status == Status::Cordoned && n.drained);
        if n.instance_id.is_none() || (starts && n.busy) || n.is_gone() {
            return None;
        }
        let category = match (n.health == Health::Unhealthy, n.status) {
            (true, Status::Cordoned | Status::Draining) if plan < Plan::CordonDrainTerminate => 0,
            (false, Status::Cordoned | Status::Draining) => 1,
            _ if n.is_serving() => 2,
            _ => return None,
        };
        // Furthest along first: draining, drained, cordoned, active.
        let progress = match (n.status, n.drained) {
            (Status::Draining, _) => 0,
            (Status::Cordoned, true) => 1,
            (Status::Cordoned, false) => 2,
            _ => 3,
        };
        Some((category, progress))
    };
    let mut picks: Vec<(u8, u8, &NodeView)> = s
        .nodes
        .iter()
        .filter_map(|n| rank(n).map(|(c, p)| (c, p, n)))
        .collect();
    picks.sort_by(|a, b| (a.0, a.1, &a.2.id).cmp(&(b.0, b.1, &b.2.id)));
    let mut serving = d.counts.serving;
    let mut held_by_cooldown = 0;
    for (_, _, n) in picks {
        if excess == 0 {
            break;
        }
        if acted(d, &n.id) {
            continue;
        }
        let is_serving = n.is_serving();
        if is_serving && serving <= d.target {
            break;
        }
        let reason = format!(
            "scale-down: {} members, target {}",
            d.counts.members, d.target
        );
        match (n.status, n.drained) {
            (Status::Draining, _) => {}
            (Status::Cordoned, true) => d.actions.push(Action::TerminateNode {
                node: n.id.clone(),
                instance: n.instance_id.clone(),
                reason,
            }),
            _ if d.scale_down_cooldown_left_ms > 0 => held_by_cooldown += 1,
            _ => {
                d.actions.push(Action::Drain {
                    node: n.id.clone(),
                    reason,
                });
                d.starts_scale_down = true;
            }
        }
        if is_serving {
            serving -= 1;
        }
        excess -= 1;
    }
    if held_by_cooldown > 0 {
        d.reasons.push(format!(
            "{held_by_cooldown} node(s) to remove; scale-down cooldown: {} s left",
            (d.scale_down_cooldown_left_ms + 999) / 1000
        ));
    }
}
