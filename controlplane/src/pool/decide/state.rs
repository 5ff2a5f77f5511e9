//! What `decide` reads: the pool, its nodes and instances, cooldowns, targets, metrics.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::pool::{BudgetSpec, InstanceState};
use crate::model::{Connectivity, Health, Status};
use crate::pool::autoscale::Metrics;
use crate::pool::compile::Pool;

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
    pub(super) fn is_gone(&self) -> bool {
        matches!(self.status, Status::Terminating | Status::Terminated)
    }

    pub(super) fn is_serving(&self) -> bool {
        self.status == Status::Active
            && self.connectivity == Connectivity::Online
            && self.health != Health::Unhealthy
    }

    pub(super) fn is_unhealthy(&self) -> bool {
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

/// An operator's hand on the pool's remediation, and how long each held node has waited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Holds {
    /// The pool's budget as an operator set it at run time, over the spec's.
    pub budget: Option<BudgetSpec>,
    /// Held nodes an operator released: remediated now, past the budget.
    pub released: BTreeSet<String>,
    /// Nodes held now, and since when (Unix ms): when the budget frees, the longest held
    /// goes first.
    pub held_since: BTreeMap<String, i64>,
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
    /// Budget raised and nodes released by an operator; the order of held nodes.
    pub holds: Holds,
}
