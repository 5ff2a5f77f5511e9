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

use crate::model::pool::{BudgetSpec, InstanceState};
use crate::model::{Connectivity, Health, Status};

use super::autoscale::Metrics;
use super::Pool;

mod remedy;
mod shrink;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_remedy;

/// A node of the pool, as `decide` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Node id.
    pub id: String,
    /// The instance it runs on, when this pool's provider made it; none for a node that
    /// joined by itself (never scaled down: the pool cannot make it again).
    pub instance_id: Option<String>,
    /// Lifecycle.
    pub status: Status,
    /// Health verdict.
    pub health: Health,
    /// Connectivity.
    pub connectivity: Connectivity,
    /// Work on it: busy workload slots or GPU compute processes. A busy node is never
    /// scaled down.
    pub busy: bool,
    /// Its last drain ended (completed, failed or timed out), so it may be terminated.
    pub drained: bool,
}

impl NodeView {
    fn is_gone(&self) -> bool {
        matches!(self.status, Status::Terminating | Status::Terminated)
    }

    fn is_serving(&self) -> bool {
        self.status == Status::Active
            && self.connectivity == Connectivity::Online
            && self.health != Health::Unhealthy
    }

    fn is_unhealthy(&self) -> bool {
        self.health == Health::Unhealthy && !self.is_gone()
    }
}

/// An instance of the pool, as `decide` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    /// Instance id.
    pub id: String,
    /// Its state.
    pub state: InstanceState,
    /// The node that registered with its join token.
    pub node_id: Option<String>,
    /// When it was asked for (Unix ms); the registration timeout runs from here.
    pub created_ms: i64,
}

/// The whole fleet's remediation budget and use, for the fleet-wide limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FleetBudget {
    /// The fleet's budget.
    pub spec: BudgetSpec,
    /// Nodes of the fleet (not terminated).
    pub size: u32,
    /// Of those, held out of service by remediation, this pool's included.
    pub out: u32,
}

/// Everything `decide` looks at for one pool.
#[derive(Debug)]
pub struct PoolState<'a> {
    /// The compiled pool.
    pub pool: &'a Pool,
    /// Its nodes (terminated ones may be left out).
    pub nodes: Vec<NodeView>,
    /// Its instances (terminated ones may be left out).
    pub instances: Vec<InstanceView>,
    /// When the last scale-up was carried out (Unix ms).
    pub last_scale_up_ms: Option<i64>,
    /// When the last scale-down started (Unix ms).
    pub last_scale_down_ms: Option<i64>,
    /// The operator's target (`POST /v1/pools/{name}/scale`), over the autoscaler's.
    pub manual_target: Option<u32>,
    /// The target of the previous decision, kept when the autoscaler has no opinion.
    pub last_target: Option<u32>,
    /// What the autoscaler sees (`capacity` and `booting` are filled in by `decide`).
    pub metrics: Metrics,
    /// The fleet-wide remediation budget.
    pub fleet: FleetBudget,
}

/// One thing to do; each names what it acts on and says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Record these instances (state `provisioning`), then ask the chosen provider for
    /// each. The ids are derived from the pool and the time of the decision.
    Provision {
        /// New instance ids.
        ids: Vec<String>,
        /// Why.
        reason: String,
    },
    /// Cordon an unhealthy node (remediation, within the budget).
    Cordon {
        /// Node id.
        node: String,
        /// Why.
        reason: String,
    },
    /// Move the node's work off (it is cordoned first if it is not).
    Drain {
        /// Node id.
        node: String,
        /// Why.
        reason: String,
    },
    /// Terminate the node, and its instance through the provider when it has one.
    TerminateNode {
        /// Node id.
        node: String,
        /// Its instance.
        instance: Option<String>,
        /// Why.
        reason: String,
    },
    /// Terminate an instance that has no node to drain (failed, or its node is gone).
    TerminateInstance {
        /// Instance id.
        instance: String,
        /// Why.
        reason: String,
    },
    /// Mark an instance failed (then it is terminated and replaced).
    FailInstance {
        /// Instance id.
        instance: String,
        /// Why.
        reason: String,
    },
    /// Leave an unhealthy node in service, marked held, because the budget is full.
    Hold {
        /// Node id.
        node: String,
        /// Why.
        reason: String,
    },
}

/// The pool's numbers as `decide` counted them (shown by `GET /v1/pools/{name}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Serving nodes (capacity).
    pub serving: u32,
    /// Instances booting.
    pub booting: u32,
    /// Nodes not terminating or terminated, plus booting instances.
    pub members: u32,
    /// Unhealthy nodes not yet terminating.
    pub unhealthy: u32,
    /// Nodes held out of service by remediation.
    pub remediating: u32,
    /// Unhealthy nodes held in service by the budget.
    pub held: u32,
}

/// What `decide` concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Nodes the pool should have, within its bounds.
    pub target: u32,
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// Why, a line each (the autoscaler's reason, cooldowns, waits).
    pub reasons: Vec<String>,
    /// The numbers.
    pub counts: Counts,
    /// Whether carrying this out starts a scale-up: set `last_scale_up_ms` to now.
    pub starts_scale_up: bool,
    /// Whether carrying this out starts a scale-down: set `last_scale_down_ms` to now.
    pub starts_scale_down: bool,
    /// Scale-up cooldown left (ms; 0: none).
    pub scale_up_cooldown_left_ms: i64,
    /// Scale-down cooldown left (ms; 0: none).
    pub scale_down_cooldown_left_ms: i64,
}

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
    let booting = instances(s, now_ms, &mut d);
    let live = s.nodes.iter().filter(|n| !n.is_gone());
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

/// Registration timeouts and instances to clean up; returns the booting count.
fn instances(s: &PoolState<'_>, now_ms: i64, d: &mut Decision) -> u32 {
    let timeout = s.pool.registration_timeout_ms;
    let mut booting = 0;
    for i in &s.instances {
        match i.state {
            st if st.is_booting() => {
                if now_ms.saturating_sub(i.created_ms) >= timeout {
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
                }
            }
            InstanceState::Failed => d.actions.push(Action::TerminateInstance {
                instance: i.id.clone(),
                reason: "the instance failed".into(),
            }),
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
    booting
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
