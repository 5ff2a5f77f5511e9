//! What a pool's evaluation reads beyond its nodes and instances, and keeps after it:
//!
//! - the operator's hand on its remediation ([`holds`]): the budget raised at run time, the
//!   held nodes released past it (forgotten once carried out, [`settle`]), and how long each
//!   held node has waited;
//! - its utilization history ([`History`]): kept in memory for the autoscalers and, for a
//!   pool whose autoscaler reads it (predictive), stored and loaded at start, so a restart
//!   forecasts from the same trend. Bounded by the pool's window and by
//!   `history_samples`; older samples are pruned as new ones come.

use std::collections::{HashMap, VecDeque};

use crate::model::{Health, Status};
use crate::pool::compile::Pool;
use crate::pool::decide::{Action, Decision, Holds, NodeView};
use crate::store::StoreError;

use super::context::Ctx;
use super::gather::{Gathered, Viewed};

/// The operator's budget and releases for `pool`, and its held nodes' ages.
pub(super) fn holds(ctx: &Ctx, g: &Gathered, pool: &str, views: &[Viewed]) -> Holds {
    Holds {
        budget: g.budgets.get(pool).copied(),
        released: views
            .iter()
            .filter(|(v, _)| g.releases.contains_key(&v.id))
            .map(|(v, _)| v.id.clone())
            .collect(),
        held_since: ctx
            .held
            .all()
            .into_iter()
            .filter(|(_, h)| h.pool == pool)
            .map(|(n, h)| (n, h.since))
            .collect(),
    }
}

/// Forgets the releases `d` carried out (the node is cordoned now), and those no longer
/// waiting (the node recovered, or is already out of service).
pub(super) fn settle(
    ctx: &Ctx,
    holds: &Holds,
    nodes: &[NodeView],
    d: &Decision,
) -> Result<(), StoreError> {
    for id in &holds.released {
        let done = d
            .actions
            .iter()
            .any(|a| matches!(a, Action::Cordon { node, .. } if node == id));
        let waits = nodes.iter().any(|n| {
            &n.id == id
                && n.health == Health::Unhealthy
                && matches!(n.status, Status::Active | Status::Pending)
        });
        if done || !waits {
            ctx.store.clear_release(id)?;
        }
    }
    Ok(())
}

/// Each pool's utilization over time, (Unix ms, ratio), oldest first.
#[derive(Debug, Default)]
pub(super) struct History(HashMap<String, VecDeque<(i64, f64)>>);

impl History {
    /// `pool`'s samples; on first sight, those stored within its window (at most `keep`).
    pub(super) fn of(
        &mut self,
        ctx: &Ctx,
        pool: &Pool,
        now: i64,
    ) -> Result<&mut VecDeque<(i64, f64)>, StoreError> {
        let name = &pool.spec.name;
        if !self.0.contains_key(name) {
            let stored = if pool.history_window_ms > 0 {
                let since = now.saturating_sub(pool.history_window_ms);
                ctx.store
                    .utilization(name, since, ctx.settings.history_samples)?
            } else {
                Vec::new()
            };
            self.0.insert(name.clone(), stored.into());
        }
        Ok(self.0.entry(name.clone()).or_default())
    }

    /// Stores the sample taken at `now`, when the pool's autoscaler reads the history, and
    /// prunes what it no longer reads: older than its window, or than the oldest sample
    /// kept in memory.
    pub(super) fn store(&self, ctx: &Ctx, pool: &Pool, now: i64) -> Result<(), StoreError> {
        if pool.history_window_ms <= 0 {
            return Ok(());
        }
        let Some(h) = self.0.get(&pool.spec.name) else {
            return Ok(());
        };
        let Some(&(t, u)) = h.back().filter(|(t, _)| *t == now) else {
            return Ok(());
        };
        let oldest = h.front().map_or(t, |(t, _)| *t);
        let keep_from = now.saturating_sub(pool.history_window_ms).max(oldest);
        ctx.store.add_utilization(&pool.spec.name, t, u, keep_from)
    }

    /// Forgets pools no longer managed.
    pub(super) fn keep(&mut self, pools: &std::collections::BTreeSet<String>) {
        self.0.retain(|p, _| pools.contains(p));
    }
}
