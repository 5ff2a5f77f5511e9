//! Tokens created through the API (`POST /v1/tokens`): an admin or a viewer role, only the
//! secret's digest kept, each creation and revocation audited in the same transaction.

use diesel::prelude::*;

use super::rows::NewAudit;
use super::schema::{api_tokens, audit};
use super::{with_conn, Store, StoreError, WriteTx};

/// A row of `api_tokens`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct ApiTokenRow {
    /// Its id (`tok_…`), what `DELETE /v1/tokens/{id}` takes.
    pub id: String,
    /// The operator's name for it.
    pub name: String,
    /// `admin` or `viewer`.
    pub role: String,
    /// SHA-256 of the secret, hex.
    pub digest: String,
    /// Who created it (the caller's actor).
    pub created_by: String,
    /// When (Unix ms).
    pub created_at: i64,
}

impl Store {
    /// Stores a new token with its audit entry; [`StoreError::Conflict`] when a token of that
    /// name exists (names are unique) or `max` tokens are there already (counted in the
    /// transaction that inserts, so concurrent creates cannot pass it).
    pub fn create_api_token(
        &self,
        row: &ApiTokenRow,
        entry: NewAudit,
        max: usize,
    ) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            c.lock_for_write("api_tokens")?;
            let n: i64 = api_tokens::table.count().get_result(c)?;
            if usize::try_from(n).unwrap_or(usize::MAX) >= max {
                return Err(StoreError::Conflict(format!(
                    "{max} tokens are there, the most: revoke one first"
                )));
            }
            diesel::insert_into(api_tokens::table)
                .values(row)
                .execute(c)
                .map_err(|e| {
                    if super::is_unique_violation(&e) {
                        StoreError::Conflict(format!("a token named {} exists", row.name))
                    } else {
                        e.into()
                    }
                })?;
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        }))
    }

    /// Every token, oldest first.
    pub fn api_tokens(&self) -> Result<Vec<ApiTokenRow>, StoreError> {
        with_conn!(self, c => Ok(api_tokens::table
            .order((api_tokens::created_at, api_tokens::id))
            .select(ApiTokenRow::as_select())
            .load(c)?))
    }

    /// Deletes token `id` with its audit entry; false when there is none.
    pub fn revoke_api_token(&self, id: &str, entry: NewAudit) -> Result<bool, StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let n = diesel::delete(api_tokens::table.find(id)).execute(c)?;
            if n > 0 {
                diesel::insert_into(audit::table).values(&entry).execute(c)?;
            }
            Ok(n > 0)
        }))
    }
}
