//! A pool's providers and how one is chosen among several.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The provider kinds gpuwarden has (`crate::pool::provider`).
pub const PROVIDER_KINDS: &[&str] = &["fake", "local", "exec", "lambda"];

/// One provider of a pool.
///
/// Its provider-specific parameters go either in a `params` table or beside the common
/// keys (`{"name":"gpu-cloud","kind":"exec","provision":"/opt/x"}`); the provider checks
/// them. They are kept, and shown, as `params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "ProviderRaw")]
pub struct ProviderSpec {
    /// Unique within the pool; names it in status and errors.
    pub name: String,
    /// One of [`PROVIDER_KINDS`] (default: the name, so `{"name":"local"}` is enough).
    pub kind: String,
    /// Lower is tried first by the `priority` strategy, and breaks ties in the others
    /// (default 0).
    pub priority: u32,
    /// Share of provisions under `weighted_round_robin`, 1 to 1000 (default 1).
    pub weight: u32,
    /// Price of one instance, for the `cost` strategy (unknown: after the priced ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_per_hour: Option<f64>,
    /// Provider-specific parameters.
    #[schema(value_type = Object)]
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl ProviderSpec {
    /// A provider of `kind` with every default, named after its kind.
    pub fn of_kind(kind: &str) -> ProviderSpec {
        ProviderSpec {
            name: kind.to_string(),
            kind: kind.to_string(),
            priority: 0,
            weight: 1,
            cost_per_hour: None,
            params: serde_json::Map::new(),
        }
    }
}

/// The shape read, before the parameters given beside the common keys join `params`.
#[derive(Deserialize)]
struct ProviderRaw {
    name: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    priority: u32,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default)]
    cost_per_hour: Option<f64>,
    #[serde(default)]
    params: serde_json::Map<String, serde_json::Value>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

fn one() -> u32 {
    1
}

impl TryFrom<ProviderRaw> for ProviderSpec {
    type Error = String;

    fn try_from(r: ProviderRaw) -> Result<Self, String> {
        let mut params = r.params;
        for (k, v) in r.rest {
            if params.contains_key(&k) {
                return Err(format!(
                    "provider {:?}: parameter {k:?} is given both in `params` and beside it",
                    r.name
                ));
            }
            params.insert(k, v);
        }
        Ok(ProviderSpec {
            kind: r.kind.unwrap_or_else(|| r.name.clone()),
            name: r.name,
            priority: r.priority,
            weight: r.weight,
            cost_per_hour: r.cost_per_hour,
            params,
        })
    }
}

/// How a pool chooses the provider of its next instance (`crate::pool::select`). A
/// provider that failed is skipped while it backs off, whatever the strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The lowest `priority` first; the next one when it fails.
    #[default]
    Priority,
    /// In proportion to `weight`.
    WeightedRoundRobin,
    /// The cheapest `cost_per_hour` that has capacity.
    Cost,
    /// The one that succeeded most recently and has capacity.
    Availability,
}

impl Strategy {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Priority => "priority",
            Strategy::WeightedRoundRobin => "weighted_round_robin",
            Strategy::Cost => "cost",
            Strategy::Availability => "availability",
        }
    }
}
