//! Node tokens and admin tokens, stored as SHA-256 digests (never the secret).

use diesel::prelude::*;

use super::rows::{AdminTokenRow, NewAudit, NodeTokenRow};
use super::schema::{admin_tokens, audit, node_tokens, nodes};
use super::{with_conn, Store, StoreError, WriteTx};

impl Store {
    /// Stores a node token (hashed) for a node, with its audit entry.
    pub fn add_node_token(&self, token: &NodeTokenRow, entry: NewAudit) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let exists = nodes::table.find(&token.node_id).count().get_result::<i64>(c)? > 0;
            if !exists {
                return Err(StoreError::NotFound(format!("node {}", token.node_id)));
            }
            diesel::insert_into(node_tokens::table).values(token).execute(c)?;
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        }))
    }

    /// The node a token digest belongs to, if the token is known and not expired.
    pub fn node_for_token(&self, digest: &str, now: i64) -> Result<Option<String>, StoreError> {
        with_conn!(self, c => {
            let row = node_tokens::table.find(digest).first::<NodeTokenRow>(c).optional()?;
            Ok(row
                .filter(|t| t.expires_at.is_none_or(|e| e > now))
                .map(|t| t.node_id))
        })
    }

    /// Digests of the admin tokens kept in the database.
    pub fn admin_token_digests(&self) -> Result<Vec<String>, StoreError> {
        with_conn!(self, c => Ok(admin_tokens::table
            .select(admin_tokens::digest)
            .load::<String>(c)?))
    }

    /// Stores a generated admin token (hashed).
    pub fn add_admin_token(&self, row: &AdminTokenRow) -> Result<(), StoreError> {
        with_conn!(self, c => {
            diesel::insert_into(admin_tokens::table).values(row).execute(c)?;
            Ok(())
        })
    }
}
