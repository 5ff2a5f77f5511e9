//! The GPUs a node is expected to have (table `expected_gpus`): raised by registrations,
//! lowered only by an operator, so a GPU that vanishes is noticed, not forgotten.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::rows::{NewAudit, NodeRow};
use super::schema::{audit, expected_gpus};
use super::{with_conn, Store, StoreError, WriteTx};

fn count(n: i32) -> usize {
    usize::try_from(n).unwrap_or(0)
}

impl Store {
    /// GPUs node `row` is expected to have: the stored count, else the GPUs its last
    /// registration listed (0 when unknown).
    pub fn expected_gpus(&self, row: &NodeRow) -> Result<usize, StoreError> {
        let stored: Option<i32> = with_conn!(self, c => expected_gpus::table
            .find(&row.id)
            .select(expected_gpus::gpus)
            .first(c)
            .optional()?);
        Ok(stored.map_or_else(|| row.registered_gpus(), count))
    }

    /// Every stored count, by node id (nodes without one: see [`Store::expected_gpus`]).
    pub fn all_expected_gpus(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let rows: Vec<(String, i32)> = with_conn!(self, c => expected_gpus::table
            .select((expected_gpus::node_id, expected_gpus::gpus))
            .load(c)?);
        Ok(rows.into_iter().map(|(id, n)| (id, count(n))).collect())
    }

    /// Sets the GPUs node `key` is expected to have (an operator's act: the only way the
    /// count goes down), audited as `node.expected_gpus` with the count before and after.
    /// Returns the node.
    pub fn set_expected_gpus(
        &self,
        key: &str,
        gpus: usize,
        actor: &str,
        now: i64,
    ) -> Result<NodeRow, StoreError> {
        let n = i32::try_from(gpus)
            .map_err(|_| StoreError::Conflict(format!("{gpus} GPUs is not a count")))?;
        let node = self.node(key)?;
        let before = self.expected_gpus(&node)?;
        with_conn!(self, c => c.write_tx(|c| {
            diesel::insert_into(expected_gpus::table)
                .values((
                    expected_gpus::node_id.eq(&node.id),
                    expected_gpus::gpus.eq(n),
                    expected_gpus::updated_at.eq(now),
                ))
                .on_conflict(expected_gpus::node_id)
                .do_update()
                .set((expected_gpus::gpus.eq(n), expected_gpus::updated_at.eq(now)))
                .execute(c)?;
            let entry = NewAudit::ok(
                actor,
                "node.expected_gpus",
                &node.id,
                serde_json::json!({"before": before, "after": gpus}),
                now,
            );
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok::<(), StoreError>(())
        }))?;
        Ok(node)
    }
}
