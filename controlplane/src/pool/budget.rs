//! The remediation budget (docs/POOLS.md, "Budget"): how many nodes remediation may hold
//! out of service at once, per pool and for the whole fleet, each the smaller of a
//! percentage and a count ([`BudgetSpec::limit`]). A node over either is *held* — marked
//! with the reason, not cordoned — and admitted when a slot frees, as nodes return.
//!
//! Recovery is never limited, by construction: [`Usage::recover`] returns [`Recovered`],
//! a type with no "hold" in it, so no caller can be told to wait before uncordoning or
//! clearing a node's health. (NVSentinel's breaker blocked recovery while tripped, and
//! latched until reset; this budget frees itself.)

use crate::model::pool::BudgetSpec;

/// Nodes in service and out of it, in the pool and in the whole fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Nodes of the pool (not terminated).
    pub pool_size: u32,
    /// Of those, held out of service by remediation (cordoned, draining or terminating
    /// because unhealthy).
    pub pool_out: u32,
    /// Nodes of the fleet.
    pub fleet_size: u32,
    /// Of those, held out of service by remediation, this pool's included.
    pub fleet_out: u32,
}

/// Whether remediation may take one more node out of service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead; the node now counts against the budget.
    Admit,
    /// Leave the node in service, marked as held with this reason.
    Hold {
        /// Which budget is full, and its numbers.
        reason: String,
    },
}

/// Recovery went ahead; the node, if it was out, no longer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered;

impl Usage {
    /// Asks to take one more node out of service under the `pool` and `fleet` budgets. A
    /// node already out (`already_out`: its remediation is under way) is admitted as it
    /// is, so a remediation once started finishes. Admitting counts the node.
    pub fn admit(&mut self, pool: &BudgetSpec, fleet: &BudgetSpec, already_out: bool) -> Admission {
        if already_out {
            return Admission::Admit;
        }
        let (pl, fl) = (pool.limit(self.pool_size), fleet.limit(self.fleet_size));
        let show = |b: &BudgetSpec, size: u32, limit: u32| {
            format!(
                "{limit} allowed: the smaller of {}% of {size} nodes (at least 1) and {}",
                b.max_percent, b.max_nodes
            )
        };
        if self.pool_out >= pl {
            return Admission::Hold {
                reason: format!(
                    "pool remediation budget full: {} of the pool's nodes already out of service, {}",
                    self.pool_out,
                    show(pool, self.pool_size, pl)
                ),
            };
        }
        if self.fleet_out >= fl {
            return Admission::Hold {
                reason: format!(
                    "fleet remediation budget full: {} nodes of the fleet already out of service, {}",
                    self.fleet_out,
                    show(fleet, self.fleet_size, fl)
                ),
            };
        }
        self.pool_out += 1;
        self.fleet_out += 1;
        Admission::Admit
    }

    /// A node taken out of service past the budget (an operator released it): counted like
    /// one admitted, so the nodes after it still wait.
    pub fn take(&mut self) {
        self.pool_out += 1;
        self.fleet_out += 1;
    }

    /// Uncordon, clear-health, or a hand release: never refused. A node that was out
    /// (`was_out`) frees its place in both budgets.
    pub fn recover(&mut self, was_out: bool) -> Recovered {
        if was_out {
            self.pool_out = self.pool_out.saturating_sub(1);
            self.fleet_out = self.fleet_out.saturating_sub(1);
        }
        Recovered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(max_percent: f64, max_nodes: u32) -> BudgetSpec {
        BudgetSpec {
            max_percent,
            max_nodes,
        }
    }

    /// Issue #13: a fatal XID on 5 of 10 nodes with a budget of 2 → 2 remediated, 3 held;
    /// the held ones go as the first return; recovery works while the budget is full.
    #[test]
    fn five_bad_of_ten_with_a_budget_of_two_remediates_two_and_holds_three() {
        let (pool, fleet) = (
            spec(100.0, 2),
            BudgetSpec {
                max_percent: 100.0,
                max_nodes: 100,
            },
        );
        let mut u = Usage {
            pool_size: 10,
            pool_out: 0,
            fleet_size: 10,
            fleet_out: 0,
        };
        let got: Vec<bool> = (0..5)
            .map(|_| u.admit(&pool, &fleet, false) == Admission::Admit)
            .collect();
        assert_eq!(got, vec![true, true, false, false, false]);
        let Admission::Hold { reason } = u.admit(&pool, &fleet, false) else {
            panic!()
        };
        assert!(
            reason.contains("pool remediation budget full: 2") && reason.contains("2 allowed"),
            "{reason}"
        );
        assert_eq!(
            u.admit(&pool, &fleet, true),
            Admission::Admit,
            "one under way carries on"
        );
        // Full, yet recovery goes ahead, and frees a place for a held node.
        assert_eq!(u.recover(true), Recovered);
        assert_eq!(u.admit(&pool, &fleet, false), Admission::Admit);
        assert_eq!(u.pool_out, 2);
        assert_eq!(
            u.recover(false),
            Recovered,
            "a node that was not out changes nothing"
        );
        assert_eq!(u.pool_out, 2);
    }

    #[test]
    fn the_fleet_budget_holds_across_pools() {
        let (pool, fleet) = (spec(50.0, 10), spec(10.0, 3));
        // A 100-node fleet with 3 already out elsewhere: this pool's first is held.
        let mut u = Usage {
            pool_size: 10,
            pool_out: 0,
            fleet_size: 100,
            fleet_out: 3,
        };
        let Admission::Hold { reason } = u.admit(&pool, &fleet, false) else {
            panic!()
        };
        assert!(
            reason.starts_with("fleet remediation budget full: 3"),
            "{reason}"
        );
        assert_eq!((u.pool_out, u.fleet_out), (0, 3), "a hold counts nothing");
    }

    /// A percentage alone is useless for small pools: 10 % of 3 nodes is 0.3.
    #[test]
    fn a_small_pool_may_still_remediate_one_node() {
        let d = BudgetSpec::default();
        let mut u = Usage {
            pool_size: 3,
            pool_out: 0,
            fleet_size: 3,
            fleet_out: 0,
        };
        assert_eq!(u.admit(&d, &d, false), Admission::Admit);
        assert!(matches!(u.admit(&d, &d, false), Admission::Hold { .. }));
        let paused = spec(100.0, 0);
        let mut u = Usage {
            pool_size: 3,
            ..Usage::default()
        };
        assert!(
            matches!(u.admit(&paused, &d, false), Admission::Hold { .. }),
            "max_nodes 0 pauses remediation"
        );
    }
}
