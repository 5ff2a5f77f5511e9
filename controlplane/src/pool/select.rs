//! Which provider gets the next instance: by the pool's [`Strategy`], skipping a provider
//! that failed while it backs off (exponentially, per provider), so the next one is used.
//!
//! Pure: the state is a value the caller keeps (and may store; it is serde), passes in and
//! gets back changed; times are the caller's Unix milliseconds. Capacity is a preference,
//! failure an exclusion: a provider known to lack capacity is chosen only when no other
//! can be, and a provider backing off never is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::pool::{ProviderSpec, Strategy};

/// How long a failing provider is skipped: `base_ms` after the first failure, doubling
/// with each consecutive one, at most `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// After the first failure.
    pub base_ms: i64,
    /// The cap.
    pub max_ms: i64,
}

impl Default for Backoff {
    /// 10 s, doubling to at most 10 min.
    fn default() -> Self {
        Backoff {
            base_ms: 10_000,
            max_ms: 600_000,
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failures (none: 0).
    pub fn delay_ms(&self, failures: u32) -> i64 {
        if failures == 0 {
            return 0;
        }
        let doublings = (failures - 1).min(40);
        self.base_ms
            .saturating_mul(1i64 << doublings)
            .min(self.max_ms)
    }
}

/// What the pool knows of one provider's recent behaviour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderHealth {
    /// Failures since its last success.
    pub failures: u32,
    /// Skipped until then (Unix ms); 0: not backing off.
    pub retry_at_ms: i64,
    /// Its last success (Unix ms).
    pub last_success_ms: Option<i64>,
    /// Its last failure's message, for the pool's status.
    pub last_error: Option<String>,
    /// Whether it last said it has capacity for the pool's instance type (unknown: none).
    pub has_capacity: Option<bool>,
    /// Smooth weighted round-robin's running weight.
    #[serde(default)]
    rr_current: i64,
}

/// The selection state of one pool, keyed by provider name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectState {
    /// Per provider.
    pub providers: BTreeMap<String, ProviderHealth>,
}

/// The provider chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Its name.
    pub name: String,
    /// Why it, for the pool's last decisions.
    pub reason: String,
}

/// No provider may be asked now.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NoProvider {
    /// The pool has none.
    #[error("the pool has no provider")]
    Empty,
    /// Every provider failed recently and backs off.
    #[error("every provider is backing off after failures; the first may be retried at {}", crate::clock::rfc3339(*retry_at_ms))]
    BackingOff {
        /// When the first one may be asked again (Unix ms).
        retry_at_ms: i64,
    },
}

impl SelectState {
    /// The provider for the next instance at `now_ms`, by `strategy` among `providers`
    /// (entries of providers no longer listed are dropped).
    pub fn choose(
        &mut self,
        providers: &[ProviderSpec],
        strategy: Strategy,
        now_ms: i64,
    ) -> Result<Choice, NoProvider> {
        if providers.is_empty() {
            return Err(NoProvider::Empty);
        }
        self.providers
            .retain(|name, _| providers.iter().any(|p| &p.name == name));
        let ready: Vec<(usize, &ProviderSpec)> = providers
            .iter()
            .enumerate()
            .filter(|(_, p)| self.health(&p.name).retry_at_ms <= now_ms)
            .collect();
        if ready.is_empty() {
            let retry_at_ms = providers
                .iter()
                .map(|p| self.health(&p.name).retry_at_ms)
                .min()
                .unwrap_or(now_ms);
            return Err(NoProvider::BackingOff { retry_at_ms });
        }
        let skipped = providers.len() - ready.len();
        let note = if skipped > 0 {
            format!(" ({skipped} backing off)")
        } else {
            String::new()
        };
        // Providers known to lack capacity only when nothing else is ready.
        let with_capacity: Vec<(usize, &ProviderSpec)> = ready
            .iter()
            .copied()
            .filter(|(_, p)| self.health(&p.name).has_capacity != Some(false))
            .collect();
        let pool = if with_capacity.is_empty() {
            ready
        } else {
            with_capacity
        };
        let (name, why) = match strategy {
            Strategy::Priority => {
                let p = pool
                    .iter()
                    .min_by_key(|(i, p)| (p.priority, *i))
                    .map(|x| x.1);
                (p, "the highest priority ready")
            }
            Strategy::Cost => {
                let p = pool
                    .iter()
                    .min_by(|(i, a), (j, b)| {
                        let cost = |p: &ProviderSpec| p.cost_per_hour.unwrap_or(f64::INFINITY);
                        cost(a)
                            .total_cmp(&cost(b))
                            .then(a.priority.cmp(&b.priority))
                            .then(i.cmp(j))
                    })
                    .map(|x| x.1);
                (p, "the cheapest with capacity")
            }
            Strategy::Availability => {
                let p = pool
                    .iter()
                    .min_by_key(|(i, p)| {
                        let h = self.health(&p.name);
                        // Most recent success first, then fewest failures, then priority.
                        (
                            std::cmp::Reverse(h.last_success_ms),
                            h.failures,
                            p.priority,
                            *i,
                        )
                    })
                    .map(|x| x.1);
                (p, "the most recently successful with capacity")
            }
            Strategy::WeightedRoundRobin => {
                let total: i64 = pool.iter().map(|(_, p)| i64::from(p.weight)).sum();
                for (_, p) in &pool {
                    self.providers.entry(p.name.clone()).or_default().rr_current +=
                        i64::from(p.weight);
                }
                let p = pool
                    .iter()
                    .max_by_key(|(i, p)| (self.health(&p.name).rr_current, std::cmp::Reverse(*i)))
                    .map(|x| x.1);
                if let Some(p) = p {
                    self.providers.entry(p.name.clone()).or_default().rr_current -= total;
                }
                (p, "its turn by weight")
            }
        };
        let name = name.map(|p| p.name.clone()).ok_or(NoProvider::Empty)?;
        Ok(Choice {
            reason: format!("provider {name}: {why}{note}"),
            name,
        })
    }

    /// `name` provisioned or answered: its backoff ends.
    pub fn succeeded(&mut self, name: &str, now_ms: i64) {
        let h = self.providers.entry(name.to_string()).or_default();
        h.failures = 0;
        h.retry_at_ms = 0;
        h.last_success_ms = Some(now_ms);
        h.last_error = None;
    }

    /// `name` failed with `error`: it backs off by `backoff`.
    pub fn failed(&mut self, name: &str, error: &str, now_ms: i64, backoff: Backoff) {
        let h = self.providers.entry(name.to_string()).or_default();
        h.failures = h.failures.saturating_add(1);
        h.retry_at_ms = now_ms.saturating_add(backoff.delay_ms(h.failures));
        h.last_error = Some(error.to_string());
    }

    /// What `name` last said of its capacity (an insufficient-capacity error: `false`).
    pub fn capacity(&mut self, name: &str, has: bool) {
        self.providers
            .entry(name.to_string())
            .or_default()
            .has_capacity = Some(has);
    }

    fn health(&self, name: &str) -> &ProviderHealth {
        static NEVER_SEEN: ProviderHealth = ProviderHealth {
            failures: 0,
            retry_at_ms: 0,
            last_success_ms: None,
            last_error: None,
            has_capacity: None,
            rr_current: 0,
        };
        self.providers.get(name).unwrap_or(&NEVER_SEEN)
    }
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
