//! Starting the pool manager and the instance reconciler for `gpuwarden serve`, with one
//! [`ProviderEnv`] for every pool's providers.

use std::sync::Arc;

use crate::act::managed::{Held, ManagedPools};
use crate::act::wake::Wake;
use crate::act::webhooks::Notifier;
use crate::clock::SharedClock;
use crate::config::ControlPlaneConfig;
use crate::model::pool::BudgetSpec;
use crate::pool::manager::{AlwaysLeader, Ctx, ManagerHandle, ManagerSettings, PoolManager};
use crate::pool::provider::ProviderEnv;
use crate::pool::reconcile::{Reconciler, ReconcilerHandle};
use crate::scrape::fleet::Fleet;
use crate::store::Store;

/// The two loops, running.
#[derive(Debug)]
pub struct PoolLoops {
    manager: ManagerHandle,
    reconciler: ReconcilerHandle,
    wake: Arc<Wake>,
}

impl PoolLoops {
    /// Wakes the pool manager now (the config's pools changed).
    pub fn wake(&self) -> Arc<Wake> {
        self.wake.clone()
    }

    /// Ends both loops after the pass under way.
    pub fn stop(self) {
        self.manager.stop();
        self.reconciler.stop();
    }
}

/// The parts of the running control plane the pool manager acts through.
pub struct Parts {
    /// The database.
    pub store: Arc<Store>,
    /// Time.
    pub clock: SharedClock,
    /// The scraper's fleet (observations).
    pub fleet: Arc<Fleet>,
    /// Webhooks.
    pub notifier: Notifier,
    /// Wakes the command dispatcher.
    pub dispatch: Arc<Wake>,
    /// The held nodes the API shows.
    pub held: Held,
    /// Wakes the pool manager (the API changed a pool).
    pub wake: Arc<Wake>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts").finish_non_exhaustive()
    }
}

/// What the pool manager acts through, from the config; agents join at `agents_url`.
pub fn context(
    cfg: &ControlPlaneConfig,
    agents_url: &str,
    parts: Parts,
    managed: ManagedPools,
) -> Ctx {
    let Parts {
        store,
        clock,
        fleet,
        notifier,
        dispatch,
        held,
        wake,
    } = parts;
    let pm = &cfg.pool_manager;
    // Absolute: the `local` provider hands its agents state folders under it, and an agent
    // refuses a relative one (`server.data_dir` is "." by default).
    let data_dir =
        std::path::absolute(&cfg.server.data_dir).unwrap_or_else(|_| cfg.server.data_dir.clone());
    let mut env = ProviderEnv::new(agents_url, data_dir.join("providers"));
    env.clock = clock.clone();
    if !pm.agent_binary.as_os_str().is_empty() {
        env.agent_binary = Some(pm.agent_binary.clone());
    }
    Ctx {
        store,
        clock,
        env,
        leader: Arc::new(AlwaysLeader),
        observations: fleet,
        settings: ManagerSettings {
            interval: pm.interval,
            reconcile_interval: pm.reconcile_interval,
            call_timeout: pm.call_timeout,
            fleet_budget: BudgetSpec {
                max_percent: pm.fleet_budget_percent,
                max_nodes: pm.fleet_budget_nodes,
            },
            retention: cfg.retention.instances,
            keep_decisions: cfg.retention.pool_decisions,
            remediation: cfg.remediation.clone(),
            ..ManagerSettings::default()
        },
        providers: Default::default(),
        in_flight: Arc::default(),
        select: Arc::default(),
        errors: Arc::default(),
        managed,
        held,
        notifier,
        dispatch,
        wake,
    }
}

/// Starts both loops.
pub fn start(ctx: Ctx) -> std::io::Result<PoolLoops> {
    let manager = PoolManager::new(ctx.clone());
    let wake = manager.wake();
    let manager = manager.spawn()?;
    let reconciler = Reconciler { ctx }.spawn()?;
    Ok(PoolLoops {
        manager,
        reconciler,
        wake,
    })
}
