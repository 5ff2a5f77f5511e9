//! A pool as the API shows it: its spec as it was given, where it comes from, its node
//! count and target, and (`GET /v1/pools/{name}`) what the pool manager last did and why.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::model::pool::PoolSpec;
use crate::pool::select::SelectState;
use crate::store::pool_rows::{DecisionRow, InstanceRow, PoolRow};
use crate::store::StoreError;

use super::super::instances::InstanceView;

/// A pool, as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolView {
    /// The spec, as given (`POST /v1/pools`), defaults filled in.
    #[serde(flatten)]
    pub spec: PoolSpec,
    /// `api` (managed through the API) or `config` (declared in the config file; read-only
    /// through the API).
    pub source: String,
    /// The config file of a `config` pool.
    pub source_file: Option<String>,
    /// The pool's nodes now (all but terminated ones).
    pub nodes: i64,
    /// Nodes the pool is kept at: the operator's target (`POST /v1/pools/{name}/scale`)
    /// when set, else the pool manager's last target, else `min_nodes`; within the bounds.
    pub target: u32,
    /// The operator's target, when set.
    pub manual_target: Option<u32>,
    /// Pending jobs last pushed (`PUT /v1/pools/{name}/demand`), and when.
    pub pending_jobs: Option<i64>,
    /// When `pending_jobs` was pushed (RFC 3339).
    pub demand_at: Option<String>,
    /// `ok`, `degraded` or `error`, as the pool manager last saw the pool.
    pub status: String,
    /// The last error (a provider's, a failed instance's).
    pub last_error: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// One evaluation of the pool by the pool manager.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionView {
    /// When (RFC 3339).
    pub time: String,
    /// The target it set.
    pub target: i32,
    /// Why, a line each.
    pub reasons: Vec<String>,
    /// What it did (tagged by `kind`).
    #[schema(value_type = Vec<Object>)]
    pub actions: Value,
    /// The numbers it saw (serving, booting, unhealthy, …).
    #[schema(value_type = Object)]
    pub counts: Value,
}

/// Cooldowns left before the next scale-up and scale-down may start.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cooldowns {
    /// Seconds until a scale-up may start (0: now).
    pub scale_up_seconds: f64,
    /// Seconds until a scale-down may start (0: now).
    pub scale_down_seconds: f64,
}

/// The pool's remediation budget in use (its configuration is the spec's `budget`).
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetView {
    /// Nodes remediation may hold out of service at once now (of `nodes`).
    pub limit: u32,
    /// Nodes remediation holds out of service, at the last decision.
    pub in_use: u64,
    /// Unhealthy nodes held back by the budget, at the last decision.
    pub held: u64,
    /// The budget an operator set at run time (`PUT /v1/remediation/budget`), in force over
    /// the spec's `budget`; absent: the spec's is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<crate::model::pool::BudgetSpec>,
}

/// A provider of the pool, as its selection sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderStatus {
    /// Its name within the pool.
    pub name: String,
    /// Failures since its last success.
    pub failures: u32,
    /// Skipped until then (RFC 3339), while it backs off.
    pub retry_at: Option<String>,
    /// Its last failure.
    pub last_error: Option<String>,
    /// Its last success (RFC 3339).
    pub last_success: Option<String>,
    /// Whether it last said it has capacity.
    pub has_capacity: Option<bool>,
}

/// `GET /v1/pools/{name}`: the pool and what its manager did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolDetail {
    /// The pool.
    #[serde(flatten)]
    pub pool: PoolView,
    /// The last decisions, newest first.
    pub decisions: Vec<DecisionView>,
    /// Cooldowns left.
    pub cooldowns: Cooldowns,
    /// The remediation budget in use (`budget` is its configuration).
    pub budget_status: BudgetView,
    /// Instances asked for and not yet running, or being terminated.
    pub instances_in_flight: Vec<InstanceView>,
    /// Each provider's state: failures, backoff, last error.
    pub providers_status: Vec<ProviderStatus>,
}

/// Answer of `GET /v1/pools`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolList {
    /// Every pool, by name.
    pub pools: Vec<PoolView>,
    /// How many.
    pub total: usize,
}

fn u32_of(v: Option<i32>) -> Option<u32> {
    v.and_then(|n| u32::try_from(n).ok())
}

/// The listed view of a stored pool with `nodes` nodes.
pub fn view(row: &PoolRow, nodes: i64) -> Result<PoolView, StoreError> {
    let spec = row.spec()?;
    let manual = u32_of(row.manual_target);
    let target = manual
        .or(u32_of(row.last_target))
        .unwrap_or(spec.min_nodes)
        .clamp(spec.min_nodes, spec.max_nodes.max(spec.min_nodes));
    Ok(PoolView {
        source: row.source.clone(),
        source_file: row.source_file.clone(),
        nodes,
        target,
        manual_target: manual,
        pending_jobs: row.demand_pending,
        demand_at: row.demand_at.map(rfc3339),
        status: row.status.clone(),
        last_error: row.last_error.clone(),
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
        spec,
    })
}

fn decision(d: &DecisionRow) -> DecisionView {
    DecisionView {
        time: rfc3339(d.time),
        target: d.target,
        reasons: serde_json::from_str(&d.reasons).unwrap_or_else(|_| vec![d.reasons.clone()]),
        actions: serde_json::from_str(&d.actions).unwrap_or(Value::Null),
        counts: serde_json::from_str(&d.counts).unwrap_or(Value::Null),
    }
}

fn left_seconds(since: Option<i64>, cooldown: &crate::model::pool::DurationText, now: i64) -> f64 {
    let (Some(t), Ok(d)) = (since, cooldown.parse()) else {
        return 0.0;
    };
    let end = t.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    // Milliseconds to seconds, for people: the precision lost does not matter.
    #[allow(clippy::cast_precision_loss)]
    let s = (end.saturating_sub(now)).max(0) as f64 / 1000.0;
    s
}

fn providers(row: &PoolRow) -> Vec<ProviderStatus> {
    let state: SelectState = serde_json::from_str(&row.select_state).unwrap_or_default();
    state
        .providers
        .into_iter()
        .map(|(name, h)| ProviderStatus {
            name,
            failures: h.failures,
            retry_at: (h.retry_at_ms > 0).then(|| rfc3339(h.retry_at_ms)),
            last_error: h.last_error,
            last_success: h.last_success_ms.map(rfc3339),
            has_capacity: h.has_capacity,
        })
        .collect()
}

/// The detailed view: `decisions` newest first, `in_flight` the pool's instances not yet
/// running or being terminated.
pub fn detail(
    row: &PoolRow,
    nodes: i64,
    decisions: &[DecisionRow],
    in_flight: &[InstanceRow],
    now: i64,
) -> Result<PoolDetail, StoreError> {
    let pool = view(row, nodes)?;
    let spec = &pool.spec;
    let last_change = row.last_scale_up.max(row.last_scale_down);
    let counts = decisions
        .first()
        .and_then(|d| serde_json::from_str::<Value>(&d.counts).ok())
        .unwrap_or(Value::Null);
    let budget_status = BudgetView {
        limit: spec.budget.limit(u32::try_from(nodes).unwrap_or(u32::MAX)),
        in_use: counts["remediating"].as_u64().unwrap_or(0),
        held: counts["held"].as_u64().unwrap_or(0),
        operator: None,
    };
    let cooldowns = Cooldowns {
        scale_up_seconds: left_seconds(row.last_scale_up, &spec.scale_up_cooldown, now),
        scale_down_seconds: left_seconds(last_change, &spec.scale_down_cooldown, now),
    };
    let instances_in_flight = in_flight
        .iter()
        .map(InstanceView::of)
        .collect::<Result<_, _>>()?;
    Ok(PoolDetail {
        decisions: decisions.iter().map(decision).collect(),
        cooldowns,
        budget_status,
        instances_in_flight,
        providers_status: providers(row),
        pool,
    })
}
