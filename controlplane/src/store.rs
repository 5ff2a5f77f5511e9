//! The database, through diesel: SQLite (a file, the default) or PostgreSQL, chosen by URL.
//!
//! Both backends share one schema ([`schema`]) and the same query code: each operation is
//! written once and compiled for both connection types by [`with_conn!`], which matches on
//! the pool instead of using diesel's `MultiConnection` (whose enum cannot express upserts).
//! Everything here is synchronous; the server calls it through `web::block` so database work
//! never runs on actix's workers. Compound changes (a transition with its audit entry and
//! command) are one transaction each.

pub mod observations;
pub mod pool_rows;
pub mod rows;
pub mod schema;

mod api_tokens;
mod commands;
pub mod copy;
mod expected;
mod flush;
mod instances;
mod nodes;
pub mod plugins;
mod pool_runs;
mod pools;
mod records;
mod remedy;
mod states;
mod tokens;
mod utilization;

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PoolError};
use diesel::sqlite::SqliteConnection;
use diesel::RunQueryDsl;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use thiserror::Error;

pub use api_tokens::ApiTokenRow;
pub use commands::DeliveryTarget;
pub use instances::InstanceFilter;
pub use nodes::{NodeFilter, Registered, Registration};
pub use pools::ConfigApplied;
pub use records::ObservationWrite;
pub use remedy::{BudgetRow, BudgetScope, ReleaseRow};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Why a database operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The URL names no backend this binary has.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    Url(String),
    /// No connection could be had.
    #[error("database connection: {0}")]
    Pool(#[from] PoolError),
    /// A query failed.
    #[error("database query: {0}")]
    Query(#[from] diesel::result::Error),
    /// The schema could not be brought up to date.
    #[error("database migration: {0}")]
    Migration(String),
    /// The named row does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique value is taken, or the change conflicts with the row's state.
    #[error("{0}")]
    Conflict(String),
    /// A stored value this binary cannot read.
    #[error("stored value unreadable: {0}")]
    Corrupt(String),
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool.
    pub pool_size: u32,
    /// How long a SQLite writer waits for the lock.
    pub busy_timeout: Duration,
    /// How long to wait for a free connection.
    pub connect_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: 8,
            busy_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

enum Pools {
    Sqlite(Pool<ConnectionManager<SqliteConnection>>),
    Postgres(Pool<ConnectionManager<PgConnection>>),
}

/// The control plane's database.
pub struct Store {
    pools: Pools,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish()
    }
}

/// Runs `$body` with `$c` bound to a pooled connection of whichever backend the store has.
/// The body is compiled once per backend.
macro_rules! with_conn {
    ($store:expr, $c:ident => $body:expr) => {
        match &$store.pools {
            $crate::store::Pools::Sqlite(p) => {
                let mut guard = p.get()?;
                let $c: &mut diesel::sqlite::SqliteConnection = &mut guard;
                $body
            }
            $crate::store::Pools::Postgres(p) => {
                let mut guard = p.get()?;
                let $c: &mut diesel::pg::PgConnection = &mut guard;
                $body
            }
        }
    };
}
pub(crate) use with_conn;

/// A transaction that writes. On SQLite it takes the write lock when it begins (`BEGIN
/// IMMEDIATE`): a deferred transaction that reads first and then writes cannot wait for the
/// lock (SQLite refuses the upgrade at once with "database is locked" rather than risk a
/// deadlock), while an immediate one waits up to `busy_timeout`. Measured: with 64 scrape
/// workers, deferred transactions lost health changes under load.
pub(crate) trait WriteTx: Sized {
    /// Runs `f` in a write transaction.
    fn write_tx<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>;

    /// Within a write transaction, keeps other writers of `table` out until it ends, so a
    /// count read in it still holds at the insert (SQLite's immediate transaction already
    /// has the one write lock; PostgreSQL takes `SHARE ROW EXCLUSIVE` on the table). `table`
    /// is one of ours, never input.
    fn lock_for_write(&mut self, table: &'static str) -> diesel::QueryResult<()>;
}

impl WriteTx for SqliteConnection {
    fn write_tx<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        self.immediate_transaction(f)
    }

    fn lock_for_write(&mut self, _table: &'static str) -> diesel::QueryResult<()> {
        Ok(())
    }
}

impl WriteTx for PgConnection {
    fn write_tx<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        diesel::Connection::transaction(self, f)
    }

    fn lock_for_write(&mut self, table: &'static str) -> diesel::QueryResult<()> {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
            .execute(self)
            .map(|_| ())
    }
}

#[derive(Debug)]
struct SqlitePragmas {
    busy_timeout_ms: u128,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            self.busy_timeout_ms
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

impl Store {
    /// Connects to `url` (`sqlite://PATH`, a bare path, or `postgres://…`) and applies the
    /// pending migrations of that backend. A SQLite file and its folder are created.
    pub fn open(url: &str, opts: &StoreOptions) -> Result<Self, StoreError> {
        let pools = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = Pool::builder()
                .max_size(opts.pool_size)
                .connection_timeout(opts.connect_timeout)
                .build(ConnectionManager::<PgConnection>::new(url))?;
            let mut c = pool.get()?;
            c.run_pending_migrations(POSTGRES_MIGRATIONS)
                .map_err(|e| StoreError::Migration(e.to_string()))?;
            Pools::Postgres(pool)
        } else {
            let path = crate::validate::sqlite_path(url)
                .ok_or_else(|| StoreError::Url(url.to_string()))?;
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Migration(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let pool = Pool::builder()
                .max_size(opts.pool_size)
                .connection_timeout(opts.connect_timeout)
                .connection_customizer(Box::new(SqlitePragmas {
                    busy_timeout_ms: opts.busy_timeout.as_millis(),
                }))
                .build(ConnectionManager::<SqliteConnection>::new(path))?;
            let mut c = pool.get()?;
            c.run_pending_migrations(SQLITE_MIGRATIONS)
                .map_err(|e| StoreError::Migration(e.to_string()))?;
            Pools::Sqlite(pool)
        };
        Ok(Self { pools })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite(_) => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// Whether the database answers (`/readyz`).
    pub fn ping(&self) -> Result<(), StoreError> {
        with_conn!(self, c => {
            c.batch_execute("SELECT 1")?;
            Ok(())
        })
    }

    /// How many rows a table has (tests and tools).
    pub fn count(&self, table: &str) -> Result<i64, StoreError> {
        use diesel::sql_types::BigInt;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        if !table.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_') {
            return Err(StoreError::NotFound(format!("table {table}")));
        }
        let q = format!("SELECT COUNT(*) AS n FROM {table}");
        with_conn!(self, c => {
            let r: N = diesel::sql_query(q.as_str()).get_result(c)?;
            Ok(r.n)
        })
    }
}

/// Whether a diesel error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}
