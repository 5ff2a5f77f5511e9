//! The instance reconciler: one loop per control plane (same [`Leader`](crate::pool::manager::Leader) guard as the pool
//! manager, its own interval) that compares each provider's machines with the database, so
//! that a crash between recording an instance and the provider's answer never leaves an
//! orphan or a duplicate (docs/POOLS.md, "Providers").
//!
//! For each provider of each pool, the database is read first, then the provider's `list`:
//! - a machine tagged with an instance id the database does not know, or whose instance is
//!   terminated, is an orphan: it is terminated (ids are recorded before any provider call,
//!   so an unknown id is never a provision under way; a machine of another pool sharing the
//!   provider is known and left alone);
//! - an instance still `provisioning` with no call under way (a crash, an answer lost to a
//!   timeout) adopts its machine when the list has it (`registering`), else is asked for
//!   again with a fresh join token (the instance id keeps it one machine);
//! - an instance `registering` or `running` whose machine is gone is `failed`; the pool
//!   manager terminates and replaces it.
//!
//! Terminated records older than the retention are deleted. Registration timeouts are
//! `decide`'s.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::{info, warn};

use crate::act::wake::Wake;
use crate::model::pool::InstanceState;
use crate::pool::compile::Pool;
use crate::pool::manager::{call, start_provision, Ctx};
use crate::pool::provider::{ErrorKind, ListedState};
use crate::store::pool_rows::{InstanceRow, InstanceUpdate};
use crate::store::{InstanceFilter, StoreError};
use crate::token::{self, TokenKind};

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Orphan machines terminated.
    pub orphans: usize,
    /// `provisioning` instances that found their machine.
    pub adopted: usize,
    /// `provisioning` instances asked for again.
    pub reprovisioned: usize,
    /// Instances whose machine is gone, failed.
    pub gone: usize,
    /// Terminated records deleted.
    pub purged: usize,
}

/// The reconciler.
#[derive(Debug, Clone)]
pub struct Reconciler {
    /// Shared with the pool manager.
    pub ctx: Ctx,
}

/// The running loop; [`ReconcilerHandle::stop`] ends it.
#[derive(Debug)]
pub struct ReconcilerHandle {
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    thread: JoinHandle<()>,
}

impl ReconcilerHandle {
    /// Ends the loop after the pass under way.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify();
        let _ = self.thread.join();
    }
}

impl Reconciler {
    /// One pass over every pool's providers (nothing when this process may not act).
    pub fn run_once(&self) -> Result<ReconcileReport, StoreError> {
        let mut r = ReconcileReport::default();
        let ctx = &self.ctx;
        if !ctx.leader.may_act() {
            return Ok(r);
        }
        for row in ctx.store.pools()? {
            let pool = match row.spec().map_err(|e| e.to_string()).and_then(|s| {
                Pool::build(s).map_err(|e| format!("{} problem(s) in the spec", e.len()))
            }) {
                Ok(p) => p,
                Err(e) => {
                    warn!(pool = %row.name, error = %e, "pool not reconciled");
                    continue;
                }
            };
            let (rows, _) = ctx.store.list_instances(&InstanceFilter {
                pool: Some(row.name.clone()),
                states: Vec::new(),
                offset: 0,
                limit: i64::from(i32::MAX),
            })?;
            for spec in &pool.providers {
                let mine: Vec<&InstanceRow> =
                    rows.iter().filter(|i| i.provider == spec.name).collect();
                self.provider(&pool, spec, &mine, &mut r)?;
            }
        }
        let before = ctx
            .clock
            .now_ms()
            .saturating_sub(i64::try_from(ctx.settings.retention.as_millis()).unwrap_or(i64::MAX));
        r.purged = ctx.store.purge_instances(before)?;
        Ok(r)
    }

    fn provider(
        &self,
        pool: &Pool,
        spec: &crate::model::pool::ProviderSpec,
        mine: &[&InstanceRow],
        r: &mut ReconcileReport,
    ) -> Result<(), StoreError> {
        let ctx = &self.ctx;
        let name = &pool.spec.name;
        let provider = match ctx.providers.get(name, spec, &ctx.env) {
            Ok(p) => p,
            Err(e) => {
                ctx.error(name, e);
                return Ok(());
            }
        };
        let p = provider.clone();
        let listed = match call("list", ctx.settings.call_timeout, move || p.list()) {
            Ok(l) => l,
            Err(e) => {
                ctx.error(name, format!("provider {}: list: {}", spec.name, e.message));
                return Ok(());
            }
        };
        let now = ctx.clock.now_ms();
        let live: HashMap<&str, &crate::pool::provider::Listed> = listed
            .iter()
            .filter(|m| m.state != ListedState::Gone)
            .filter_map(|m| m.instance_id.as_deref().map(|i| (i, m)))
            .collect();
        let known: HashSet<&str> = mine.iter().map(|i| i.id.as_str()).collect();
        // Orphans: tagged machines whose instance is unknown or terminated.
        for (id, m) in &live {
            let orphan = if known.contains(id) {
                mine.iter()
                    .any(|i| i.id == *id && i.state == InstanceState::Terminated.as_str())
            } else {
                match ctx.store.instance(id) {
                    Err(StoreError::NotFound(_)) => true,
                    Ok(i) => i.state == InstanceState::Terminated.as_str(),
                    Err(e) => return Err(e),
                }
            };
            if !orphan || ctx.in_flight.contains(id) {
                continue;
            }
            let (p, pid) = (provider.clone(), m.provider_id.clone());
            match call("terminate", ctx.settings.call_timeout, move || {
                p.terminate(&pid)
            }) {
                Ok(()) => {
                    info!(pool = %name, instance = %id, provider_id = %m.provider_id, "orphan machine terminated");
                    r.orphans += 1;
                }
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => ctx.error(
                    name,
                    format!(
                        "provider {}: terminate orphan {}: {}",
                        spec.name, m.provider_id, e.message
                    ),
                ),
            }
        }
        let grace = i64::try_from(ctx.settings.call_timeout.as_millis()).unwrap_or(i64::MAX);
        for i in mine {
            let state = i.state()?;
            match state {
                InstanceState::Provisioning if i.provider_id.is_none() => {
                    if ctx.in_flight.contains(&i.id) || now.saturating_sub(i.updated_at) < grace {
                        continue;
                    }
                    if let Some(m) = live.get(i.id.as_str()) {
                        let u = InstanceUpdate {
                            state: Some(InstanceState::Registering),
                            provider_id: Some(m.provider_id.clone()),
                            error: Some(None),
                            ..InstanceUpdate::default()
                        };
                        ctx.store.update_instance(&i.id, &u, now)?;
                        info!(pool = %name, instance = %i.id, provider_id = %m.provider_id, "adopted the machine of an instance left provisioning");
                        r.adopted += 1;
                    } else {
                        let join = token::issue(TokenKind::Node)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        let expires = now.saturating_add(pool.registration_timeout_ms);
                        ctx.store
                            .rotate_join_token(&i.id, &join.digest, Some(expires), now)?;
                        info!(pool = %name, instance = %i.id, "asking again for an instance left provisioning");
                        start_provision(ctx, pool, i, join.secret);
                        r.reprovisioned += 1;
                    }
                }
                InstanceState::Registering | InstanceState::Running if i.provider_id.is_some() => {
                    if live.contains_key(i.id.as_str()) {
                        continue;
                    }
                    // Machines listed without our tag are matched by the provider's id.
                    let pid = i.provider_id.as_deref().unwrap_or_default();
                    if listed
                        .iter()
                        .any(|m| m.provider_id == pid && m.state != ListedState::Gone)
                    {
                        continue;
                    }
                    let u = InstanceUpdate {
                        state: Some(InstanceState::Failed),
                        error: Some(Some(format!(
                            "provider {} lists its machine {pid} as gone",
                            spec.name
                        ))),
                        ..InstanceUpdate::default()
                    };
                    ctx.store.update_instance(&i.id, &u, now)?;
                    warn!(pool = %name, instance = %i.id, provider_id = %pid, "machine gone: instance failed, to be replaced");
                    r.gone += 1;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Starts the loop: a pass every `reconcile_interval`, the first one interval after the start.
    pub fn spawn(self) -> std::io::Result<ReconcilerHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let wake: Arc<Wake> = Arc::default();
        let (st, w) = (stop.clone(), wake.clone());
        let thread = std::thread::Builder::new()
            .name("pool-reconcile".into())
            .spawn(move || loop {
                w.wait(self.ctx.settings.reconcile_interval);
                if st.load(Ordering::SeqCst) {
                    break;
                }
                if let Err(e) = self.run_once() {
                    warn!(error = %e, "instance reconcile failed; trying again next interval");
                }
            })?;
        Ok(ReconcilerHandle { stop, wake, thread })
    }
}

#[cfg(test)]
mod tests;
