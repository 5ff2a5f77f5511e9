//! Rows of `pools`, `pool_decisions` and `instances` (see `migrations/*/…_pools`), and what
//! the pool manager writes back after each evaluation.
#![allow(missing_docs)]

use diesel::prelude::*;

use super::schema::{instances, pool_decisions, pools};
use super::StoreError;
use crate::model::pool::{InstanceState, PoolSpec};

/// Where a pool comes from: the API (read-write) or the config file (read-only through the
/// API; applied at start).
pub const SOURCE_API: &str = "api";
/// See [`SOURCE_API`].
pub const SOURCE_CONFIG: &str = "config";

/// A row of `pools`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = pools)]
pub struct PoolRow {
    pub name: String,
    /// The [`PoolSpec`] as JSON.
    pub spec: String,
    /// [`SOURCE_API`] or [`SOURCE_CONFIG`].
    pub source: String,
    /// The config file of a `config` pool.
    pub source_file: Option<String>,
    /// Nodes an operator asked for; `None`: the autoscaler's (or `min_nodes`).
    pub manual_target: Option<i32>,
    /// Pending jobs pushed by the operator's scheduler, and when (Unix ms).
    pub demand_pending: Option<i64>,
    pub demand_at: Option<i64>,
    /// The pool manager's last target.
    pub last_target: Option<i32>,
    /// When it last scaled up / down (Unix ms).
    pub last_scale_up: Option<i64>,
    pub last_scale_down: Option<i64>,
    /// `pool::select::SelectState` as JSON (`{}` at first).
    pub select_state: String,
    /// `ok`, `degraded` or `error` (the pool manager's word), with the last error.
    pub status: String,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl PoolRow {
    /// A new pool of `source` with no manager state yet.
    pub fn new(
        spec: &PoolSpec,
        source: &str,
        source_file: Option<String>,
        now: i64,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            name: spec.name.clone(),
            spec: spec_json(spec)?,
            source: source.to_string(),
            source_file,
            manual_target: None,
            demand_pending: None,
            demand_at: None,
            last_target: None,
            last_scale_up: None,
            last_scale_down: None,
            select_state: "{}".into(),
            status: "ok".into(),
            last_error: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// The pool's spec.
    pub fn spec(&self) -> Result<PoolSpec, StoreError> {
        serde_json::from_str(&self.spec)
            .map_err(|e| StoreError::Corrupt(format!("spec of pool {}: {e}", self.name)))
    }

    /// Whether the pool comes from the config file (read-only through the API).
    pub fn from_config(&self) -> bool {
        self.source == SOURCE_CONFIG
    }

    /// The conflict a change through the API gets when the pool is declared in the config
    /// file (naming the file); `None` for a pool of the API.
    pub fn config_conflict(&self) -> Option<StoreError> {
        self.from_config().then(|| {
            StoreError::Conflict(format!(
                "pool {:?} is declared in the config file {}; change it there",
                self.name,
                self.source_file.as_deref().unwrap_or("(unknown)")
            ))
        })
    }
}

/// A spec as stored.
pub(super) fn spec_json(spec: &PoolSpec) -> Result<String, StoreError> {
    serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// What the pool manager keeps of a pool between evaluations (`Store::save_pool_runtime`).
#[derive(Debug, Clone, PartialEq, AsChangeset)]
#[diesel(table_name = pools)]
#[diesel(treat_none_as_null = true)]
pub struct PoolRuntime {
    pub last_target: Option<i32>,
    pub last_scale_up: Option<i64>,
    pub last_scale_down: Option<i64>,
    /// `pool::select::SelectState` as JSON.
    pub select_state: String,
    pub status: String,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

/// A new row of `pool_decisions`: one evaluation of a pool.
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = pool_decisions)]
pub struct NewDecision {
    pub pool: String,
    pub time: i64,
    pub target: i32,
    /// JSON array of reasons (words).
    pub reasons: String,
    /// JSON array of actions (`pool::decide::Action`, tagged by kind).
    pub actions: String,
    /// JSON object of the counts the decision saw.
    pub counts: String,
}

/// A row of `pool_decisions`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = pool_decisions)]
pub struct DecisionRow {
    pub id: i64,
    pub pool: String,
    pub time: i64,
    pub target: i32,
    pub reasons: String,
    pub actions: String,
    pub counts: String,
}

/// A row of `instances`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = instances)]
pub struct InstanceRow {
    /// Our id (the one `Action::Provision` names), not the provider's.
    pub id: String,
    pub pool: String,
    /// The provider's name within the pool.
    pub provider: String,
    /// The provider's id for the machine, once it answered.
    pub provider_id: Option<String>,
    /// [`InstanceState`].
    pub state: String,
    /// The node that joins (or joined) from it.
    pub node_id: Option<String>,
    /// SHA-256 of its join token (never the secret).
    pub token_digest: Option<String>,
    pub error: Option<String>,
    /// Provider calls made for it (provision, terminate).
    pub attempts: i32,
    pub created_at: i64,
    /// When it entered its state (Unix ms).
    pub state_since: i64,
    pub updated_at: i64,
}

impl InstanceRow {
    /// Its state.
    pub fn state(&self) -> Result<InstanceState, StoreError> {
        self.state.parse().map_err(StoreError::Corrupt)
    }
}

/// An instance to record before its provider is called (`Store::create_instance`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewInstance {
    /// Our id for it (`Action::Provision`'s).
    pub id: String,
    pub pool: String,
    /// The provider chosen.
    pub provider: String,
    /// The node pre-created for it: its agent registers with the join token whose digest is
    /// `token_digest`, and the node then carries `pool` and `instance_id`. `None`: no node
    /// is pre-created (the provider's machine joins by itself).
    pub node: Option<InstanceNode>,
    pub now: i64,
}

/// The node pre-created for an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceNode {
    /// The node's id.
    pub id: String,
    /// Its name: the agent registers with it.
    pub name: String,
    /// Labels it starts with (the pool's).
    pub labels: std::collections::BTreeMap<String, String>,
    /// SHA-256 of the join token handed to the provider (never the secret).
    pub token_digest: String,
    /// When the join token stops working (the registration timeout).
    pub token_expires: Option<i64>,
}

/// A change to an instance (`Store::update_instance`); `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceUpdate {
    /// The new state, checked with [`InstanceState::transition`].
    pub state: Option<InstanceState>,
    pub provider_id: Option<String>,
    /// Links the instance and this node both ways (`nodes.instance_id`, the node's pool).
    pub node_id: Option<String>,
    /// `Some(None)` clears the error.
    pub error: Option<Option<String>>,
    /// Counts one more provider call.
    pub attempt: bool,
}

/// What applying the config file's pools did (`Store::apply_config_pools`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigApplied {
    /// Pools the config declared that did not exist.
    pub created: Vec<String>,
    /// Config pools whose spec changed.
    pub updated: Vec<String>,
    /// Pools created through the API that the config now declares: the config's wins.
    pub taken_over: Vec<String>,
    /// Config pools no longer in the config and without machines: deleted.
    pub removed: Vec<String>,
    /// Config pools no longer in the config that still have nodes or instances in flight:
    /// handed back to the API (as a `DELETE` without force would refuse to orphan them).
    pub handed_back: Vec<String>,
    /// Manual targets moved into a changed pool's new bounds, why for each.
    pub clamped: Vec<String>,
}
