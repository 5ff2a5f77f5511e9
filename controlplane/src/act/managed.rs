//! What the pool manager shares with remediation and the API: which pools it manages (their
//! unhealthy nodes are its to remediate, within the pool's plan and budget, so
//! [`super::remediate`] leaves them alone: one decider per node, never two), and which
//! nodes it holds in service because the remediation budget is full.
//!
//! Both are derived again at every evaluation from the database (`decide` is a function of
//! the stored state), so keeping them in memory loses nothing in a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use prometheus::{IntGaugeVec, Opts};

use crate::metrics::Metrics;

/// The pools the pool manager runs.
#[derive(Debug, Clone, Default)]
pub struct ManagedPools(Arc<RwLock<BTreeSet<String>>>);

impl ManagedPools {
    /// Replaces the set.
    pub fn set(&self, pools: BTreeSet<String>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = pools;
    }

    /// Whether `pool` is managed.
    pub fn contains(&self, pool: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(pool)
    }
}

/// A node left in service because the remediation budget is full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldNode {
    /// Its pool.
    pub pool: String,
    /// Which budget is full, and its numbers.
    pub reason: String,
    /// Held since (Unix ms).
    pub since: i64,
}

/// The held nodes, and `gpuwarden_remediation_held_nodes{pool}`.
#[derive(Debug, Clone)]
pub struct Held {
    nodes: Arc<Mutex<BTreeMap<String, HeldNode>>>,
    gauge: IntGaugeVec,
    /// Bumped by every change (API caches key on it).
    generation: Arc<AtomicU64>,
}

impl Default for Held {
    /// An empty set whose gauge is not exported.
    fn default() -> Self {
        Held::new(None)
    }
}

impl Held {
    /// An empty set; its gauge is exported with `metrics` when given.
    pub fn new(metrics: Option<&Metrics>) -> Held {
        #[allow(clippy::expect_used)] // a constant definition: a failure is a programming error
        let gauge = IntGaugeVec::new(
            Opts::new(
                "gpuwarden_remediation_held_nodes",
                "Unhealthy nodes left in service because the remediation budget is full, by pool.",
            ),
            &["pool"],
        )
        .expect("metric definition");
        if let Some(m) = metrics {
            m.register(Box::new(gauge.clone()));
        }
        Held {
            nodes: Arc::default(),
            gauge,
            generation: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, HeldNode>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes so far: a cached answer that shows holds is stale once this moves.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Replaces the held nodes of `pool` by `held` (node, reason); returns those newly held.
    pub fn set_pool(
        &self,
        pool: &str,
        held: &[(String, String)],
        now: i64,
    ) -> Vec<(String, String)> {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|id, h| h.pool != pool || held.iter().any(|(n, _)| n == id));
        let mut changed = map.len() != before;
        let mut new = Vec::new();
        for (node, reason) in held {
            match map.get_mut(node) {
                Some(h) => {
                    changed |= h.reason != *reason;
                    h.reason = reason.clone();
                }
                None => {
                    changed = true;
                    new.push((node.clone(), reason.clone()));
                    map.insert(
                        node.clone(),
                        HeldNode {
                            pool: pool.to_string(),
                            reason: reason.clone(),
                            since: now,
                        },
                    );
                }
            }
        }
        self.gauge.with_label_values(&[pool]).set(held.len() as i64);
        if changed {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        new
    }

    /// Forgets pools no longer managed.
    pub fn keep_pools(&self, pools: &BTreeSet<String>) {
        let mut map = self.lock();
        let gone: BTreeSet<String> = map
            .values()
            .filter(|h| !pools.contains(&h.pool))
            .map(|h| h.pool.clone())
            .collect();
        map.retain(|_, h| pools.contains(&h.pool));
        if !gone.is_empty() {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        for p in gone {
            let _ = self.gauge.remove_label_values(&[&p]);
        }
    }

    /// Whether `node` is held, and why.
    pub fn get(&self, node: &str) -> Option<HeldNode> {
        self.lock().get(node).cloned()
    }

    /// Every held node.
    pub fn all(&self) -> BTreeMap<String, HeldNode> {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_replaced_per_pool_and_only_new_ones_are_reported() {
        let m = Metrics::new();
        let h = Held::new(Some(&m));
        let a = vec![
            ("n1".to_string(), "full".to_string()),
            ("n2".into(), "full".into()),
        ];
        assert_eq!(h.set_pool("p", &a, 1).len(), 2);
        assert_eq!(
            h.set_pool("p", &a, 2).len(),
            0,
            "the same holds again are not new"
        );
        assert_eq!(h.get("n1").unwrap().since, 1);
        let g = h.generation();
        h.set_pool("p", &a, 3);
        assert_eq!(h.generation(), g, "nothing changed");
        assert!(m
            .render()
            .contains("gpuwarden_remediation_held_nodes{pool=\"p\"} 2"));
        h.set_pool("p", &a[1..], 3);
        assert!(h.get("n1").is_none(), "a node no longer held is released");
        assert!(
            h.generation() > g,
            "a release moves the generation (API caches)"
        );
        assert!(m
            .render()
            .contains("gpuwarden_remediation_held_nodes{pool=\"p\"} 1"));
        h.keep_pools(&BTreeSet::new());
        assert!(h.all().is_empty());
    }

    #[test]
    fn managed_pools_answer_membership() {
        let m = ManagedPools::default();
        assert!(!m.contains("p"));
        m.set(["p".to_string()].into());
        assert!(m.contains("p"));
    }
}
