//! From the database and the latest observations to what `decide` reads, for every pool at
//! once: one read of the nodes, one of the live instances, one of the pools.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::model::observation::NodeObservation;
use crate::model::pool::BudgetSpec;
use crate::model::pool::InstanceState;
use crate::model::{CommandKind, CommandState, Connectivity, Health, Status};
use crate::pool::autoscale::Metrics;
use crate::pool::decide::{FleetBudget, InstanceView, NodeView};
use crate::store::pool_rows::{InstanceRow, PoolRow};
use crate::store::rows::NodeRow;
use crate::store::InstanceFilter;
use crate::store::{BudgetScope, ReleaseRow, Store, StoreError};

use super::context::Observations;

/// Everything read for one tick.
#[derive(Debug)]
pub struct Gathered {
    /// The pools.
    pub pools: Vec<PoolRow>,
    /// Nodes by pool.
    pub nodes: HashMap<String, Vec<NodeRow>>,
    /// Instances not terminated, by pool.
    pub instances: HashMap<String, Vec<InstanceRow>>,
    /// The fleet's size and how many of its nodes remediation holds out of service (its
    /// budget an operator's when one was set).
    pub fleet: FleetBudget,
    /// Pools' budgets set by an operator, by pool.
    pub budgets: HashMap<String, BudgetSpec>,
    /// Held nodes an operator released, by node id.
    pub releases: HashMap<String, ReleaseRow>,
}

/// Reads the pools, their nodes and live instances, and the operator's budgets and
/// releases (an operator's fleet budget over `fleet_budget`).
pub fn read(store: &Store, fleet_budget: BudgetSpec) -> Result<Gathered, StoreError> {
    let pools = store.pools()?;
    let mut nodes: HashMap<String, Vec<NodeRow>> = HashMap::new();
    let mut fleet = FleetBudget {
        spec: fleet_budget,
        ..FleetBudget::default()
    };
    let mut budgets = HashMap::new();
    for b in store.budgets()? {
        match BudgetScope::parse(&b.scope)? {
            BudgetScope::Fleet => fleet.spec = b.spec(),
            BudgetScope::Pool(p) => {
                budgets.insert(p, b.spec());
            }
        }
    }
    let releases = store
        .releases()?
        .into_iter()
        .map(|r| (r.node_id.clone(), r))
        .collect();
    for n in store.all_nodes()? {
        let status = n.status()?;
        if status == Status::Terminated {
            continue;
        }
        fleet.size += 1;
        let out = matches!(
            status,
            Status::Cordoned | Status::Draining | Status::Terminating
        );
        if out && n.health == Health::Unhealthy.as_str() {
            fleet.out += 1;
        }
        nodes.entry(n.pool.clone()).or_default().push(n);
    }
    let live: Vec<InstanceState> = InstanceState::ALL
        .iter()
        .copied()
        .filter(|s| *s != InstanceState::Terminated)
        .collect();
    let (rows, _) = store.list_instances(&InstanceFilter {
        pool: None,
        states: live,
        offset: 0,
        limit: i64::from(i32::MAX),
    })?;
    let mut instances: HashMap<String, Vec<InstanceRow>> = HashMap::new();
    for i in rows {
        instances.entry(i.pool.clone()).or_default().push(i);
    }
    Ok(Gathered {
        pools,
        nodes,
        instances,
        fleet,
        budgets,
        releases,
    })
}

/// Whether a node's latest lifecycle command is a drain that ended (it may be terminated).
fn drained(store: &Store, node: &str) -> Result<bool, StoreError> {
    let lifecycle = [
        CommandKind::Cordon,
        CommandKind::Uncordon,
        CommandKind::Drain,
        CommandKind::Terminate,
    ];
    let last = store
        .commands(node, 20)?
        .into_iter()
        .find(|c| lifecycle.iter().any(|k| k.as_str() == c.kind));
    Ok(last.is_some_and(|c| {
        c.kind == CommandKind::Drain.as_str()
            && c.state != CommandState::Pending.as_str()
            && c.state != CommandState::Running.as_str()
    }))
}

/// A node as `decide` sees it, with its latest observation.
pub type Viewed = (NodeView, Option<Arc<NodeObservation>>);

/// The node views of a pool, with each node's observation.
pub fn node_views(
    store: &Store,
    rows: &[NodeRow],
    obs: &dyn Observations,
) -> Result<Vec<Viewed>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let status = r.status()?;
        let o = obs.observation(&r.id);
        let busy = o.as_deref().is_some_and(|o| {
            o.workload.slots_busy.is_some_and(|b| b > 0.0)
                || o.gpus
                    .values()
                    .any(|g| g.values.get("compute_processes").is_some_and(|p| *p > 0.0))
        });
        out.push((
            NodeView {
                id: r.id.clone(),
                instance_id: r.instance_id.clone(),
                status,
                health: r.health.parse().unwrap_or(Health::Unknown),
                connectivity: r.connectivity.parse().unwrap_or(Connectivity::Offline),
                busy,
                drained: status == Status::Cordoned && drained(store, &r.id)?,
            },
            o,
        ));
    }
    Ok(out)
}

/// The instance views of a pool.
pub fn instance_views(rows: &[InstanceRow]) -> Result<Vec<InstanceView>, StoreError> {
    rows.iter()
        .map(|i| {
            Ok(InstanceView {
                id: i.id.clone(),
                state: i.state()?,
                node_id: i.node_id.clone(),
                created_ms: i.created_at,
            })
        })
        .collect()
}

/// What the autoscalers see: the serving nodes' average GPU utilization, the workload slots
/// summed over the pool, the pending jobs pushed for it, and the pool's own utilization
/// history (one sample per evaluation, at most `keep` samples).
pub fn metrics(
    nodes: &[Viewed],
    pending_jobs: Option<u64>,
    history: &mut VecDeque<(i64, f64)>,
    keep: usize,
    now_ms: i64,
) -> Metrics {
    let (mut sum, mut n) = (0.0, 0u32);
    let (mut free, mut busy) = (None::<u64>, None::<u64>);
    for (v, o) in nodes {
        let serving = v.status == Status::Active
            && v.connectivity == Connectivity::Online
            && v.health != Health::Unhealthy;
        let Some(o) = o.as_deref().filter(|_| serving) else {
            continue;
        };
        for g in o.gpus.values() {
            if let Some(u) = g.values.get("utilization_ratio").filter(|u| u.is_finite()) {
                sum += u.clamp(0.0, 1.0);
                n += 1;
            }
        }
        if let Some(f) = o.workload.slots_free {
            *free.get_or_insert(0) += f as u64;
        }
        if let Some(b) = o.workload.slots_busy {
            *busy.get_or_insert(0) += b as u64;
        }
    }
    let utilization = (n > 0).then(|| sum / f64::from(n));
    if let Some(u) = utilization {
        // A second evaluation at the same time (woken by the API) replaces the sample.
        if history.back().is_some_and(|(t, _)| *t == now_ms) {
            history.pop_back();
        }
        history.push_back((now_ms, u));
        while history.len() > keep.max(1) {
            history.pop_front();
        }
    }
    Metrics {
        utilization,
        slots_free: free,
        slots_busy: busy,
        pending_jobs,
        history: history.iter().copied().collect(),
        ..Metrics::default()
    }
}
