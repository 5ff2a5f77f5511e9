//! `gpuwarden db copy`: every row of a SQLite database into an empty PostgreSQL one, in one
//! PostgreSQL transaction, for moving a control plane from SQLite to PostgreSQL.
//!
//! The source is opened read-only (`file:PATH?mode=ro`: a copy never changes it) and must
//! carry exactly the migrations the target got from [`Store::open`], so both have the same
//! tables; a file that is no gpuwarden database, or one of another version, is refused. The
//! tables are found in the SQLite file (all but SQLite's own and diesel's migration table)
//! and copied parents first (by their foreign keys). Rows travel
//! as JSON: SQLite's `json_object` of every column, 1,000 rows at a time in `rowid` order,
//! and PostgreSQL's `json_populate_recordset` typed by the target table (SQLite's 0/1
//! booleans are read as PostgreSQL booleans). Afterwards every serial column's sequence is
//! moved past the largest copied id, and every table's row count is compared. Any error
//! rolls the whole copy back.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;
use diesel::{sql_query, Connection, QueryableByName, RunQueryDsl};
use thiserror::Error;

use super::{Pools, Store, StoreError};

/// Rows read from SQLite and written to PostgreSQL at a time.
const BATCH: i64 = 1000;

/// Why a copy failed; nothing was written to the target.
#[derive(Debug, Error)]
pub enum CopyError {
    /// The source is not SQLite or the target not PostgreSQL.
    #[error("{0}")]
    Backends(String),
    /// The target already holds rows: a copy goes into a fresh database only.
    #[error("the target is not empty: table {table} has {rows} rows (copy into a new database)")]
    NotEmpty {
        /// The table.
        table: String,
        /// Its rows.
        rows: i64,
    },
    /// The two schemas differ (another version of gpuwarden made one of them).
    #[error("the schemas differ: {0}")]
    Schema(String),
    /// A row count differs after the copy.
    #[error(
        "table {table}: {source_rows} rows in SQLite, {target_rows} in PostgreSQL after the copy"
    )]
    Count {
        /// The table.
        table: String,
        /// Rows in the source.
        source_rows: i64,
        /// Rows in the target.
        target_rows: i64,
    },
    /// The database said no.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for CopyError {
    fn from(e: diesel::result::Error) -> Self {
        CopyError::Store(StoreError::Query(e))
    }
}

impl From<diesel::r2d2::PoolError> for CopyError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        CopyError::Store(StoreError::Pool(e))
    }
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = BigInt)]
    r: i64,
    #[diesel(sql_type = Text)]
    j: String,
}

/// `"name"`, quoted for SQL (names come from the schema, and are quoted all the same).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Opens the SQLite file at `path` read-only, for [`copy`].
pub fn open_source(path: &std::path::Path) -> Result<SqliteConnection, CopyError> {
    let url = format!("file:{}?mode=ro", path.display());
    SqliteConnection::establish(&url)
        .map_err(|e| CopyError::Backends(format!("{}: {e}", path.display())))
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

/// Copies every table of the SQLite database `s` (opened with [`open_source`]) into `to`
/// (PostgreSQL, empty); `progress(table, rows so far, rows in all)` is called after each
/// batch. Returns each table with its rows.
pub fn copy(
    s: &mut SqliteConnection,
    to: &Store,
    mut progress: impl FnMut(&str, i64, i64),
) -> Result<Vec<(String, i64)>, CopyError> {
    let Pools::Postgres(dst) = &to.pools else {
        return Err(CopyError::Backends(
            "db copy writes a PostgreSQL database (--to postgres://…)".into(),
        ));
    };
    let mut d = dst.get()?;
    let d: &mut PgConnection = &mut d;
    // The same migrations on both sides: the same tables and columns.
    let versions = |rows: Vec<Version>| {
        let mut v: Vec<String> = rows.into_iter().map(|r| r.version).collect();
        v.sort();
        v
    };
    let ask = "SELECT version FROM __diesel_schema_migrations";
    let theirs = sql_query(ask).load::<Version>(s).map_err(|_| {
        CopyError::Schema("the source is not a gpuwarden database (no migrations table)".into())
    })?;
    let (theirs, ours) = (
        versions(theirs),
        versions(sql_query(ask).load::<Version>(d)?),
    );
    if theirs != ours {
        return Err(CopyError::Schema(format!(
            "the source was written by another version of gpuwarden ({} migrations, this one has {}): \
             start this version's control plane on it once, then copy",
            theirs.len(),
            ours.len()
        )));
    }
    // One read transaction: the copy is of one moment of the source.
    s.batch_execute("BEGIN")?;
    let result = d.transaction(|d| copy_tables(s, d, &mut progress));
    let _ = s.batch_execute("COMMIT");
    result
}

fn copy_tables(
    s: &mut SqliteConnection,
    d: &mut PgConnection,
    progress: &mut impl FnMut(&str, i64, i64),
) -> Result<Vec<(String, i64)>, CopyError> {
    let tables = ordered_tables(s)?;
    let target: Vec<String> = sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         AND table_name <> '__diesel_schema_migrations'",
    )
    .load::<Name>(d)?
    .into_iter()
    .map(|n| n.name)
    .collect();
    let missing: Vec<&String> = tables.iter().filter(|t| !target.contains(t)).collect();
    if !missing.is_empty() {
        return Err(CopyError::Schema(format!(
            "PostgreSQL has no table {missing:?}"
        )));
    }
    for t in &tables {
        let n = count_pg(d, t)?;
        if n > 0 {
            return Err(CopyError::NotEmpty {
                table: t.clone(),
                rows: n,
            });
        }
    }
    let mut done = Vec::new();
    for t in &tables {
        let cols: Vec<String> = sql_query("SELECT name FROM pragma_table_info(?) ORDER BY cid")
            .bind::<Text, _>(t)
            .load::<Name>(s)?
            .into_iter()
            .map(|n| n.name)
            .collect();
        // JSON holds no bytes: a BLOB column (plugin components) travels as PostgreSQL's
        // bytea hex text (`\x…`), one row at a time (a component is tens of MB).
        let blobs: Vec<String> = sql_query(
            "SELECT name FROM pragma_table_info(?) WHERE upper(type) = 'BLOB' ORDER BY cid",
        )
        .bind::<Text, _>(t)
        .load::<Name>(s)?
        .into_iter()
        .map(|n| n.name)
        .collect();
        let batch = if blobs.is_empty() { BATCH } else { 1 };
        let total = sql_query(format!("SELECT COUNT(*) AS n FROM {}", quote(t)))
            .get_result::<Count>(s)?
            .n;
        let object = cols
            .iter()
            .map(|c| {
                let value = if blobs.contains(c) {
                    format!("'\\x' || lower(hex({}))", quote(c))
                } else {
                    quote(c)
                };
                format!("'{}', {value}", c.replace('\'', "''"))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let read = format!(
            "SELECT rowid AS r, json_object({object}) AS j FROM {} WHERE rowid > ? ORDER BY rowid LIMIT {batch}",
            quote(t)
        );
        let write = format!(
            "INSERT INTO {t} SELECT * FROM json_populate_recordset(NULL::{t}, $1::json)",
            t = quote(t)
        );
        let (mut after, mut copied) = (i64::MIN, 0i64);
        loop {
            let rows = sql_query(&read)
                .bind::<BigInt, _>(after)
                .load::<JsonRow>(s)?;
            let Some(last) = rows.last() else { break };
            after = last.r;
            let mut json = String::with_capacity(rows.iter().map(|r| r.j.len() + 1).sum());
            json.push('[');
            for (i, r) in rows.iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                json.push_str(&r.j);
            }
            json.push(']');
            sql_query(&write).bind::<Text, _>(&json).execute(d)?;
            copied += rows.len() as i64;
            progress(t, copied, total);
        }
        let in_pg = count_pg(d, t)?;
        if in_pg != total || copied != total {
            return Err(CopyError::Count {
                table: t.clone(),
                source_rows: total,
                target_rows: in_pg,
            });
        }
        done.push((t.clone(), total));
    }
    // Serial ids continue after the copied ones.
    let serials = sql_query(
        "SELECT table_name::text || '.' || column_name::text AS name FROM information_schema.columns \
         WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'",
    )
    .load::<Name>(d)?;
    for col in serials {
        let Some((t, c)) = col.name.split_once('.') else {
            continue;
        };
        d.batch_execute(&format!(
            "SELECT setval(pg_get_serial_sequence('{tq}', '{cq}'), COALESCE(MAX({c}), 1), MAX({c}) IS NOT NULL) FROM {t}",
            tq = quote(t).replace('\'', "''"),
            cq = c.replace('\'', "''"),
            c = quote(c),
            t = quote(t),
        ))?;
    }
    Ok(done)
}

fn count_pg(d: &mut PgConnection, table: &str) -> Result<i64, CopyError> {
    Ok(
        sql_query(format!("SELECT COUNT(*) AS n FROM {}", quote(table)))
            .get_result::<Count>(d)?
            .n,
    )
}

/// The SQLite file's tables, each after the tables its foreign keys name.
fn ordered_tables(s: &mut SqliteConnection) -> Result<Vec<String>, CopyError> {
    let names: Vec<String> = sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '__diesel_schema_migrations' ORDER BY name",
    )
    .load::<Name>(s)?
    .into_iter()
    .map(|n| n.name)
    .collect();
    let mut parents = Vec::new();
    for t in &names {
        let p: Vec<String> = sql_query("SELECT \"table\" AS name FROM pragma_foreign_key_list(?)")
            .bind::<Text, _>(t)
            .load::<Name>(s)?
            .into_iter()
            .map(|n| n.name)
            .filter(|p| p != t)
            .collect();
        parents.push(p);
    }
    let mut order: Vec<String> = Vec::new();
    while order.len() < names.len() {
        let before = order.len();
        for (t, p) in names.iter().zip(&parents) {
            if !order.contains(t) && p.iter().all(|p| order.contains(p) || !names.contains(p)) {
                order.push(t.clone());
            }
        }
        if order.len() == before {
            return Err(CopyError::Schema(
                "the foreign keys between the tables go round in a circle".into(),
            ));
        }
    }
    Ok(order)
}
