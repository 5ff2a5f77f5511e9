//! `[[pools]]`: pools declared in the config file. Each is checked with the same rules as
//! `POST /v1/pools` (`PoolSpec::validate` here, each provider's params through the
//! [`super::PoolCheck`] the caller passes), every problem named `pools[I] (NAME).FIELD`;
//! names are unique. A pool's `remediation` replaces the older `[remediation.pools.NAME]` of the same
//! name, which is still accepted (with a warning when both are given).

use std::collections::HashSet;

use super::{ControlPlaneConfig, PoolRemediation};
use crate::model::pool::PoolSpec;

/// How a problem of `[[pools]]` entry `i` names it: `pools[1] (train)`, the name left out
/// when it is not a valid one (the key's path must stay readable: `pools[1].min_nodes`).
fn at(i: usize, spec: &PoolSpec) -> String {
    if crate::validate::name(&spec.name).is_ok() {
        format!("pools[{i}] ({})", spec.name)
    } else {
        format!("pools[{i}]")
    }
}

/// Problems of the `[[pools]]`, each naming its pool and key.
pub(super) fn problems(pools: &[PoolSpec]) -> Vec<String> {
    let mut p = Vec::new();
    let mut names = HashSet::new();
    for (i, spec) in pools.iter().enumerate() {
        for e in spec.validate() {
            p.push(format!("{}.{}: {}", at(i, spec), e.field, e.message));
        }
        if !names.insert(spec.name.as_str()) {
            p.push(format!(
                "{}.name: {:?} appears twice",
                at(i, spec),
                spec.name
            ));
        }
    }
    p
}

/// The problems `check` finds in each `[[pools]]` entry (each provider's params), named
/// like [`problems`].
fn checked(pools: &[PoolSpec], check: super::PoolCheck) -> Vec<String> {
    pools
        .iter()
        .enumerate()
        .flat_map(|(i, spec)| {
            check(spec)
                .into_iter()
                .map(move |e| format!("{}.{}: {}", at(i, spec), e.field, e.message))
        })
        .collect()
}

impl ControlPlaneConfig {
    /// What `check` finds in the `[[pools]]`, each line prefixed by the config file (for a
    /// configuration loaded without it: [`ControlPlaneConfig::load`]).
    pub fn checked_pools(&self, check: super::PoolCheck) -> Vec<String> {
        let source = self
            .file
            .as_ref()
            .map_or_else(|| "configuration".to_string(), |f| f.display().to_string());
        self.pool_check_problems(check)
            .into_iter()
            .map(|p| format!("{source}: {p}"))
            .collect()
    }

    /// What `check` finds in the `[[pools]]`, each naming its pool and field.
    pub(super) fn pool_check_problems(&self, check: super::PoolCheck) -> Vec<String> {
        checked(&self.pools, check)
    }

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
