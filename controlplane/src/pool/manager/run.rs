//! The pool manager's loop: every `interval`, when this process may act, each pool is read
//! from the database, `decide`d, its decision stored, and its actions carried out.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::json;
use tracing::warn;

use crate::act::wake::Wake;
use crate::model::lifecycle::Step;
use crate::pool::compile::Pool;
use crate::pool::decide::{decide, Action, Decision, PoolState};
use crate::store::pool_rows::PoolRow;
use crate::store::rows::NewAudit;
use crate::store::StoreError;

use super::carry::{self, ACTOR};
use super::context::Ctx;
use super::ending;
use super::gather;
use super::hand::{self, History};
use super::save::{self, Recorded};

/// Compiled pools by name, with the stored spec they were compiled from.
type Compiled = HashMap<String, (String, Arc<Pool>)>;

/// The pool manager.
#[derive(Clone)]
pub struct PoolManager {
    /// What it acts through (shared with the reconciler).
    pub ctx: Ctx,
    compiled: Arc<Mutex<Compiled>>,
    history: Arc<Mutex<History>>,
    recorded: Arc<Mutex<Recorded>>,
}

impl std::fmt::Debug for PoolManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolManager").finish_non_exhaustive()
    }
}

/// What one tick did, for tests and the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Pools evaluated.
    pub pools: usize,
    /// Actions carried out (or started).
    pub actions: usize,
    /// Pools that could not be evaluated (an invalid stored spec, a store error).
    pub failed: usize,
}

/// The running loop; [`ManagerHandle::stop`] ends it.
#[derive(Debug)]
pub struct ManagerHandle {
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    thread: JoinHandle<()>,
}

impl ManagerHandle {
    /// Ends the loop after the tick under way.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify();
        let _ = self.thread.join();
    }
}

impl PoolManager {
    /// A pool manager acting through `ctx`.
    pub fn new(ctx: Ctx) -> Self {
        PoolManager {
            ctx,
            compiled: Arc::default(),
            history: Arc::default(),
            recorded: Arc::default(),
        }
    }

    /// Wakes the loop now (a pool changed through the API); the same as `ctx.wake`.
    pub fn wake(&self) -> Arc<Wake> {
        self.ctx.wake.clone()
    }

    fn compile(&self, row: &PoolRow) -> Result<Arc<Pool>, String> {
        let mut map = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((spec, p)) = map.get(&row.name) {
            if *spec == row.spec {
                return Ok(p.clone());
            }
        }
        let mut spec = row.spec().map_err(|e| e.to_string())?;
        if spec.remediation.action.is_none() {
            let inherited = self.ctx.settings.remediation.for_pool(&spec.name).0;
            spec.remediation.action = Some(spec.plan(inherited));
        }
        let pool = Pool::build(spec).map_err(|e| {
            e.iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let pool = Arc::new(pool);
        map.insert(row.name.clone(), (row.spec.clone(), pool.clone()));
        Ok(pool)
    }

    /// One evaluation of every pool (nothing when this process may not act).
    pub fn tick(&self) -> Result<TickReport, StoreError> {
        let mut report = TickReport::default();
        if !self.ctx.leader.may_act() {
            return Ok(report);
        }
        let g = gather::read(&self.ctx.store, self.ctx.settings.fleet_budget)?;
        let names: BTreeSet<String> = g.pools.iter().map(|p| p.name.clone()).collect();
        self.ctx.managed.set(names.clone());
        self.ctx.held.keep_pools(&names);
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keep(&names);
        for row in &g.pools {
            match self.tick_pool(row, &g) {
                Ok(n) => {
                    report.pools += 1;
                    report.actions += n;
                }
                Err(e) => {
                    report.failed += 1;
                    warn!(pool = %row.name, error = %e, "pool not evaluated");
                    let _ = self.save(row, None, Some(e));
                }
            }
        }
        Ok(report)
    }

    fn tick_pool(&self, row: &PoolRow, g: &gather::Gathered) -> Result<usize, String> {
        let ctx = &self.ctx;
        let pool = self.compile(row)?;
        let name = &row.name;
        let no_nodes = Vec::new();
        let no_instances = Vec::new();
        let node_rows = g.nodes.get(name).unwrap_or(&no_nodes);
        let inst_rows = g.instances.get(name).unwrap_or(&no_instances);
        let st = |e: StoreError| e.to_string();
        if !ctx
            .select
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name)
        {
            let saved = serde_json::from_str(&row.select_state).unwrap_or_default();
            ctx.select
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone(), saved);
        }
        ending::match_registrations(ctx, inst_rows, node_rows).map_err(st)?;
        // Re-read what matching changed.
        let inst_rows = if inst_rows
            .iter()
            .any(|i| i.state().is_ok_and(|s| s.is_booting()))
        {
            let (rows, _) = ctx
                .store
                .list_instances(&crate::store::InstanceFilter {
                    pool: Some(name.clone()),
                    states: crate::model::pool::InstanceState::ALL
                        .iter()
                        .copied()
                        .filter(|s| *s != crate::model::pool::InstanceState::Terminated)
                        .collect(),
                    offset: 0,
                    limit: i64::from(i32::MAX),
                })
                .map_err(st)?;
            rows
        } else {
            inst_rows.clone()
        };
        let views =
            gather::node_views(&ctx.store, node_rows, ctx.observations.as_ref()).map_err(st)?;
        let now = ctx.clock.now_ms();
        let metrics = {
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            let m = gather::metrics(
                &views,
                row.demand_pending.and_then(|d| u64::try_from(d).ok()),
                h.of(ctx, &pool, now).map_err(st)?,
                ctx.settings.history_samples,
                now,
            );
            h.store(ctx, &pool, now).map_err(st)?;
            m
        };
        let holds = hand::holds(ctx, g, name, &views);
        let state = PoolState {
            pool: &pool,
            nodes: views.into_iter().map(|(v, _)| v).collect(),
            instances: gather::instance_views(&inst_rows).map_err(st)?,
            last_scale_up_ms: row.last_scale_up,
            last_scale_down_ms: row.last_scale_down,
            manual_target: row.manual_target.and_then(|t| u32::try_from(t).ok()),
            last_target: row.last_target.and_then(|t| u32::try_from(t).ok()),
            metrics,
            fleet: g.fleet,
            holds,
        };
        let d = decide(&state, now);
        let n = self.carry_out(&pool, &d, &inst_rows, now).map_err(st)?;
        hand::settle(ctx, &state.holds, &state.nodes, &d).map_err(st)?;
        // Instances whose terminate failed earlier are asked again.
        for i in inst_rows.iter().filter(|i| {
            i.state()
                .is_ok_and(|s| s == crate::model::pool::InstanceState::Terminating)
        }) {
            ending::terminate_instance(ctx, Some(&pool), i, "terminate again after a failure")
                .map_err(st)?;
        }
        self.save(row, Some(&d), None).map_err(st)?;
        Ok(n)
    }

    fn carry_out(
        &self,
        pool: &Pool,
        d: &Decision,
        instances: &[crate::store::pool_rows::InstanceRow],
        now: i64,
    ) -> Result<usize, StoreError> {
        let ctx = &self.ctx;
        let mut held = Vec::new();
        let mut n = 0;
        for a in &d.actions {
            match a {
                Action::Provision { ids, .. } => {
                    for id in ids {
                        carry::provision(ctx, pool, id, now)?;
                        n += 1;
                    }
                }
                Action::Cordon { node, reason } => {
                    n += usize::from(carry::node_step(
                        ctx,
                        node,
                        Step::Cordon,
                        reason,
                        pool.drain_timeout_ms,
                    )?);
                }
                Action::Drain { node, reason } => {
                    n += usize::from(carry::node_step(
                        ctx,
                        node,
                        Step::Drain,
                        reason,
                        pool.drain_timeout_ms,
                    )?);
                }
                Action::TerminateNode {
                    node,
                    instance,
                    reason,
                } => {
                    let row = instance
                        .as_ref()
                        .and_then(|i| instances.iter().find(|r| &r.id == i));
                    match row {
                        Some(r) => ending::terminate_instance(ctx, Some(pool), r, reason)?,
                        // A node without an instance of ours: its agent's terminate hook.
                        None => {
                            carry::node_step(
                                ctx,
                                node,
                                Step::Terminate,
                                reason,
                                pool.drain_timeout_ms,
                            )?;
                        }
                    }
                    n += 1;
                }
                Action::TerminateInstance { instance, reason } => {
                    if let Some(r) = instances.iter().find(|r| &r.id == instance) {
                        ending::terminate_instance(ctx, Some(pool), r, reason)?;
                        n += 1;
                    }
                }
                Action::FailInstance { instance, reason } => {
                    ending::fail_instance(ctx, instance, reason)?;
                    if let Some(node) = instances
                        .iter()
                        .find(|r| &r.id == instance)
                        .and_then(|r| r.node_id.clone())
                    {
                        // Its pre-created node never joined: it is not capacity to wait for.
                        if ctx
                            .store
                            .node(&node)
                            .and_then(|r| r.status())
                            .is_ok_and(|s| s == crate::model::Status::Pending)
                        {
                            ending::node_gone(ctx, &node, reason)?;
                        }
                    }
                    n += 1;
                }
                Action::Hold { node, reason } => held.push((node.clone(), reason.clone())),
            }
        }
        for (node, reason) in ctx.held.set_pool(&pool.spec.name, &held, now) {
            warn!(pool = %pool.spec.name, %node, %reason, "unhealthy node held in service: remediation budget full");
            ctx.notifier.send(
                "remediation",
                &node,
                now,
                json!({"remediation": {"step": "held", "reason": reason, "by": ACTOR}}),
            );
            let _ = ctx.store.audit(NewAudit::ok(
                ACTOR,
                "node.hold",
                &node,
                json!({"reason": reason}),
                now,
            ));
        }
        Ok(n)
    }

    fn save(
        &self,
        row: &PoolRow,
        d: Option<&Decision>,
        failure: Option<String>,
    ) -> Result<(), StoreError> {
        save::save(&self.ctx, &self.recorded, row, d, failure)
    }

    /// Starts the loop: a tick every `interval` (the first one interval after the start), and
    /// when woken.
    pub fn spawn(self) -> std::io::Result<ManagerHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let (st, wake) = (stop.clone(), self.ctx.wake.clone());
        let thread = std::thread::Builder::new()
            .name("pool-manager".into())
            .spawn(move || {
                // The first tick waits one interval: the scraper has seen the fleet by
                // then, and a control plane stopped at once acts on nothing.
                loop {
                    self.ctx.wake.wait(self.ctx.settings.interval);
                    if st.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Err(e) = self.tick() {
                        warn!(error = %e, "pool manager tick failed; trying again next interval");
                    }
                }
            })?;
        Ok(ManagerHandle { stop, wake, thread })
    }
}
