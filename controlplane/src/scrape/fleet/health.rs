//! The fleet's share of health: what the policy reads for a node, the node's health state
//! machine fed with the policy's matches, and health changes the store refused.

use std::sync::{Arc, Mutex};

use super::{Fleet, Target};
use crate::judge::health::HealthChange;
use crate::judge::policy::{Match, NodeInput};
use crate::model::observation::NodeObservation;
use crate::model::Connectivity;

impl Fleet {
    /// Keeps a health change the store could not write, to write it again later (the latest
    /// per node wins).
    pub fn health_unsaved(&self, id: &str, change: HealthChange, at: i64) {
        self.unsaved_health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), (change, at));
    }

    /// The health changes to write again.
    pub fn take_unsaved_health(&self) -> Vec<(String, HealthChange, i64)> {
        self.unsaved_health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(id, (c, at))| (id, c, at))
            .collect()
    }

    /// What the policy needs for a node: its latest observation, the one before with the
    /// seconds between them, the node's facts, and its remembered rule results.
    #[allow(clippy::type_complexity)]
    pub fn policy_input(
        &self,
        id: &str,
    ) -> Option<(
        Option<Arc<NodeObservation>>,
        Option<(Arc<NodeObservation>, f64)>,
        NodeInput,
        Arc<Mutex<crate::judge::policy::RuleMemo>>,
    )> {
        let map = self.lock();
        let t = map.get(id)?;
        let prev = match (&t.previous, t.last_success) {
            (Some((p, at)), Some(now)) => Some((p.clone(), (now - at) as f64 / 1000.0)),
            _ => None,
        };
        Some((t.observation.clone(), prev, node_input(t), t.memo.clone()))
    }

    /// Applies the state-rule matches of the latest observation.
    pub fn observed_health(&self, id: &str, matches: &[Match], now: i64) -> Option<HealthChange> {
        self.lock().get_mut(id)?.health.observe(matches, now)
    }

    /// Applies the matches of node rules run without an observation (offline node).
    pub fn unobserved_health(&self, id: &str, matches: &[Match], now: i64) -> Option<HealthChange> {
        self.lock()
            .get_mut(id)?
            .health
            .judge_unobserved(matches, now)
    }

    /// Applies the matches of one health event that happened at `time`.
    pub fn event_health(
        &self,
        id: &str,
        matches: &[Match],
        time: i64,
        now: i64,
    ) -> Option<HealthChange> {
        self.lock().get_mut(id)?.health.event(matches, time, now)
    }

    /// An operator clears a node's health; `None` when the node is not a target.
    pub fn clear_health(&self, id: &str, who: &str, now: i64) -> Option<Option<HealthChange>> {
        Some(self.lock().get_mut(id)?.health.clear(who, now))
    }

    /// Recomputes every node's health at `now` (degraded verdicts clear on time).
    pub fn settle_health(&self, now: i64) -> Vec<(String, HealthChange)> {
        self.lock()
            .values_mut()
            .filter_map(|t| t.health.settle(now).map(|c| (t.node_id.clone(), c)))
            .collect()
    }

    /// Offline targets, with their facts (node rules run on them without an observation).
    pub fn offline(&self) -> Vec<(String, NodeInput)> {
        self.lock()
            .values()
            .filter(|t| t.connectivity == Connectivity::Offline)
            .map(|t| (t.node_id.clone(), node_input(t)))
            .collect()
    }
}

pub(super) fn node_input(t: &Target) -> NodeInput {
    NodeInput {
        name: t.name.clone(),
        pool: t.pool.clone(),
        labels: t.labels.clone(),
        expected_gpus: t.expected_gpus,
        connectivity: t.connectivity.as_str().to_string(),
    }
}
