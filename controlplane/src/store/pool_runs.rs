//! What the instance reconciler needs of the store beyond the instances' own operations: a
//! fresh join token for an instance whose provision is asked again (the secret handed to the
//! first call was never stored, only its digest).

use diesel::prelude::*;

use super::rows::NodeTokenRow;
use super::schema::{instances, node_tokens};
use super::{with_conn, Store, StoreError, WriteTx};

impl Store {
    /// Replaces the join token of instance `id`'s pre-created node by the one whose digest
    /// is `digest` (expiring at `expires`): the old one stops working.
    pub fn rotate_join_token(
        &self,
        id: &str,
        digest: &str,
        expires: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let node: Option<Option<String>> = instances::table
                .find(id)
                .select(instances::node_id)
                .first(c)
                .optional()?;
            let node = node
                .ok_or_else(|| StoreError::NotFound(format!("instance {id}")))?
                .ok_or_else(|| StoreError::Conflict(format!("instance {id} has no node")))?;
            diesel::delete(node_tokens::table.filter(node_tokens::node_id.eq(&node))).execute(c)?;
            diesel::insert_into(node_tokens::table)
                .values(&NodeTokenRow {
                    digest: digest.to_string(),
                    node_id: node,
                    created_at: now,
                    expires_at: expires,
                })
                .execute(c)?;
            diesel::update(instances::table.find(id))
                .set((instances::token_digest.eq(Some(digest)), instances::updated_at.eq(now)))
                .execute(c)?;
            Ok(())
        }))
    }
}
