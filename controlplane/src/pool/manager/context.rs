//! What the pool manager and the instance reconciler share: the guard, the settings, where
//! node observations come from, and the pieces of the control plane they act through.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::act::managed::{Held, ManagedPools};
use crate::act::wake::Wake;
use crate::act::webhooks::Notifier;
use crate::clock::SharedClock;
use crate::model::observation::NodeObservation;
use crate::model::pool::BudgetSpec;
use crate::pool::provider::ProviderEnv;
use crate::pool::select::SelectState;
use crate::scrape::fleet::Fleet;
use crate::store::Store;

use super::calls::ProviderCache;

/// Whether this process may act on pools now. Always yes today; several control planes over
/// one PostgreSQL will run the pool manager and the reconciler on their leader only.
pub trait Leader: Send + Sync {
    /// True when this process may provision, terminate and change pools.
    fn may_act(&self) -> bool;
}

/// The only control plane: always the leader.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysLeader;

impl Leader for AlwaysLeader {
    fn may_act(&self) -> bool {
        true
    }
}

/// Where the latest observation of a node comes from (the scraper's fleet; a map in tests).
pub trait Observations: Send + Sync {
    /// The node's latest observation.
    fn observation(&self, node_id: &str) -> Option<Arc<NodeObservation>>;
}

impl Observations for Fleet {
    fn observation(&self, node_id: &str) -> Option<Arc<NodeObservation>> {
        self.policy_input(node_id).and_then(|(o, ..)| o)
    }
}

impl Observations for Mutex<HashMap<String, Arc<NodeObservation>>> {
    fn observation(&self, node_id: &str) -> Option<Arc<NodeObservation>> {
        self.lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node_id)
            .cloned()
    }
}

/// `[pool_manager]` as the loops run it.
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    /// Between two evaluations of every pool.
    pub interval: Duration,
    /// Between two comparisons of the providers' machines with the database.
    pub reconcile_interval: Duration,
    /// Longest a provider call may take before it counts as timed out.
    pub call_timeout: Duration,
    /// The fleet-wide remediation budget.
    pub fleet_budget: BudgetSpec,
    /// How long terminated instance records are kept.
    pub retention: Duration,
    /// Samples of each pool's utilization kept for the predictive autoscaler.
    pub history_samples: usize,
    /// Decisions kept per pool.
    pub keep_decisions: usize,
    /// The remediation plans a pool without one of its own inherits
    /// (`[remediation.pools.NAME]`, else `[remediation] action`).
    pub remediation: crate::config::RemediationConfig,
}

impl Default for ManagerSettings {
    fn default() -> Self {
        ManagerSettings {
            interval: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(60),
            call_timeout: Duration::from_secs(120),
            fleet_budget: BudgetSpec::default(),
            retention: Duration::from_secs(7 * 24 * 3600),
            history_samples: 720,
            keep_decisions: 20,
            remediation: crate::config::RemediationConfig::default(),
        }
    }
}

/// Instances whose provider call is under way, so neither loop calls twice for one.
#[derive(Debug, Default)]
pub struct InFlight {
    ids: Mutex<BTreeSet<String>>,
    done: Condvar,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `id`; false when a call for it is already under way.
    pub fn claim(&self, id: &str) -> bool {
        self.lock().insert(id.to_string())
    }

    /// Releases `id`.
    pub fn release(&self, id: &str) {
        self.lock().remove(id);
        self.done.notify_all();
    }

    /// Whether a call for `id` is under way.
    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains(id)
    }

    /// Waits until no call is under way, at most `timeout`; true when none is.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let g = self.lock();
        let (g, _) = self
            .done
            .wait_timeout_while(g, timeout, |ids| !ids.is_empty())
            .unwrap_or_else(|p| p.into_inner());
        g.is_empty()
    }
}

/// Everything the loops act through.
#[derive(Clone)]
pub struct Ctx {
    /// The database.
    pub store: Arc<Store>,
    /// Time.
    pub clock: SharedClock,
    /// What providers are built with (the control plane's URL, state folder, agent binary).
    pub env: ProviderEnv,
    /// The guard.
    pub leader: Arc<dyn Leader>,
    /// Node observations (workload, utilization, compute processes).
    pub observations: Arc<dyn Observations>,
    /// Settings.
    pub settings: ManagerSettings,
    /// Providers built from the pools' specs.
    pub providers: ProviderCache,
    /// Provider calls under way.
    pub in_flight: Arc<InFlight>,
    /// Provider selection state per pool (loaded from the pool's row, saved each tick).
    pub select: Arc<Mutex<HashMap<String, SelectState>>>,
    /// Errors of provider calls per pool since its last evaluation.
    pub errors: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// Pools managed (remediation leaves their nodes alone).
    pub managed: ManagedPools,
    /// Nodes held by the budget.
    pub held: Held,
    /// Webhooks.
    pub notifier: Notifier,
    /// Wakes the command dispatcher after a command is stored.
    pub dispatch: Arc<Wake>,
    /// Wakes the pool manager: the API changed a pool (created, updated, scaled, demand
    /// pushed, a budget raised, a node released), so it is evaluated now, not at the next
    /// interval.
    pub wake: Arc<Wake>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// Notes a provider error for the pool's status.
    pub fn error(&self, pool: &str, e: String) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(pool.to_string())
            .or_default()
            .push(e);
    }

    /// Runs `f` on the pool's selection state.
    pub fn with_select<T>(&self, pool: &str, f: impl FnOnce(&mut SelectState) -> T) -> T {
        let mut m = self.select.lock().unwrap_or_else(|p| p.into_inner());
        f(m.entry(pool.to_string()).or_default())
    }
}
