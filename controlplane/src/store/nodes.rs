//! Nodes, their tokens and their lifecycle changes.

use diesel::prelude::*;

mod bootstrap;

use super::rows::{CommandRow, NewAudit, NewTransition, NodeRow, NodeTokenRow};
use super::schema::{audit, commands, expected_gpus, node_tokens, nodes, transitions};
use super::{is_unique_violation, with_conn, Store, StoreError, WriteTx};
use crate::model::lifecycle::{self, Step};
use crate::model::{Connectivity, Status};

/// Filters and page of `GET /v1/nodes`.
#[derive(Debug, Clone, Default)]
pub struct NodeFilter {
    /// Only this pool.
    pub pool: Option<String>,
    /// Only this lifecycle status.
    pub status: Option<String>,
    /// Only this health.
    pub health: Option<String>,
    /// Only this connectivity.
    pub connectivity: Option<String>,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

/// A self-registration, as the store applies it.
#[derive(Debug, Clone)]
pub struct Registration {
    /// A fresh node id, used when the name is new.
    pub new_id: String,
    /// The node's name.
    pub name: String,
    /// Its pool; `None` keeps the node's (or `default` for a new node).
    pub pool: Option<String>,
    /// Labels, merged over those the node has (the agent's win).
    pub labels: std::collections::BTreeMap<String, String>,
    /// Who registers: `bootstrap` or `join-token`.
    pub actor: String,
    /// Whether the credential is the bootstrap token: it creates nodes, and registers an
    /// existing one again only under the rule of `nodes/bootstrap.rs` (else 409).
    pub bootstrap: bool,
    /// Scrape base URL.
    pub address: String,
    /// Capabilities JSON.
    pub capabilities: String,
    /// Digest of the node token to issue.
    pub token_digest: String,
    /// When the token expires.
    pub token_expires: Option<i64>,
    /// Now.
    pub now: i64,
}

/// The outcome of a registration.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The node after the registration.
    pub node: NodeRow,
    /// True when the name was new.
    pub created: bool,
    /// GPUs it is expected to have now: the most it ever registered with, unless an
    /// operator lowered it since.
    pub expected_gpus: usize,
}

macro_rules! filtered {
    ($f:expr) => {{
        let mut q = nodes::table.into_boxed();
        if let Some(v) = &$f.pool {
            q = q.filter(nodes::pool.eq(v.clone()));
        }
        if let Some(v) = &$f.status {
            q = q.filter(nodes::status.eq(v.clone()));
        }
        if let Some(v) = &$f.health {
            q = q.filter(nodes::health.eq(v.clone()));
        }
        if let Some(v) = &$f.connectivity {
            q = q.filter(nodes::connectivity.eq(v.clone()));
        }
        q
    }};
}

impl Store {
    /// Inserts a node created by an operator, with its audit entry.
    pub fn create_node(&self, row: &NodeRow, entry: NewAudit) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            diesel::insert_into(nodes::table).values(row).execute(c).map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("a node named {:?} exists", row.name))
                } else {
                    e.into()
                }
            })?;
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        }))
    }

    /// One node, by id or, failing that, by name.
    pub fn node(&self, key: &str) -> Result<NodeRow, StoreError> {
        with_conn!(self, c => {
            let by_id = nodes::table.find(key).first::<NodeRow>(c).optional()?;
            let row = match by_id {
                Some(r) => Some(r),
                None => nodes::table
                    .filter(nodes::name.eq(key))
                    .first::<NodeRow>(c)
                    .optional()?,
            };
            row.ok_or_else(|| StoreError::NotFound(format!("node {key}")))
        })
    }

    /// Every node (the scraper's targets at start).
    pub fn all_nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        with_conn!(self, c => Ok(nodes::table.order(nodes::name).load::<NodeRow>(c)?))
    }

    /// A page of nodes by name, and how many match the filter.
    pub fn list_nodes(&self, f: &NodeFilter) -> Result<(Vec<NodeRow>, i64), StoreError> {
        with_conn!(self, c => {
            let total: i64 = filtered!(f).count().get_result(c)?;
            let rows = filtered!(f)
                .order(nodes::name)
                .offset(f.offset)
                .limit(f.limit)
                .load::<NodeRow>(c)?;
            Ok((rows, total))
        })
    }

    /// Applies a self-registration: the same name updates the same node.
    pub fn register(&self, r: &Registration) -> Result<Registered, StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let existing = nodes::table
                .filter(nodes::name.eq(&r.name))
                .first::<NodeRow>(c)
                .optional()?;
            let (mut node, created) = match existing {
                Some(n) if r.bootstrap => {
                    bootstrap::may_reregister(&n)?;
                    (n, false)
                }
                Some(n) => (n, false),
                None => {
                    let n = NodeRow::fresh(
                        r.new_id.clone(),
                        &r.name,
                        r.pool.as_deref().unwrap_or("default"),
                        &Default::default(),
                        None,
                        Status::Pending,
                        crate::model::Source::Registered,
                        r.now,
                    );
                    diesel::insert_into(nodes::table).values(&n).execute(c)?;
                    (n, true)
                }
            };
            let from = node.status()?;
            let to = lifecycle::next(from, Step::Register)
                .map_err(|e| StoreError::Conflict(format!("node {:?}: {e}", node.name)))?;
            if to != from {
                let t = NewTransition::of(&node, "status", to.as_str(), "agent registered", "agent", r.now);
                diesel::insert_into(transitions::table).values(&t).execute(c)?;
            }
            node.status = to.as_str().into();
            // A node a pool provisioned stays in that pool, whatever its agent says.
            if let (Some(p), None) = (&r.pool, &node.instance_id) {
                node.pool = p.clone();
            }
            let mut labels = node.labels()?;
            labels.extend(r.labels.clone());
            node.labels = serde_json::to_string(&labels)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            node.address = Some(r.address.clone());
            // The count an operator expects never drops because a GPU vanished: an agent
            // that comes back with fewer GPUs keeps the old count (gpu-missing fires);
            // lowering it is an operator's act (`set_expected_gpus`).
            let stored: Option<i32> = expected_gpus::table
                .find(&node.id)
                .select(expected_gpus::gpus)
                .first(c)
                .optional()?;
            let before = stored.map_or_else(|| node.registered_gpus(), |n| usize::try_from(n).unwrap_or(0));
            node.capabilities = r.capabilities.clone();
            let expected = before.max(node.registered_gpus());
            let n = i32::try_from(expected).unwrap_or(i32::MAX);
            diesel::insert_into(expected_gpus::table)
                .values((
                    expected_gpus::node_id.eq(&node.id),
                    expected_gpus::gpus.eq(n),
                    expected_gpus::updated_at.eq(r.now),
                ))
                .on_conflict(expected_gpus::node_id)
                .do_update()
                .set((expected_gpus::gpus.eq(n), expected_gpus::updated_at.eq(r.now)))
                .execute(c)?;
            node.deregistered = false;
            node.updated_at = r.now;
            diesel::update(nodes::table.find(&node.id)).set(&node).execute(c)?;
            // A registration rotates the node's token: the old ones stop working.
            diesel::delete(node_tokens::table.filter(node_tokens::node_id.eq(&node.id)))
                .execute(c)?;
            diesel::insert_into(node_tokens::table)
                .values(&NodeTokenRow {
                    digest: r.token_digest.clone(),
                    node_id: node.id.clone(),
                    created_at: r.now,
                    expires_at: r.token_expires,
                })
                .execute(c)?;
            let entry = NewAudit::ok(
                &r.actor,
                if from == Status::Pending { "node.register" } else { "node.reregister" },
                &node.id,
                serde_json::json!({"name": node.name, "address": r.address, "pool": r.pool}),
                r.now,
            );
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(Registered { node, created, expected_gpus: expected })
        }))
    }

    /// Moves a node one lifecycle step, storing the transition, the command for its agent
    /// (when there is one) and the audit entry in one transaction. When the step is not
    /// allowed nothing changes but the audit entry, which records the refusal.
    pub fn apply_step(
        &self,
        id: &str,
        step: Step,
        reason: &str,
        actor: &str,
        command: Option<CommandRow>,
        mut entry: NewAudit,
    ) -> Result<(NodeRow, Option<CommandRow>), StoreError> {
        let now = entry.time;
        let outcome = with_conn!(self, c => c.write_tx(|c| {
            let mut node = nodes::table
                .find(id)
                .first::<NodeRow>(c)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("node {id}")))?;
            let from = node.status()?;
            let to = lifecycle::next(from, step)
                .map_err(|e| StoreError::Conflict(e.to_string()))?;
            if to != from {
                let t = NewTransition::of(&node, "status", to.as_str(), reason, actor, now);
                diesel::insert_into(transitions::table).values(&t).execute(c)?;
                node.status = to.as_str().into();
                node.updated_at = now;
                diesel::update(nodes::table.find(id))
                    .set((nodes::status.eq(&node.status), nodes::updated_at.eq(now)))
                    .execute(c)?;
            }
            if let Some(cmd) = &command {
                diesel::insert_into(commands::table).values(cmd).execute(c)?;
            }
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok((node, command.clone()))
        }));
        if let Err(e) = &outcome {
            if !matches!(e, StoreError::Pool(_)) {
                entry.result = e.to_string();
                self.audit(entry)?;
            }
        }
        outcome
    }

    /// The agent shut down gracefully: stop scraping it until it registers again. Its token
    /// stays valid, so a restarted agent comes back with the token it kept.
    pub fn deregister(&self, id: &str, now: i64) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let node = nodes::table
                .find(id)
                .first::<NodeRow>(c)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("node {id}")))?;
            if node.connectivity != Connectivity::Offline.as_str() {
                let t = NewTransition::of(&node, "connectivity", "offline", "agent deregistered (graceful shutdown)", "agent", now);
                diesel::insert_into(transitions::table).values(&t).execute(c)?;
            }
            diesel::update(nodes::table.find(id))
                .set((
                    nodes::deregistered.eq(true),
                    nodes::connectivity.eq(Connectivity::Offline.as_str()),
                    nodes::updated_at.eq(now),
                ))
                .execute(c)?;
            let entry = NewAudit::ok(&format!("node:{id}"), "node.deregister", id, serde_json::json!({}), now);
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        }))
    }

    /// Deletes a node and everything that hangs off it, keeping the audit entry.
    pub fn delete_node(&self, id: &str, entry: NewAudit) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let n = diesel::delete(nodes::table.find(id)).execute(c)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("node {id}")));
            }
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        }))
    }
}

impl Store {
    /// Node counts by (status, health, connectivity).
    pub fn node_counts(&self) -> Result<Vec<(String, String, String, i64)>, StoreError> {
        with_conn!(self, c => Ok(nodes::table
            .group_by((nodes::status, nodes::health, nodes::connectivity))
            .select((nodes::status, nodes::health, nodes::connectivity, diesel::dsl::count_star()))
            .load::<(String, String, String, i64)>(c)?))
    }

    /// Adds or updates a static target's node (active, scraped without a registration).
    pub fn upsert_static(&self, row: &NodeRow) -> Result<NodeRow, StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let existing = nodes::table
                .filter(nodes::name.eq(&row.name))
                .first::<NodeRow>(c)
                .optional()?;
            match existing {
                Some(mut n) => {
                    n.address = row.address.clone();
                    n.pool = row.pool.clone();
                    n.labels = row.labels.clone();
                    n.deregistered = false;
                    diesel::update(nodes::table.find(&n.id))
                        .set((
                            nodes::address.eq(&n.address),
                            nodes::pool.eq(&n.pool),
                            nodes::labels.eq(&n.labels),
                            nodes::deregistered.eq(false),
                        ))
                        .execute(c)?;
                    Ok(n)
                }
                None => {
                    diesel::insert_into(nodes::table).values(row).execute(c)?;
                    Ok(row.clone())
                }
            }
        }))
    }
}
