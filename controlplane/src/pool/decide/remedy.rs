//! Unhealthy nodes: the pool's remediation plan within the budget, and, with
//! `auto_replace`, the replacement before the drain while the pool is below `max_nodes`.
//!
//! Navarch's replace terminated before it provisioned, skipped the drain, and ignored the
//! cooldown and `max_nodes`. Here the replacement is ordinary capacity (an unhealthy node
//! is not capacity, so the scale-up provisions for it, under the cooldown and within
//! max), and the unhealthy node is drained, then terminated, only once its replacement
//! serves, or at once when nothing is coming (at max: drained first, which frees room).
//!
//! The budget is the operator's when one was set at run time ([`Holds::budget`]); a node
//! an operator released ([`Holds::released`]) is cordoned past it. When the budget frees,
//! the node held longest goes first.
//!
//! The budget also gates the steps after the cordon: an unhealthy node cordoned by someone
//! else (an operator looking at it) is drained and terminated only within the budget, so a
//! budget of 0 pauses remediation for it too instead of taking the machine away.

use crate::model::pool::Plan;
use crate::model::Status;
use crate::pool::budget::{Admission, Usage};

use super::decision::{Action, Decision};
use super::state::{Holds, PoolState};

pub(super) fn unhealthy(s: &PoolState<'_>, d: &mut Decision, room: u32) {
    let spec = &s.pool.spec;
    let budget = s.holds.budget.unwrap_or(spec.budget);
    // The caller fills an unset plan with the inherited one; unset here is the default.
    let plan = spec.plan(Plan::Cordon);
    let out = |st: Status| {
        matches!(
            st,
            Status::Cordoned | Status::Draining | Status::Terminating
        )
    };
    let pool_out = s
        .nodes
        .iter()
        .filter(|n| n.health == crate::model::Health::Unhealthy && out(n.status))
        .count() as u32;
    let mut usage = Usage {
        pool_size: s
            .nodes
            .iter()
            .filter(|n| n.status != Status::Terminated)
            .count() as u32,
        pool_out,
        fleet_size: s.fleet.size,
        fleet_out: s.fleet.out,
    };
    d.counts.remediating = pool_out;
    let provisioned: u32 = d
        .actions
        .iter()
        .map(|a| match a {
            Action::Provision { ids, .. } => ids.len() as u32,
            _ => 0,
        })
        .sum();
    // A replacement is coming (booting, or asked for now) and not serving yet.
    let coming = d.counts.booting + provisioned > 0 || room > provisioned;
    let wait = spec.auto_replace && d.counts.serving < d.target && coming;
    // Drains and terminates within the budget: nodes already draining or terminating
    // keep their places, cordoned ones take what is left (held longest first).
    let fleet_room = s
        .fleet
        .spec
        .limit(s.fleet.size)
        .saturating_sub(s.fleet.out.saturating_sub(pool_out));
    let limit = budget.limit(usage.pool_size).min(fleet_room);
    let under_way = s
        .nodes
        .iter()
        .filter(|n| {
            n.health == crate::model::Health::Unhealthy
                && matches!(n.status, Status::Draining | Status::Terminating)
        })
        .count() as u32;
    let mut slots = limit.saturating_sub(under_way);
    let mut paused = 0;
    let mut sick: Vec<_> = s.nodes.iter().filter(|n| n.is_unhealthy()).collect();
    let since = |h: &Holds, id: &str| h.held_since.get(id).copied().unwrap_or(i64::MAX);
    sick.sort_by(|a, b| (since(&s.holds, &a.id), &a.id).cmp(&(since(&s.holds, &b.id), &b.id)));
    let mut waiting = 0;
    for n in sick {
        let node = n.id.clone();
        match n.status {
            Status::Active | Status::Pending if plan >= Plan::Cordon => {
                match usage.admit(&budget, &s.fleet.spec, false) {
                    Admission::Admit => {
                        d.counts.remediating += 1;
                        d.actions.push(Action::Cordon {
                            node,
                            reason: format!("unhealthy: remediation plan {}", plan.as_str()),
                        });
                    }
                    Admission::Hold { reason } if s.holds.released.contains(&node) => {
                        usage.take();
                        d.counts.remediating += 1;
                        d.actions.push(Action::Cordon {
                            node,
                            reason: format!(
                                "unhealthy: released by an operator past the budget ({reason}); remediation plan {}",
                                plan.as_str()
                            ),
                        });
                    }
                    Admission::Hold { reason } => {
                        d.counts.held += 1;
                        d.actions.push(Action::Hold { node, reason });
                    }
                }
            }
            Status::Cordoned
                if plan >= Plan::CordonDrain && slots == 0 && !s.holds.released.contains(&node) =>
            {
                paused += 1;
            }
            Status::Cordoned if !n.drained && plan >= Plan::CordonDrain => {
                slots = slots.saturating_sub(1);
                if wait {
                    waiting += 1;
                } else {
                    d.actions.push(Action::Drain {
                        node,
                        reason: "unhealthy: drain before terminate".into(),
                    });
                }
            }
            Status::Cordoned if n.drained && plan >= Plan::CordonDrainTerminate => {
                slots = slots.saturating_sub(1);
                if wait {
                    waiting += 1;
                } else {
                    d.actions.push(Action::TerminateNode {
                        node,
                        instance: n.instance_id.clone(),
                        reason: "unhealthy and drained".into(),
                    });
                }
            }
            _ => {}
        }
    }
    if paused > 0 {
        d.reasons.push(format!(
            "{paused} unhealthy cordoned node(s) wait for the remediation budget before the drain ({limit} allowed out of service, {under_way} under way)"
        ));
    }
    if waiting > 0 {
        d.reasons.push(format!(
            "{waiting} unhealthy node(s) wait for their replacement before the drain ({} serving of {})",
            d.counts.serving, d.target
        ));
    }
}
