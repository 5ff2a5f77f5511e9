//! Whether the SQLite file changed since an earlier look: a connection of its own that only
//! reads `PRAGMA data_version`. SQLite moves that number whenever another connection commits
//! (the store's pool, another process), never for the connection's own commits, and this
//! one never writes (`query_only`), so every commit moves it. The listing cache
//! ([`super::listing`]) tags each page with the number read before the page's rows were.
//!
//! It lives with the API, not in `store/`, because only the cache needs it; it opens the
//! same file the store opened (after the store's migrations).

use std::sync::Mutex;

use diesel::connection::SimpleConnection;
use diesel::sql_types::BigInt;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl};

/// A read-only connection answering "has anything been committed since?".
pub struct Changes {
    conn: Mutex<SqliteConnection>,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").finish_non_exhaustive()
    }
}

#[derive(QueryableByName)]
struct DataVersion {
    #[diesel(sql_type = BigInt)]
    data_version: i64,
}

/// The connection could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("opening {path} to watch for changes: {message}")]
pub struct ChangesError {
    path: String,
    message: String,
}

impl Changes {
    /// Opens the SQLite file at `path` (a path, as `Store::open` takes it after
    /// `sqlite://`). The connection never waits for a lock: a busy file answers "unknown"
    /// ([`Changes::version`] is `None`) and the caller reads the database as usual.
    pub fn open(path: &str) -> Result<Self, ChangesError> {
        let fail = |message: String| ChangesError {
            path: path.to_string(),
            message,
        };
        let mut conn = SqliteConnection::establish(path).map_err(|e| fail(e.to_string()))?;
        conn.batch_execute("PRAGMA query_only = 1; PRAGMA busy_timeout = 0;")
            .map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// The file's change counter as this connection sees it now; `None` when it cannot be
    /// read (then nothing may be served from a cache).
    pub fn version(&self) -> Option<i64> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        diesel::sql_query("PRAGMA data_version")
            .get_result::<DataVersion>(&mut *c)
            .ok()
            .map(|v| v.data_version)
    }
}
