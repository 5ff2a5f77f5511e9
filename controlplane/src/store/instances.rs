//! Instances: machines asked of a pool's providers.
//!
//! An instance is recorded in `provisioning` **before** its provider is called
//! ([`Store::create_instance`], idempotent by our id), so a crash between the two leaves a
//! record the reconciler finds, never an orphan. Its node can be pre-created in the same
//! transaction, with the join token its agent registers with. Every change of state is
//! checked with [`InstanceState::transition`]: an illegal one is an error and changes
//! nothing. Terminated records are kept for a retention period ([`Store::purge_instances`]).

use diesel::prelude::*;

use super::pool_rows::{InstanceRow, InstanceUpdate, NewInstance};
use super::rows::{NewAudit, NodeRow, NodeTokenRow};
use super::schema::{audit, instances, node_tokens, nodes};
use super::{is_unique_violation, with_conn, Store, StoreError, WriteTx};
use crate::model::pool::InstanceState;
use crate::model::{Source, Status};

/// Filters and page of `GET /v1/instances`.
#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    /// Only this pool.
    pub pool: Option<String>,
    /// Only these states (empty: all).
    pub states: Vec<InstanceState>,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

macro_rules! filtered {
    ($f:expr) => {{
        let mut q = instances::table.into_boxed();
        if let Some(p) = &$f.pool {
            q = q.filter(instances::pool.eq(p.clone()));
        }
        if !$f.states.is_empty() {
            let s: Vec<&'static str> = $f.states.iter().map(|s| s.as_str()).collect();
            q = q.filter(instances::state.eq_any(s));
        }
        q
    }};
}

impl Store {
    /// Records an instance in `provisioning` (and pre-creates its node with its join
    /// token), before any provider call. Idempotent by id: recording the same id again
    /// returns the stored row and `false`; the same id in another pool is a conflict.
    pub fn create_instance(&self, new: &NewInstance) -> Result<(InstanceRow, bool), StoreError> {
        let now = new.now;
        with_conn!(self, c => c.write_tx(|c| {
            if let Some(row) = instances::table.find(&new.id).first::<InstanceRow>(c).optional()? {
                if row.pool != new.pool {
                    return Err(StoreError::Conflict(format!(
                        "instance {} belongs to pool {:?}, not {:?}", new.id, row.pool, new.pool
                    )));
                }
                return Ok((row, false));
            }
            let row = InstanceRow {
                id: new.id.clone(),
                pool: new.pool.clone(),
                provider: new.provider.clone(),
                provider_id: None,
                state: InstanceState::Provisioning.as_str().into(),
                node_id: new.node.as_ref().map(|n| n.id.clone()),
                token_digest: new.node.as_ref().map(|n| n.token_digest.clone()),
                error: None,
                attempts: 0,
                created_at: now,
                state_since: now,
                updated_at: now,
            };
            diesel::insert_into(instances::table).values(&row).execute(c)?;
            if let Some(n) = &new.node {
                let mut node = NodeRow::fresh(
                    n.id.clone(), &n.name, &new.pool, &n.labels, None,
                    Status::Pending, Source::Created, now,
                );
                node.instance_id = Some(new.id.clone());
                diesel::insert_into(nodes::table).values(&node).execute(c).map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::Conflict(format!("a node named {:?} exists", n.name))
                    } else {
                        e.into()
                    }
                })?;
                diesel::insert_into(node_tokens::table)
                    .values(&NodeTokenRow {
                        digest: n.token_digest.clone(),
                        node_id: n.id.clone(),
                        created_at: now,
                        expires_at: n.token_expires,
                    })
                    .execute(c)?;
            }
            let entry = NewAudit::ok(
                &format!("pool:{}", new.pool),
                "instance.create",
                &new.id,
                serde_json::json!({"provider": new.provider, "node": new.node.as_ref().map(|n| &n.name)}),
                now,
            );
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok((row, true))
        }))
    }

    /// One instance.
    pub fn instance(&self, id: &str) -> Result<InstanceRow, StoreError> {
        with_conn!(self, c => instances::table
            .find(id)
            .first::<InstanceRow>(c)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("instance {id}"))))
    }

    /// A page of instances, oldest first, and how many match the filter.
    pub fn list_instances(
        &self,
        f: &InstanceFilter,
    ) -> Result<(Vec<InstanceRow>, i64), StoreError> {
        with_conn!(self, c => {
            let total: i64 = filtered!(f).count().get_result(c)?;
            let rows = filtered!(f)
                .order((instances::created_at, instances::id))
                .offset(f.offset)
                .limit(f.limit)
                .load::<InstanceRow>(c)?;
            Ok((rows, total))
        })
    }

    /// Changes an instance: its state (checked: an illegal transition is a conflict and
    /// changes nothing), provider id, node (linked both ways: the node gets `instance_id`
    /// and the instance's pool), error, attempts. Returns the instance after the change.
    pub fn update_instance(
        &self,
        id: &str,
        u: &InstanceUpdate,
        now: i64,
    ) -> Result<InstanceRow, StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let mut row = instances::table
                .find(id)
                .first::<InstanceRow>(c)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("instance {id}")))?;
            if let Some(to) = u.state {
                let from = row.state()?;
                from.transition(to)
                    .map_err(|e| StoreError::Conflict(format!("instance {id}: {e}")))?;
                if from != to {
                    row.state = to.as_str().into();
                    row.state_since = now;
                }
            }
            if let Some(p) = &u.provider_id {
                row.provider_id = Some(p.clone());
            }
            if let Some(node) = &u.node_id {
                let linked = diesel::update(nodes::table.find(node))
                    .set((
                        nodes::instance_id.eq(Some(id)),
                        nodes::pool.eq(&row.pool),
                        nodes::updated_at.eq(now),
                    ))
                    .execute(c)?;
                if linked == 0 {
                    return Err(StoreError::NotFound(format!("node {node}")));
                }
                row.node_id = Some(node.clone());
            }
            if let Some(e) = &u.error {
                row.error = e.clone();
            }
            if u.attempt {
                row.attempts = row.attempts.saturating_add(1);
            }
            row.updated_at = now;
            diesel::update(instances::table.find(id))
                .set((
                    instances::state.eq(&row.state),
                    instances::state_since.eq(row.state_since),
                    instances::provider_id.eq(&row.provider_id),
                    instances::node_id.eq(&row.node_id),
                    instances::error.eq(&row.error),
                    instances::attempts.eq(row.attempts),
                    instances::updated_at.eq(now),
                ))
                .execute(c)?;
            Ok(row)
        }))
    }

    /// The instance a node runs on, if a pool provisioned it.
    pub fn instance_of_node(&self, node_id: &str) -> Result<Option<InstanceRow>, StoreError> {
        with_conn!(self, c => Ok(instances::table
            .filter(instances::node_id.eq(node_id))
            .order(instances::created_at.desc())
            .first::<InstanceRow>(c)
            .optional()?))
    }

    /// Deletes the records of instances that ended before `before` (Unix ms): terminated
    /// ones, and failed ones the provider never created (no provider id: nothing left to
    /// terminate). A failed instance with a machine stays until it is terminated. Returns
    /// how many were deleted.
    pub fn purge_instances(&self, before: i64) -> Result<usize, StoreError> {
        with_conn!(self, c => {
            let terminated = diesel::delete(
                instances::table
                    .filter(instances::state.eq(InstanceState::Terminated.as_str()))
                    .filter(instances::state_since.lt(before)),
            )
            .execute(c)?;
            let failed = diesel::delete(
                instances::table
                    .filter(instances::state.eq(InstanceState::Failed.as_str()))
                    .filter(instances::provider_id.is_null())
                    .filter(instances::state_since.lt(before)),
            )
            .execute(c)?;
            Ok(terminated + failed)
        })
    }
}
