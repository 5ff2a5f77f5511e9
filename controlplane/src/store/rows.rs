//! Table rows as diesel reads and writes them, and their conversion to the API's types.
//! Fields are the columns of [`super::schema`], documented there and in `migrations/`.
#![allow(missing_docs)]

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::schema::*;
use super::StoreError;
use crate::clock::rfc3339;
use crate::model;

/// A row of `nodes`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = nodes)]
#[diesel(treat_none_as_null = true)]
pub struct NodeRow {
    pub id: String,
    pub name: String,
    pub pool: String,
    pub labels: String,
    pub address: Option<String>,
    pub status: String,
    pub health: String,
    pub connectivity: String,
    pub capabilities: String,
    pub source: String,
    pub agent_instance: Option<String>,
    pub event_cursor: i64,
    pub deregistered: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_seen: Option<i64>,
    pub instance_id: Option<String>,
}

fn parse<T: std::str::FromStr<Err = String>>(v: &str) -> Result<T, StoreError> {
    v.parse().map_err(StoreError::Corrupt)
}

impl NodeRow {
    /// A node that has just come to be known: health `unknown`, `offline`, no agent run yet.
    #[allow(clippy::too_many_arguments)]
    pub fn fresh(
        id: String,
        name: &str,
        pool: &str,
        labels: &BTreeMap<String, String>,
        address: Option<String>,
        status: model::Status,
        source: model::Source,
        now: i64,
    ) -> Self {
        Self {
            id,
            name: name.to_string(),
            pool: pool.to_string(),
            labels: serde_json::to_string(labels).unwrap_or_else(|_| "{}".into()),
            address,
            status: status.as_str().into(),
            health: model::Health::Unknown.as_str().into(),
            connectivity: model::Connectivity::Offline.as_str().into(),
            capabilities: "{}".into(),
            source: source.as_str().into(),
            agent_instance: None,
            event_cursor: 0,
            deregistered: false,
            created_at: now,
            updated_at: now,
            last_seen: None,
            instance_id: None,
        }
    }

    /// The GPUs its last registration listed (0 when none or unreadable). The count the
    /// node is expected to have is kept apart (`Store::expected_gpus`): it never drops with
    /// a registration that lists fewer.
    pub fn registered_gpus(&self) -> usize {
        serde_json::from_str::<model::Capabilities>(&self.capabilities)
            .map(|c| c.gpus.len())
            .unwrap_or(0)
    }

    /// The node's lifecycle status.
    pub fn status(&self) -> Result<model::Status, StoreError> {
        parse(&self.status)
    }
    /// Its connectivity.
    pub fn connectivity(&self) -> Result<model::Connectivity, StoreError> {
        parse(&self.connectivity)
    }
    /// Its labels.
    pub fn labels(&self) -> Result<BTreeMap<String, String>, StoreError> {
        serde_json::from_str(&self.labels)
            .map_err(|e| StoreError::Corrupt(format!("labels of node {}: {e}", self.id)))
    }

    /// The node as the API shows it (without scrape state).
    pub fn to_model(&self) -> Result<model::Node, StoreError> {
        let capabilities: model::Capabilities = serde_json::from_str(&self.capabilities)
            .map_err(|e| StoreError::Corrupt(format!("capabilities of node {}: {e}", self.id)))?;
        Ok(model::Node {
            id: self.id.clone(),
            name: self.name.clone(),
            pool: self.pool.clone(),
            labels: self.labels()?,
            address: self.address.clone(),
            status: self.status()?,
            health: parse(&self.health)?,
            connectivity: self.connectivity()?,
            gpus: capabilities.gpus.clone(),
            expected_gpus: self.registered_gpus(),
            capabilities: capabilities.clone(),
            agent_version: capabilities.agent_version.clone(),
            source: parse(&self.source)?,
            deregistered: self.deregistered,
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
            last_seen: self.last_seen.map(rfc3339),
            instance_id: self.instance_id.clone(),
            scrape: None,
            health_reason: None,
            held: None,
        })
    }
}

/// A row of `node_tokens`.
#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = node_tokens)]
pub struct NodeTokenRow {
    pub digest: String,
    pub node_id: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// A row of `admin_tokens`.
#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = admin_tokens)]
pub struct AdminTokenRow {
    pub digest: String,
    pub name: String,
    pub created_at: i64,
}

/// A row of `events`.
#[derive(Debug, Clone, Queryable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: i64,
    pub node_id: String,
    pub gpu: Option<i32>,
    pub uuid: Option<String>,
    pub kind: String,
    pub code: Option<i64>,
    pub message: String,
    pub severity: String,
    pub action: String,
    pub time: i64,
    pub agent_instance: String,
    pub agent_seq: i64,
    pub source: String,
}

impl From<EventRow> for model::Event {
    fn from(r: EventRow) -> Self {
        model::Event {
            id: r.id,
            node_id: r.node_id,
            gpu: r.gpu,
            uuid: r.uuid,
            kind: r.kind,
            code: r.code,
            message: r.message,
            severity: r.severity,
            action: r.action,
            time: rfc3339(r.time),
            agent_seq: r.agent_seq,
            source: r.source,
        }
    }
}

/// A new row of `events`.
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = events)]
pub struct NewEvent {
    pub node_id: String,
    pub gpu: Option<i32>,
    pub uuid: Option<String>,
    pub kind: String,
    pub code: Option<i64>,
    pub message: String,
    pub severity: String,
    pub action: String,
    pub time: i64,
    pub agent_instance: String,
    pub agent_seq: i64,
    pub source: String,
}

/// A row of `observations`: the latest values of one GPU (`gpu = -1`: the node).
#[derive(Debug, Clone, PartialEq, Queryable, Insertable, AsChangeset)]
#[diesel(table_name = observations)]
pub struct ObservationRow {
    pub node_id: String,
    pub gpu: i32,
    pub uuid: String,
    pub model: String,
    pub body: String,
    pub observed_at: i64,
}

/// A row of `transitions`.
#[derive(Debug, Clone, Queryable)]
#[diesel(table_name = transitions)]
pub struct TransitionRow {
    pub id: i64,
    pub node_id: String,
    pub field: String,
    pub from_state: String,
    pub to_state: String,
    pub reason: String,
    pub actor: String,
    pub time: i64,
}

impl From<TransitionRow> for model::Transition {
    fn from(r: TransitionRow) -> Self {
        model::Transition {
            field: r.field,
            from: r.from_state,
            to: r.to_state,
            reason: r.reason,
            actor: r.actor,
            time: rfc3339(r.time),
        }
    }
}

/// A new row of `transitions`.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = transitions)]
pub struct NewTransition {
    pub node_id: String,
    pub field: String,
    pub from_state: String,
    pub to_state: String,
    pub reason: String,
    pub actor: String,
    pub time: i64,
}

/// A row of `commands`.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = commands)]
pub struct CommandRow {
    pub id: String,
    pub node_id: String,
    pub kind: String,
    pub params: String,
    pub state: String,
    pub attempts: i32,
    pub result: Option<String>,
    pub requested_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub next_attempt_at: i64,
    pub completed_at: Option<i64>,
}

impl CommandRow {
    /// A new `pending` command for `node`, due at once.
    pub fn pending(
        id: String,
        node: &str,
        kind: model::CommandKind,
        params: &serde_json::Value,
        by: &str,
        now: i64,
    ) -> Self {
        CommandRow {
            id,
            node_id: node.to_string(),
            kind: kind.as_str().into(),
            params: params.to_string(),
            state: model::CommandState::Pending.as_str().into(),
            attempts: 0,
            result: None,
            requested_by: by.to_string(),
            created_at: now,
            updated_at: now,
            next_attempt_at: now,
            completed_at: None,
        }
    }

    /// The command as the API shows it.
    pub fn to_model(&self) -> Result<model::Command, StoreError> {
        Ok(model::Command {
            id: self.id.clone(),
            node_id: self.node_id.clone(),
            kind: parse(&self.kind)?,
            params: serde_json::from_str(&self.params)
                .map_err(|e| StoreError::Corrupt(format!("params of command {}: {e}", self.id)))?,
            state: parse(&self.state)?,
            attempts: self.attempts,
            message: self.result.as_deref().map(crate::store::rows::message_of),
            result: self.result.as_deref().map(|r| {
                serde_json::from_str(r).unwrap_or_else(|_| serde_json::Value::String(r.into()))
            }),
            requested_by: self.requested_by.clone(),
            created_at: rfc3339(self.created_at),
            completed_at: self.completed_at.map(rfc3339),
        })
    }
}

/// A row of `audit`.
#[derive(Debug, Clone, Queryable)]
#[diesel(table_name = audit)]
pub struct AuditRow {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
    pub result: String,
    pub time: i64,
}

impl From<AuditRow> for model::AuditEntry {
    fn from(r: AuditRow) -> Self {
        model::AuditEntry {
            id: r.id,
            actor: r.actor,
            action: r.action,
            target: r.target,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            result: r.result,
            time: rfc3339(r.time),
        }
    }
}

/// A new row of `audit`.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit)]
pub struct NewAudit {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
    pub result: String,
    pub time: i64,
}

impl NewAudit {
    /// An entry with result `ok`.
    pub fn ok(
        actor: &str,
        action: &str,
        target: &str,
        details: serde_json::Value,
        time: i64,
    ) -> Self {
        Self {
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            details: details.to_string(),
            result: "ok".to_string(),
            time,
        }
    }
}

/// The `message` of a stored result.
pub fn message_of(result: &str) -> String {
    serde_json::from_str::<serde_json::Value>(result)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| result.to_string())
}
