//! What `decide` answers: the target, the actions, the reasons and the counts. All of it
//! serializes for the API's last decisions (`{"action":"drain","node":…,"reason":…}`).

use serde::Serialize;
use utoipa::ToSchema;

/// One thing to do; each names what it acts on and says why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
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
