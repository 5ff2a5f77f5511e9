//! Remediation: what the control plane does about an unhealthy node, step by step, as its
//! pool's plan says (`[remediation]`): cordon, then drain, then terminate.
//!
//! Nothing here is remembered in memory. Each pass looks at every unhealthy node and decides
//! its next step from the database alone: its status, when it last turned unhealthy (the
//! episode), and the commands created since. A step is stored with its transition, its
//! command and its audit entry in one transaction, and the next step is taken only once the
//! agent reported the previous one done. So a control plane killed mid-remediation carries
//! on where it stopped, and no step is taken twice.
//!
//! An operator who acts on the node during the episode (uncordon, drain, terminate by hand)
//! takes over: remediation leaves the node alone until it turns unhealthy again. A step
//! that failed stops the plan too; the failure is audited and notified.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;
use tracing::{info, warn};

use crate::act::wake::Wake;
use crate::act::webhooks::Notifier;
use crate::clock::SharedClock;
use crate::config::{Plan, RemediationConfig};
use crate::metrics::Metrics;
use crate::model::lifecycle::Step;
use crate::model::CommandKind;
use crate::store::rows::{CommandRow, NewAudit, NodeRow};
use crate::store::{Store, StoreError};

mod plan;
pub use plan::{decide, Decision, ACTOR};

/// The remediation loop.
#[derive(Clone)]
pub struct Remediator {
    /// Nodes, commands, transitions.
    pub store: Arc<Store>,
    /// Time.
    pub clock: SharedClock,
    /// Plans.
    pub cfg: RemediationConfig,
    /// Own metrics.
    pub metrics: Metrics,
    /// Webhooks.
    pub notifier: Notifier,
    /// Woken to deliver a new command.
    pub dispatch: Arc<Wake>,
    /// Wakes this loop (a node turned unhealthy, a command ended).
    pub wake: Arc<Wake>,
    /// Nodes with nothing (more) to do: id → (the node's `updated_at` then, its episode).
    /// Until the node row changes (a status or health change), it is not looked at again.
    settled: Arc<Mutex<HashMap<String, (i64, i64)>>>,
    /// Pools the pool manager runs: their nodes are its to remediate (within the pool's
    /// budget), not this loop's.
    managed: crate::act::managed::ManagedPools,
}

impl std::fmt::Debug for Remediator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remediator").finish_non_exhaustive()
    }
}

/// The running loop; [`RemediatorHandle::stop`] ends it.
#[derive(Debug)]
pub struct RemediatorHandle {
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    thread: JoinHandle<()>,
}

impl RemediatorHandle {
    /// Ends the loop after the pass under way.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify();
        let _ = self.thread.join();
    }
}

impl Remediator {
    /// A remediator; `wake` is the one the dispatcher and the scraper notify.
    pub fn new(
        store: Arc<Store>,
        clock: SharedClock,
        cfg: RemediationConfig,
        metrics: Metrics,
        notifier: Notifier,
        dispatch: Arc<Wake>,
        wake: Arc<Wake>,
    ) -> Self {
        Remediator {
            store,
            clock,
            cfg,
            metrics,
            notifier,
            dispatch,
            wake,
            settled: Arc::default(),
            managed: Default::default(),
        }
    }

    /// Leaves the nodes of `managed` pools to the pool manager.
    pub fn with_managed(mut self, managed: crate::act::managed::ManagedPools) -> Self {
        self.managed = managed;
        self
    }

    /// One pass over the unhealthy nodes; returns the steps taken.
    pub fn run_once(&self) -> usize {
        let nodes = match self.store.unhealthy_nodes() {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "remediation cannot read the unhealthy nodes");
                return 0;
            }
        };
        self.settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| nodes.iter().any(|n| n.id == *id));
        let mut steps = 0;
        for n in &nodes {
            match self.reconcile(n) {
                Ok(true) => steps += 1,
                Ok(false) => {}
                Err(e) => {
                    warn!(node = %n.id, error = %e, "remediation step failed; tried again next pass")
                }
            }
        }
        if steps > 0 {
            self.dispatch.notify();
        }
        steps
    }

    fn settle(&self, node: &NodeRow, since: i64) {
        self.settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.id.clone(), (node.updated_at, since));
    }

    fn reconcile(&self, node: &NodeRow) -> Result<bool, StoreError> {
        if self.managed.contains(&node.pool) {
            return Ok(false);
        }
        let (plan, drain_timeout) = self.cfg.for_pool(&node.pool);
        if plan == Plan::Nothing {
            return Ok(false);
        }
        let settled_at = self
            .settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&node.id)
            .copied();
        if settled_at.is_some_and(|(at, _)| at == node.updated_at) {
            return Ok(false);
        }
        let Some(since) = self.store.unhealthy_since(&node.id)? else {
            return Ok(false);
        };
        let episode: Vec<CommandRow> = self
            .store
            .commands(&node.id, 50)?
            .into_iter()
            .filter(|c| c.created_at >= since)
            .collect();
        let status = node.status()?;
        let step = match decide(plan, status, &episode) {
            Decision::Step(s) => s,
            Decision::Stop(why) => {
                self.settle(node, since);
                if settled_at.is_none_or(|(_, episode)| episode != since) {
                    warn!(node = %node.id, %why, "remediation stops for this node until it turns unhealthy again");
                    let now = self.clock.now_ms();
                    self.notifier.send(
                        "remediation",
                        &node.id,
                        now,
                        json!({"remediation": {"step": "stopped", "reason": why}}),
                    );
                }
                return Ok(false);
            }
            Decision::Done => {
                self.settle(node, since);
                return Ok(false);
            }
            Decision::Wait => return Ok(false),
        };
        let kind = match step {
            Step::Cordon => CommandKind::Cordon,
            Step::Drain => CommandKind::Drain,
            _ => CommandKind::Terminate,
        };
        let now = self.clock.now_ms();
        let health_reason = self
            .store
            .transitions(&node.id, 20)?
            .into_iter()
            .find(|t| t.field == "health" && t.to_state == "unhealthy")
            .map(|t| t.reason)
            .unwrap_or_else(|| "unhealthy".into());
        let reason = format!("{}: {health_reason}", plan.as_str());
        let timeout = humantime::format_duration(drain_timeout).to_string();
        let params = match kind {
            CommandKind::Drain => json!({"reason": reason, "timeout": timeout}),
            _ => json!({"reason": reason}),
        };
        let id = crate::token::random_id("cmd-")
            .map_err(|e| StoreError::Corrupt(format!("no randomness for a command id: {e}")))?;
        let cmd = CommandRow::pending(id.clone(), &node.id, kind, &params, ACTOR, now);
        let entry = NewAudit::ok(
            ACTOR,
            &format!("node.{}", step.as_str()),
            &node.id,
            json!({"reason": reason, "command": id, "plan": plan.as_str()}),
            now,
        );
        let (row, _) = self
            .store
            .apply_step(&node.id, step, &reason, ACTOR, Some(cmd), entry)?;
        info!(node = %node.id, step = step.as_str(), command = %id, status = %row.status, %reason, "remediation step");
        self.metrics
            .remediation_steps
            .with_label_values(&[step.as_str()])
            .inc();
        self.notifier.send(
            "remediation",
            &node.id,
            now,
            json!({"remediation": {"step": step.as_str(), "command": id, "plan": plan.as_str(),
                   "reason": reason, "status": row.status}}),
        );
        Ok(true)
    }

    /// Starts the loop: a pass when woken, and every second.
    pub fn spawn(self) -> std::io::Result<RemediatorHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let (st, wake) = (stop.clone(), self.wake.clone());
        let thread = std::thread::Builder::new()
            .name("remediation".into())
            .spawn(move || {
                while !st.load(Ordering::SeqCst) {
                    self.run_once();
                    self.wake.wait(Duration::from_secs(1));
                }
            })?;
        Ok(RemediatorHandle { stop, wake, thread })
    }
}
