//! The pool spec itself, its remediation plan and budget (see the parent module).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::autoscaler::AutoscalerSpec;
use super::duration::DurationText;
use super::plan::Plan;
use super::provider::{ProviderSpec, Strategy};

/// A pool: a set of nodes gpuwarden keeps at the right size with healthy machines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Unique name, like a node name (`crate::validate::NAME_RULE`).
    pub name: String,
    /// Shorthand for one provider of that kind, named after it (`"local"`). Give this or
    /// `providers`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The providers that may create this pool's machines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderSpec>,
    /// How a provider is chosen among several (default `priority`).
    #[serde(default)]
    pub strategy: Strategy,
    /// What to ask the provider for (`gpu_8x_h100_sxm5`); meaning is the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Where (`us-east-1`); meaning is the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Zones within the region, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Labels given to the pool's nodes (and to Prometheus through `/v1/sd`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Fewest serving nodes; enforced with or without an autoscaler.
    pub min_nodes: u32,
    /// Most nodes, instances still booting included.
    pub max_nodes: u32,
    /// Least time between two scale-ups (default `1m`). Being below `min_nodes` is not
    /// held by it: instances in flight are counted, so that cannot provision twice.
    #[serde(default = "default_scale_up_cooldown")]
    pub scale_up_cooldown: DurationText,
    /// Least time after a scale-up or a scale-down before the next scale-down starts
    /// (default `5m`).
    #[serde(default = "default_scale_down_cooldown")]
    pub scale_down_cooldown: DurationText,
    /// An instance whose agent has not registered this long after it was asked for is
    /// failed, terminated and replaced (default `10m`; not zero).
    #[serde(default = "default_registration_timeout")]
    pub registration_timeout: DurationText,
    /// Replace unhealthy nodes: the replacement first while below `max_nodes` (surge),
    /// else drain first (default `false`).
    #[serde(default)]
    pub auto_replace: bool,
    /// What sizes the pool; none: `min_nodes`, or the target set through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerSpec>,
    /// What happens to an unhealthy node of this pool.
    #[serde(default)]
    pub remediation: RemediationSpec,
    /// How many nodes remediation may hold out of service at once.
    #[serde(default)]
    pub budget: BudgetSpec,
    /// The plugins the pool's nodes run, each pinned to a digest. When given, they are the
    /// pool's assignments (applied with the spec; `PUT /v1/pools/{name}/plugins` is then
    /// refused: change them here); absent, the assignments are made through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<crate::model::plugin::PluginAssign>>,
}

fn default_scale_up_cooldown() -> DurationText {
    "1m".into()
}

fn default_scale_down_cooldown() -> DurationText {
    "5m".into()
}

fn default_registration_timeout() -> DurationText {
    "10m".into()
}

impl PoolSpec {
    /// The remediation plan: the pool's own `remediation.action`, else
    /// `cordon_drain_terminate` with `auto_replace`, else `inherited`
    /// (`[remediation.pools.NAME]`, else `[remediation] action`).
    pub fn plan(&self, inherited: Plan) -> Plan {
        self.remediation.action.unwrap_or(if self.auto_replace {
            Plan::CordonDrainTerminate
        } else {
            inherited
        })
    }

    /// A pool with every default, one `kind` provider, `min..=max` nodes.
    pub fn new(name: &str, kind: &str, min_nodes: u32, max_nodes: u32) -> PoolSpec {
        PoolSpec {
            name: name.to_string(),
            provider: Some(kind.to_string()),
            providers: Vec::new(),
            strategy: Strategy::default(),
            instance_type: None,
            region: None,
            zones: Vec::new(),
            labels: BTreeMap::new(),
            min_nodes,
            max_nodes,
            scale_up_cooldown: default_scale_up_cooldown(),
            scale_down_cooldown: default_scale_down_cooldown(),
            registration_timeout: default_registration_timeout(),
            auto_replace: false,
            autoscaler: None,
            remediation: RemediationSpec::default(),
            budget: BudgetSpec::default(),
            plugins: None,
        }
    }

    /// The providers in effect: `providers`, or the one `provider` stands for.
    pub fn provider_list(&self) -> Vec<ProviderSpec> {
        match &self.provider {
            Some(kind) if self.providers.is_empty() => vec![ProviderSpec::of_kind(kind)],
            _ => self.providers.clone(),
        }
    }
}

/// What happens to an unhealthy node of the pool (the `[remediation.pools.NAME]` plan of
/// older configs, now part of the pool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemediationSpec {
    /// `nothing`, `cordon`, `cordon_drain` or `cordon_drain_terminate`. Unset (the
    /// default): `cordon_drain_terminate` when the pool has `auto_replace` (replacing a node
    /// is draining and terminating it once its replacement serves), else the pool inherits
    /// `[remediation.pools.NAME]`, else `[remediation] action` (default `cordon`): declaring
    /// a pool never makes remediation go further than the operator chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Plan>,
    /// Longest a drain may take before the next step goes ahead anyway (default `30m`).
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: DurationText,
}

fn default_drain_timeout() -> DurationText {
    "30m".into()
}

impl Default for RemediationSpec {
    fn default() -> Self {
        RemediationSpec {
            action: None,
            drain_timeout: default_drain_timeout(),
        }
    }
}

/// The remediation budget: the most nodes remediation may hold out of service at once,
/// the smaller of `max_percent` of the pool and `max_nodes`.
///
/// The defaults, 10 % and 2: one bad driver roll-out or a switch failure turns many nodes
/// unhealthy at once, and remediating them all would take the fleet down with the fault;
/// 10 % keeps nine in ten nodes serving while the cause is found, and the count keeps a
/// large pool (1,000 nodes: 100) from draining a rack's worth before anyone looks. The
/// percentage is rounded down but never below one node, so a small pool (3 nodes: 0.3)
/// can still remediate one at a time; a percentage alone would allow none. `max_nodes = 0`
/// holds every node (remediation paused). Recovery (uncordon, clear-health) is never
/// limited by it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// Percentage of the pool's nodes, more than 0 and at most 100 (default 10).
    #[serde(default = "default_max_percent")]
    pub max_percent: f64,
    /// Count of nodes (default 2).
    #[serde(default = "default_max_nodes")]
    pub max_nodes: u32,
}

fn default_max_percent() -> f64 {
    10.0
}

fn default_max_nodes() -> u32 {
    2
}

impl Default for BudgetSpec {
    fn default() -> Self {
        BudgetSpec {
            max_percent: default_max_percent(),
            max_nodes: default_max_nodes(),
        }
    }
}

impl BudgetSpec {
    /// The most nodes out of service at once among `size`: the smaller of `max_nodes` and
    /// `max_percent` of `size` rounded down, the latter at least 1.
    pub fn limit(&self, size: u32) -> u32 {
        let by_percent = (f64::from(size) * self.max_percent / 100.0).floor();
        // `as` saturates, and the percentage is validated to 0..=100.
        let by_percent = (by_percent as u32).max(1);
        by_percent.min(self.max_nodes)
    }
}
