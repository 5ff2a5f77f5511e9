//! [`decide`]: what one pool needs now, from its state and the time, as actions that each
//! name what they act on (docs/POOLS.md, "Decisions").
//!
//! Pure: the caller reads the state from the database (so nothing is lost in a restart:
//! Navarch kept its node list in memory, and after a restart could neither scale down nor
//! replace), calls `decide`, and carries out the actions. Carrying one out twice does no
//! harm: a node action names the node (the lifecycle makes a repeated step a no-op), and
//! a [`Action::Provision`] names the instance ids to record before any provider is asked,
//! so a replayed decision finds its instances already recorded.
//!
//! The counting, once per call:
//! - *serving*: active, online, not unhealthy nodes: the pool's capacity. Cordoned,
//!   draining, unhealthy, offline and pending nodes are not capacity.
//! - *booting*: instances in `provisioning` or `registering` within the registration
//!   timeout. They count toward the size, so a pool does not provision again after each
//!   cooldown while they boot.
//! - *members*: every node not terminating or terminated, plus booting instances. Never
//!   more than `max_nodes`.
//!
//! The target is the manual one (`POST /v1/pools/{name}/scale`), else the autoscaler's,
//! else the last target, else `min_nodes`; always within `min_nodes..=max_nodes`.

use crate::model::pool::InstanceState;
use crate::model::Status;
use crate::pool::autoscale::Metrics;

mod decision;
mod remedy;
mod shrink;
mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_boot;
#[cfg(test)]
mod tests_props;
#[cfg(test)]
mod tests_remedy;

pub use decision::{Action, Counts, Decision};
pub use state::{FleetBudget, Holds, InstanceView, NodeView, PoolState};

/// What the pool needs at `now_ms` (Unix ms).
pub fn decide(s: &PoolState<'_>, now_ms: i64) -> Decision {
    let pool = s.pool;
    let (min, max) = (pool.spec.min_nodes, pool.spec.max_nodes);
    let mut d = Decision {
        target: min,
        actions: Vec::new(),
        reasons: Vec::new(),
        counts: Counts::default(),
        starts_scale_up: false,
        starts_scale_down: false,
        scale_up_cooldown_left_ms: 0,
        scale_down_cooldown_left_ms: 0,
    };
    let (booting, skip) = instances(s, now_ms, &mut d);
    // The node of a booting instance counts once, as its instance. A failed instance's
    // pre-created node never joins: not a member, not capacity to wait for, from the
    // evaluation that fails it (its replacement is provisioned now).
    let live = s.nodes.iter().filter(|n| {
        !n.is_gone()
            && !skip
                .iter()
                .any(|(id, booting)| *id == n.id && (*booting || n.status == Status::Pending))
    });
    let serving = live.clone().filter(|n| n.is_serving()).count() as u32;
    let pending = live.clone().filter(|n| n.status == Status::Pending).count() as u32;
    let unhealthy = live.clone().filter(|n| n.is_unhealthy()).count() as u32;
    let members = live.count() as u32 + booting;
    d.counts = Counts {
        serving,
        booting,
        members,
        unhealthy,
        ..Counts::default()
    };
    d.target = target(s, serving, booting, now_ms, &mut d.reasons);
    let left =
        |last: Option<i64>, cd: i64| last.map_or(0, |t| (t.saturating_add(cd) - now_ms).max(0));
    d.scale_up_cooldown_left_ms = left(s.last_scale_up_ms, pool.scale_up_cooldown_ms);
    d.scale_down_cooldown_left_ms = left(s.last_scale_down_ms, pool.scale_down_cooldown_ms)
        .max(left(s.last_scale_up_ms, pool.scale_down_cooldown_ms));

    // Capacity counted against the target: serving and booting, pending nodes (about to
    // join), and, without auto_replace, unhealthy nodes while they are still there.
    let counted = serving + booting + pending + if pool.spec.auto_replace { 0 } else { unhealthy };
    let room = max.saturating_sub(members);
    let deficit = d.target.saturating_sub(counted);
    if deficit > 0 {
        let below_min = min.saturating_sub(counted);
        let want = if d.scale_up_cooldown_left_ms > 0 {
            if below_min > 0 {
                d.reasons.push(format!(
                    "below min_nodes ({counted} of {min}): provisioning despite the scale-up cooldown"
                ));
            } else {
                d.reasons.push(format!(
                    "{deficit} more wanted; scale-up cooldown: {} s left",
                    (d.scale_up_cooldown_left_ms + 999) / 1000
                ));
            }
            below_min
        } else {
            deficit
        };
        let n = want.min(room);
        if n < want {
            d.reasons.push(format!(
                "at max_nodes: {members} of {max} members; {} more wait for room",
                want - n
            ));
        }
        if n > 0 {
            let ids = (0..n)
                .map(|i| format!("{}-{now_ms}-{i}", pool.spec.name))
                .collect();
            d.actions.push(Action::Provision {
                ids,
                reason: format!("{counted} counted of a target of {}: {n} more", d.target),
            });
            d.starts_scale_up = true;
        }
    }
    remedy::unhealthy(s, &mut d, room);
    shrink::scale_down(s, &mut d, now_ms);
    d
}

/// Registration timeouts and instances to clean up. Returns the booting count, and the
/// nodes of instances (true: booting, counted as their instance; false: failed, now or
/// before, so their pending node will never join).
fn instances<'s>(
    s: &'s PoolState<'_>,
    now_ms: i64,
    d: &mut Decision,
) -> (u32, Vec<(&'s str, bool)>) {
    let timeout = s.pool.registration_timeout_ms;
    let mut booting = 0;
    let mut skip = Vec::new();
    for i in &s.instances {
        match i.state {
            st if st.is_booting() => {
                if now_ms.saturating_sub(i.created_ms) >= timeout {
                    skip.extend(i.node_id.as_deref().map(|n| (n, false)));
                    d.actions.push(Action::FailInstance {
                        instance: i.id.clone(),
                        reason: format!(
                            "its agent did not register within {} ({st})",
                            humantime::format_duration(std::time::Duration::from_millis(
                                timeout.max(0) as u64
                            ))
                        ),
                    });
                } else {
                    booting += 1;
                    skip.extend(i.node_id.as_deref().map(|n| (n, true)));
                }
            }
            InstanceState::Failed => {
                skip.extend(i.node_id.as_deref().map(|n| (n, false)));
                d.actions.push(Action::TerminateInstance {
                    instance: i.id.clone(),
                    reason: "the instance failed".into(),
                });
            }
            InstanceState::Running => {
                let node = i
                    .node_id
                    .as_ref()
                    .and_then(|id| s.nodes.iter().find(|n| &n.id == id));
                if node.is_some_and(|n| n.status == Status::Terminated) {
                    d.actions.push(Action::TerminateInstance {
                        instance: i.id.clone(),
                        reason: "its node is terminated".into(),
                    });
                }
            }
            _ => {}
        }
    }
    (booting, skip)
}

/// The target, within the pool's bounds, and why.
fn target(
    s: &PoolState<'_>,
    serving: u32,
    booting: u32,
    now_ms: i64,
    reasons: &mut Vec<String>,
) -> u32 {
    let spec = &s.pool.spec;
    let (want, why) = if let Some(m) = s.manual_target {
        (m, format!("manual target {m}"))
    } else if let Some(a) = &s.pool.autoscaler {
        let m = Metrics {
            capacity: serving,
            booting,
            ..s.metrics.clone()
        };
        let r = a.recommend(&m, now_ms);
        match (r.nodes, s.last_target) {
            (Some(n), _) => (n, r.reason),
            (None, Some(t)) => (t, format!("{}; keeping the last target {t}", r.reason)),
            (None, None) => (spec.min_nodes, format!("{}; min_nodes", r.reason)),
        }
    } else {
        (
            spec.min_nodes,
            format!("no autoscaler: min_nodes {}", spec.min_nodes),
        )
    };
    let t = want.clamp(spec.min_nodes, spec.max_nodes);
    if t != want {
        reasons.push(format!(
            "{why}, held within {}..{}: {t}",
            spec.min_nodes, spec.max_nodes
        ));
    } else {
        reasons.push(why);
    }
    t
}
