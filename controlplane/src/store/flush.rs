//! The observation flush: a batch of nodes' latest rows and last-seen times, written in
//! transactions of [`NODES_PER_TX`] nodes with a handful of statements each.
//!
//! Per transaction: one `UPDATE nodes … RETURNING id` sets every node's `last_seen` and
//! names the nodes that still exist (a node deleted since its scrape is not written), one
//! `DELETE` drops the stored rows of the nodes whose GPUs changed, and the rows go in as
//! multi-row upserts of [`UPSERT_ROWS`] rows. Diesel prepares none of these once per
//! connection (it never caches an `UPDATE`, a raw query or an upsert), so each is prepared per
//! execution: a few per 100 nodes instead of one `UPDATE` per node (10,000 per flush at
//! 10,000 nodes, a tenth of the flush's CPU) and, on SQLite, one `INSERT OR REPLACE` per
//! row. An upsert also updates a stored row in place, where `REPLACE` deleted it from the
//! table and its key index and inserted it again under a new rowid.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};

use super::records::ObservationWrite;
use super::rows::ObservationRow;
use super::schema::observations;
use super::{Pools, Store, StoreError, WriteTx};

/// Nodes per transaction: one transaction for thousands of nodes held SQLite's write lock for
/// a few hundred milliseconds, and health changes and commands waited behind it.
const NODES_PER_TX: usize = 100;

/// Observation rows written by one upsert statement: 6 bound values each.
const UPSERT_ROWS: usize = 500;

// Far under SQLite's (32,766) and PostgreSQL's (65,535) limits on a statement's parameters,
// for the upsert (6 a row) and the last-seen update (3 a node).
const _: () = assert!(UPSERT_ROWS * 6 < 32_766 && NODES_PER_TX * 3 < 32_766);

/// A node id returned by the last-seen update.
#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

/// `UPDATE nodes SET last_seen = CASE id WHEN … THEN … END WHERE id IN (…) RETURNING id`
/// for `n` nodes; `p(i)` writes the backend's `i`-th (from 1) placeholder.
fn last_seen_sql(n: usize, p: impl Fn(usize) -> String) -> String {
    let mut sql = String::with_capacity(64 + n * 24);
    sql.push_str("UPDATE nodes SET last_seen = CASE id");
    for i in 0..n {
        sql.push_str(&format!(" WHEN {} THEN {}", p(2 * i + 1), p(2 * i + 2)));
    }
    sql.push_str(" END WHERE id IN (");
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&p(2 * n + i + 1));
    }
    sql.push_str(") RETURNING id");
    sql
}

/// `INSERT INTO observations … VALUES (…), … ON CONFLICT (node_id, gpu) DO UPDATE …` for `n`
/// rows (diesel's own multi-row upsert does not build for SQLite).
fn upsert_sql(n: usize, p: impl Fn(usize) -> String) -> String {
    let mut sql = String::with_capacity(256 + n * 40);
    sql.push_str("INSERT INTO observations (node_id, gpu, uuid, model, body, observed_at) VALUES ");
    for i in 0..n {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for k in 0..6 {
            if k > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&p(6 * i + k + 1));
        }
        sql.push(')');
    }
    sql.push_str(
        " ON CONFLICT (node_id, gpu) DO UPDATE SET uuid = excluded.uuid, model = excluded.model, \
         body = excluded.body, observed_at = excluded.observed_at",
    );
    sql
}

/// Each node's last write in `batch` (a node can be taken twice before a flush writes it, and
/// one statement cannot upsert a row twice on PostgreSQL), and the nodes whose stored rows go
/// first: those with any write that replaces.
fn latest(batch: &[ObservationWrite]) -> (Vec<&ObservationWrite>, HashSet<&str>) {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
    let mut replace = HashSet::new();
    for (i, w) in batch.iter().enumerate() {
        last.insert(&w.node_id, i);
        if w.replace {
            replace.insert(w.node_id.as_str());
        }
    }
    let writes = batch
        .iter()
        .enumerate()
        .filter(|(i, w)| last.get(w.node_id.as_str()) == Some(i))
        .map(|(_, w)| w)
        .collect();
    (writes, replace)
}

/// One transaction's statements, compiled once per backend (`$db` is its diesel backend,
/// `$p` its placeholder writer).
macro_rules! write_chunk {
    ($c:ident, $db:ty, $batch:ident, $p:expr) => {{
        let (batch, replace) = latest($batch);
        let mut q = diesel::sql_query(last_seen_sql(batch.len(), $p)).into_boxed::<$db>();
        for w in &batch {
            q = q.bind::<Text, _>(&w.node_id).bind::<BigInt, _>(w.last_seen);
        }
        for w in &batch {
            q = q.bind::<Text, _>(&w.node_id);
        }
        let live: HashSet<String> = q.load::<Id>($c)?.into_iter().map(|r| r.id).collect();
        let gone: Vec<&str> = replace
            .into_iter()
            .filter(|id| live.contains(*id))
            .collect();
        if !gone.is_empty() {
            diesel::delete(observations::table.filter(observations::node_id.eq_any(&gone)))
                .execute($c)?;
        }
        let rows: Vec<&ObservationRow> = batch
            .iter()
            .filter(|w| live.contains(&w.node_id))
            .flat_map(|w| &w.rows)
            .collect();
        for part in rows.chunks(UPSERT_ROWS) {
            let mut q = diesel::sql_query(upsert_sql(part.len(), $p)).into_boxed::<$db>();
            for r in part {
                q = q
                    .bind::<Text, _>(&r.node_id)
                    .bind::<Integer, _>(r.gpu)
                    .bind::<Text, _>(&r.uuid)
                    .bind::<Text, _>(&r.model)
                    .bind::<Text, _>(&r.body)
                    .bind::<BigInt, _>(r.observed_at);
            }
            q.execute($c)?;
        }
        Ok::<(), StoreError>(())
    }};
}

impl Store {
    /// Writes a batch of latest observations and last-seen times, [`NODES_PER_TX`] nodes a
    /// transaction. A node deleted since its scrape is skipped (its rows are not written
    /// again); a node whose GPUs changed (`replace`) loses its stored rows first.
    pub fn write_observations(&self, batch: &[ObservationWrite]) -> Result<(), StoreError> {
        for chunk in batch.chunks(NODES_PER_TX) {
            match &self.pools {
                Pools::Sqlite(p) => {
                    let mut guard = p.get()?;
                    let c: &mut diesel::sqlite::SqliteConnection = &mut guard;
                    c.write_tx(|c| write_chunk!(c, diesel::sqlite::Sqlite, chunk, |_| "?".into()))?;
                }
                Pools::Postgres(p) => {
                    let mut guard = p.get()?;
                    let c: &mut diesel::pg::PgConnection = &mut guard;
                    c.write_tx(|c| write_chunk!(c, diesel::pg::Pg, chunk, |i| format!("${i}")))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last-seen update pairs each node with its time and lists every node once; the
    /// upsert has six values a row.
    #[test]
    fn the_statements_number_their_placeholders_in_order() {
        assert_eq!(
            last_seen_sql(2, |i| format!("${i}")),
            "UPDATE nodes SET last_seen = CASE id WHEN $1 THEN $2 WHEN $3 THEN $4 END \
             WHERE id IN ($5, $6) RETURNING id"
        );
        assert_eq!(
            upsert_sql(2, |_| "?".into()),
            "INSERT INTO observations (node_id, gpu, uuid, model, body, observed_at) VALUES \
             (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?) ON CONFLICT (node_id, gpu) DO UPDATE SET \
             uuid = excluded.uuid, model = excluded.model, body = excluded.body, \
             observed_at = excluded.observed_at"
        );
    }
}
