//! `[[pools]]`: pools declared in the config file. Each is checked with the same rules as
//! `POST /v1/pools` (`PoolSpec::validate`), every problem named `pools[I].FIELD`; names are
//! unique. A pool's `remediation` replaces the older `[remediation.pools.NAME]` of the same
//! name, which is still accepted (with a warning when both are given).

use std::collections::HashSet;

use super::{ControlPlaneConfig, PoolRemediation};
use crate::model::pool::PoolSpec;

/// Problems of the `[[pools]]`, each naming its key.
pub(super) fn problems(pools: &[PoolSpec]) -> Vec<String> {
    let mut p = Vec::new();
    let mut names = HashSet::new();
    for (i, spec) in pools.iter().enumerate() {
        for e in spec.validate() {
            p.push(format!("pools[{i}].{}: {}", e.field, e.message));
        }
        if !names.insert(spec.name.as_str()) {
            p.push(format!("pools[{i}].name: {:?} appears twice", spec.name));
        }
    }
    p
}

impl ControlPlaneConfig {
    /// Puts each `[[pools]]` entry's `remediation` into `remediation.pools` (the plan the
    /// remediation loop reads), over a `[remediation.pools.NAME]` of the same name; returns
    /// a warning for each such override. Call on a validated configuration.
    pub fn apply_pool_remediation(&mut self) -> Vec<String> {
        let mut warnings = Vec::new();
        for spec in &self.pools {
            // A pool without a plan of its own inherits `[remediation.pools.NAME]`.
            if spec.remediation.action.is_none() {
                continue;
            }
            let plan = PoolRemediation {
                action: spec.remediation.action,
                drain_timeout: spec.remediation.drain_timeout.parse().ok(),
            };
            if let Some(old) = self.remediation.pools.insert(spec.name.clone(), plan) {
                if old != self.remediation.pools[&spec.name] {
                    warnings.push(format!(
                        "remediation.pools.{0}: overridden by the remediation of [[pools]] {0:?} \
                         (the pool's wins); move it into the pool (docs/POOLS.md, \"Config\")",
                        spec.name
                    ));
                } else {
                    warnings.push(format!(
                        "remediation.pools.{0}: the same as the remediation of [[pools]] {0:?}; \
                         it can go (docs/POOLS.md, \"Config\")",
                        spec.name
                    ));
                }
            }
        }
        warnings
    }
}
