//! Events, observations, transitions, commands and the audit log.

use diesel::prelude::*;

use super::rows::{
    AuditRow, CommandRow, EventRow, NewAudit, NewEvent, ObservationRow, TransitionRow,
};
use super::schema::{audit, commands, events, nodes, observations, transitions};
use super::{with_conn, Store, StoreError, WriteTx};

/// One node's share of a batched observation write.
#[derive(Debug, Clone)]
pub struct ObservationWrite {
    /// The node.
    pub node_id: String,
    /// Its latest rows (one per GPU, `gpu = -1` for the node); empty when only `last_seen`
    /// is written (the stored rows are left as they are).
    pub rows: Vec<ObservationRow>,
    /// Its last successful scrape.
    pub last_seen: i64,
    /// The node's GPUs are not those last written (or nothing was written since the control
    /// plane started): its stored rows are deleted first, so a GPU it no longer reports
    /// leaves no row behind.
    pub replace: bool,
}

impl Store {
    /// Stores events read from an agent and moves the node's event cursor, in one
    /// transaction. An event already stored (same node, agent instance and sequence) is
    /// skipped, so reading the same page twice stores nothing twice. Returns how many were new.
    pub fn ingest_events(
        &self,
        node_id: &str,
        instance: &str,
        cursor: i64,
        batch: &[NewEvent],
    ) -> Result<usize, StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let mut added = 0;
            for e in batch {
                added += diesel::insert_into(events::table)
                    .values(e)
                    .on_conflict((events::node_id, events::agent_instance, events::agent_seq))
                    .do_nothing()
                    .execute(c)?;
            }
            diesel::update(nodes::table.find(node_id))
                .set((nodes::agent_instance.eq(instance), nodes::event_cursor.eq(cursor)))
                .execute(c)?;
            Ok(added)
        }))
    }

    /// A node's events at or after `since` (Unix ms), newest first.
    pub fn events(
        &self,
        node_id: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        with_conn!(self, c => Ok(events::table
            .filter(events::node_id.eq(node_id))
            .filter(events::time.ge(since))
            .order((events::time.desc(), events::id.desc()))
            .limit(limit)
            .load::<EventRow>(c)?))
    }

    /// Every stored event in a time window, oldest first (policy simulation, tools).
    pub fn events_between(
        &self,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        with_conn!(self, c => Ok(events::table
            .filter(events::time.ge(from))
            .filter(events::time.lt(to))
            .order((events::time.asc(), events::id.asc()))
            .limit(limit)
            .load::<EventRow>(c)?))
    }

    /// A node's status/health/connectivity history, newest first.
    pub fn transitions(&self, node_id: &str, limit: i64) -> Result<Vec<TransitionRow>, StoreError> {
        with_conn!(self, c => Ok(transitions::table
            .filter(transitions::node_id.eq(node_id))
            .order(transitions::id.desc())
            .limit(limit)
            .load::<TransitionRow>(c)?))
    }

    /// A node's latest health change: why it has the health it has (`GET /v1/nodes/{id}`).
    pub fn last_health_change(&self, node_id: &str) -> Result<Option<TransitionRow>, StoreError> {
        with_conn!(self, c => Ok(transitions::table
            .filter(transitions::node_id.eq(node_id))
            .filter(transitions::field.eq("health"))
            .order(transitions::id.desc())
            .first::<TransitionRow>(c)
            .optional()?))
    }

    /// A node's commands, newest first.
    pub fn commands(&self, node_id: &str, limit: i64) -> Result<Vec<CommandRow>, StoreError> {
        with_conn!(self, c => Ok(commands::table
            .filter(commands::node_id.eq(node_id))
            .order((commands::created_at.desc(), commands::id.desc()))
            .limit(limit)
            .load::<CommandRow>(c)?))
    }

    /// Appends to the audit log.
    pub fn audit(&self, entry: NewAudit) -> Result<(), StoreError> {
        with_conn!(self, c => {
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        })
    }

    /// The audit log, newest first.
    pub fn audit_log(&self, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        with_conn!(self, c => Ok(audit::table
            .order(audit::id.desc())
            .limit(limit)
            .load::<AuditRow>(c)?))
    }
}

impl Store {
    /// A node's stored latest observation, GPU by GPU.
    pub fn observations(&self, node_id: &str) -> Result<Vec<ObservationRow>, StoreError> {
        with_conn!(self, c => Ok(observations::table
            .filter(observations::node_id.eq(node_id))
            .order(observations::gpu)
            .load::<ObservationRow>(c)?))
    }

    /// Every node's latest observation rows.
    pub fn all_observations(&self) -> Result<Vec<ObservationRow>, StoreError> {
        with_conn!(self, c => Ok(observations::table
            .order((observations::node_id, observations::gpu))
            .load::<ObservationRow>(c)?))
    }

    /// Deletes events older than `events_before` and audit entries older than
    /// `audit_before` (Unix ms). Returns (events, audit entries) deleted.
    pub fn prune(
        &self,
        events_before: i64,
        audit_before: i64,
    ) -> Result<(usize, usize), StoreError> {
        with_conn!(self, c => {
            let e = diesel::delete(events::table.filter(events::time.lt(events_before))).execute(c)?;
            let a = diesel::delete(audit::table.filter(audit::time.lt(audit_before))).execute(c)?;
            Ok((e, a))
        })
    }
}
