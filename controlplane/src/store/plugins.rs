//! Plugins distributed from the control plane: components kept by SHA-256
//! (`plugin_blobs`), which runs on the nodes of a pool or on every node
//! (`plugin_assignments`), and what each agent reports it runs (`node_plugins`). Each change
//! an operator makes is one transaction with its audit entry.

use diesel::prelude::*;

use super::rows::NewAudit;
use super::schema::{audit, node_plugins, nodes, plugin_assignments, plugin_blobs, pools};
use super::{with_conn, Store, StoreError, WriteTx};

/// The pool name of an assignment to every node.
pub const ALL_NODES: &str = "*";

/// A stored component, its bytes left out.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = plugin_blobs)]
pub struct PluginBlobInfo {
    /// `sha256:<64 hex>` of its bytes.
    pub digest: String,
    /// The name it was pushed under.
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// Who pushed it.
    pub uploaded_by: String,
    /// When (Unix ms).
    pub uploaded_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = plugin_blobs)]
struct NewBlob<'a> {
    digest: &'a str,
    name: &'a str,
    size: i64,
    data: &'a [u8],
    uploaded_by: &'a str,
    uploaded_at: i64,
}

/// One assignment: plugin `name` at `digest` on the nodes of `pool` ([`ALL_NODES`]: all).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = plugin_assignments)]
pub struct AssignmentRow {
    /// A pool's name, or [`ALL_NODES`].
    pub pool: String,
    /// The plugin's name on the agents.
    pub name: String,
    /// The component, `sha256:<hex>`.
    pub digest: String,
    /// Its config: a JSON object of strings.
    pub config: String,
    /// Run interval, ms (None: the agent's default).
    pub interval_ms: Option<i64>,
    /// Deadline of a run, ms (None: the agent's default).
    pub timeout_ms: Option<i64>,
    /// Memory cap, MiB (None: the agent's default).
    pub memory_limit_mib: Option<i32>,
    /// Who assigned it.
    pub assigned_by: String,
    /// When (Unix ms).
    pub assigned_at: i64,
}

impl AssignmentRow {
    /// The row of a checked assignment of `pool` (its digest empty when not given).
    pub fn of(pool: &str, c: &crate::model::plugin::CheckedAssign, by: &str, now: i64) -> Self {
        AssignmentRow {
            pool: pool.to_string(),
            name: c.name.clone(),
            digest: c.digest.clone().unwrap_or_default(),
            config: serde_json::to_string(&c.config).unwrap_or_else(|_| "{}".into()),
            interval_ms: c.interval_ms,
            timeout_ms: c.timeout_ms,
            memory_limit_mib: c.memory_limit_mib.and_then(|m| i32::try_from(m).ok()),
            assigned_by: by.to_string(),
            assigned_at: now,
        }
    }
}

/// What an agent reported of one plugin.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = node_plugins)]
pub struct NodePluginRow {
    /// The node.
    pub node_id: String,
    /// The plugin's name.
    pub name: String,
    /// `assigned` (from the control plane) or `local` (the agent's own config).
    pub source: String,
    /// The digest running, `sha256:<hex>` (None: no version is loaded).
    pub running: Option<String>,
    /// Its last result: `healthy`, `degraded`, `unhealthy`, `unknown` (None: not run yet).
    pub status: Option<String>,
    /// Its last message.
    pub message: String,
    /// Why the version asked for is not running (refused: digest, compile, first run).
    pub error: Option<String>,
    /// When the agent reported it (Unix ms).
    pub reported_at: i64,
}

impl Store {
    /// Stores a component under its digest with its audit entry; `false` when that digest
    /// was stored already under this name (it becomes the newest of the name again: a
    /// rollback by pushing again); [`StoreError::Conflict`] when it is stored under another
    /// name.
    pub fn put_plugin_blob(
        &self,
        digest: &str,
        name: &str,
        data: &[u8],
        by: &str,
        at: i64,
        entry: NewAudit,
    ) -> Result<bool, StoreError> {
        let row = NewBlob {
            digest,
            name,
            size: i64::try_from(data.len()).unwrap_or(i64::MAX),
            data,
            uploaded_by: by,
            uploaded_at: at,
        };
        with_conn!(self, c => c.write_tx(|c| {
            let stored: Option<String> = plugin_blobs::table
                .find(digest)
                .select(plugin_blobs::name)
                .first(c)
                .optional()?;
            let created = match stored {
                Some(n) if n != name => {
                    return Err(StoreError::Conflict(format!(
                        "these bytes ({digest}) are stored as plugin {n}: push them as {n}, or assign them by digest"
                    )))
                }
                Some(_) => {
                    diesel::update(plugin_blobs::table.find(digest))
                        .set(plugin_blobs::uploaded_at.eq(at))
                        .execute(c)?;
                    false
                }
                None => {
                    diesel::insert_into(plugin_blobs::table).values(&row).execute(c)?;
                    true
                }
            };
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(created)
        }))
    }

    /// Every stored component, newest first, without its bytes.
    pub fn plugin_blobs(&self) -> Result<Vec<PluginBlobInfo>, StoreError> {
        with_conn!(self, c => Ok(plugin_blobs::table
            .order((plugin_blobs::uploaded_at.desc(), plugin_blobs::digest))
            .select(PluginBlobInfo::as_select())
            .load(c)?))
    }

    /// The bytes of component `digest`, if stored.
    pub fn plugin_blob(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        with_conn!(self, c => Ok(plugin_blobs::table
            .find(digest)
            .select(plugin_blobs::data)
            .first::<Vec<u8>>(c)
            .optional()?))
    }

    /// Deletes component `digest` with its audit entry: `false` when there is none,
    /// [`StoreError::Conflict`] while it is assigned.
    pub fn delete_plugin_blob(&self, digest: &str, entry: NewAudit) -> Result<bool, StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let used: Vec<(String, String)> = plugin_assignments::table
                .filter(plugin_assignments::digest.eq(digest))
                .select((plugin_assignments::pool, plugin_assignments::name))
                .load(c)?;
            if !used.is_empty() {
                let list: Vec<String> =
                    used.iter().map(|(p, n)| format!("{n} on pool {p}")).collect();
                return Err(StoreError::Conflict(format!(
                    "{digest} is assigned ({}): unassign it first (gpuwarden plugins unassign, or remove it from the pool's spec where the spec declares it)",
                    list.join(", ")
                )));
            }
            let n = diesel::delete(plugin_blobs::table.find(digest)).execute(c)?;
            if n > 0 {
                diesel::insert_into(audit::table).values(&entry).execute(c)?;
            }
            Ok(n > 0)
        }))
    }

    /// Makes `rows` the plugins of `pool` (every other assignment of that pool removed), with
    /// the audit entry; [`StoreError::NotFound`] for a digest that is not stored.
    pub fn set_plugin_assignments(
        &self,
        pool: &str,
        rows: &[AssignmentRow],
        entry: NewAudit,
    ) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            for r in rows {
                let known: i64 = plugin_blobs::table
                    .filter(plugin_blobs::digest.eq(&r.digest))
                    .count()
                    .get_result(c)?;
                if known == 0 {
                    return Err(StoreError::NotFound(format!(
                        "pushed component {} (plugin {})",
                        r.digest, r.name
                    )));
                }
            }
            diesel::delete(plugin_assignments::table.filter(plugin_assignments::pool.eq(pool)))
                .execute(c)?;
            diesel::insert_into(plugin_assignments::table)
                .values(rows)
                .execute(c)?;
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        }))
    }

    /// The assignments of `pool` (None: of every pool and of [`ALL_NODES`]), by pool and name.
    pub fn plugin_assignments(&self, pool: Option<&str>) -> Result<Vec<AssignmentRow>, StoreError> {
        with_conn!(self, c => {
            let mut q = plugin_assignments::table
                .select(AssignmentRow::as_select())
                .order((plugin_assignments::pool, plugin_assignments::name))
                .into_boxed();
            if let Some(p) = pool {
                q = q.filter(plugin_assignments::pool.eq(p.to_string()));
            }
            Ok(q.load(c)?)
        })
    }

    /// Assigns one plugin (replacing the pool's assignment of that name), with the audit
    /// entry; [`StoreError::NotFound`] for a digest that is not stored.
    pub fn put_plugin_assignment(
        &self,
        row: &AssignmentRow,
        entry: NewAudit,
    ) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let known: i64 = plugin_blobs::table
                .filter(plugin_blobs::digest.eq(&row.digest))
                .count()
                .get_result(c)?;
            if known == 0 {
                return Err(StoreError::NotFound(format!(
                    "pushed component {} (plugin {})",
                    row.digest, row.name
                )));
            }
            diesel::delete(
                plugin_assignments::table
                    .filter(plugin_assignments::pool.eq(&row.pool))
                    .filter(plugin_assignments::name.eq(&row.name)),
            )
            .execute(c)?;
            diesel::insert_into(plugin_assignments::table)
                .values(row)
                .execute(c)?;
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        }))
    }

    /// Makes `list` (a pool spec's `plugins`, checked) the assignments of `pool`, audited as
    /// `by`, unless they are those already; whether anything changed. The components need
    /// not be stored yet (a config file may pin one pushed later: agents report it missing
    /// until it is).
    pub fn apply_spec_plugins(
        &self,
        pool: &str,
        list: &[crate::model::plugin::PluginAssign],
        by: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let rows: Vec<AssignmentRow> = list
            .iter()
            .filter_map(|a| a.check(true).ok())
            .map(|c| AssignmentRow::of(pool, &c, by, now))
            .collect();
        let key = |r: &AssignmentRow| {
            (
                r.name.clone(),
                r.digest.clone(),
                r.config.clone(),
                r.interval_ms,
                r.timeout_ms,
                r.memory_limit_mib,
            )
        };
        let mut want: Vec<_> = rows.iter().map(key).collect();
        want.sort();
        with_conn!(self, c => c.write_tx(|c| {
            let mut have: Vec<_> = plugin_assignments::table
                .filter(plugin_assignments::pool.eq(pool))
                .select(AssignmentRow::as_select())
                .load::<AssignmentRow>(c)?
                .iter()
                .map(key)
                .collect();
            have.sort();
            if have == want {
                return Ok(false);
            }
            diesel::delete(plugin_assignments::table.filter(plugin_assignments::pool.eq(pool)))
                .execute(c)?;
            diesel::insert_into(plugin_assignments::table)
                .values(&rows)
                .execute(c)?;
            let entry = NewAudit::ok(
                by,
                "plugins.assign",
                &format!("pool:{pool}"),
                serde_json::json!({"plugins": rows.iter().map(|r| format!("{}@{}", r.name, r.digest)).collect::<Vec<_>>(), "from": "pool spec"}),
                now,
            );
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(true)
        }))
    }

    /// Removes plugin `name` from `pool`, with the audit entry; `false` when it was not
    /// assigned there.
    pub fn delete_plugin_assignment(
        &self,
        pool: &str,
        name: &str,
        entry: NewAudit,
    ) -> Result<bool, StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let n = diesel::delete(
                plugin_assignments::table
                    .filter(plugin_assignments::pool.eq(pool))
                    .filter(plugin_assignments::name.eq(name)),
            )
            .execute(c)?;
            if n > 0 {
                diesel::insert_into(audit::table).values(&entry).execute(c)?;
            }
            Ok(n > 0)
        }))
    }

    /// Whether `pool` names a pool: one of the pools table, or the pool of some node.
    pub fn pool_known(&self, pool: &str) -> Result<bool, StoreError> {
        with_conn!(self, c => {
            let p: i64 = pools::table.filter(pools::name.eq(pool)).count().get_result(c)?;
            let n: i64 = nodes::table.filter(nodes::pool.eq(pool)).count().get_result(c)?;
            Ok(p + n > 0)
        })
    }

    /// `(id, name, pool)` of the nodes of `pool` (None: every node), by name.
    pub fn nodes_of(
        &self,
        pool: Option<&str>,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        with_conn!(self, c => {
            let mut q = nodes::table
                .select((nodes::id, nodes::name, nodes::pool))
                .order(nodes::name)
                .into_boxed();
            if let Some(p) = pool {
                q = q.filter(nodes::pool.eq(p.to_string()));
            }
            Ok(q.load(c)?)
        })
    }

    /// Replaces what node `node_id` runs with what its agent reported.
    pub fn record_node_plugins(
        &self,
        node_id: &str,
        rows: &[NodePluginRow],
    ) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            diesel::delete(node_plugins::table.filter(node_plugins::node_id.eq(node_id)))
                .execute(c)?;
            diesel::insert_into(node_plugins::table)
                .values(rows)
                .execute(c)?;
            Ok(())
        }))
    }

    /// What the agents reported, with each node's name and pool, of the nodes of `pool`
    /// (None: every node), by node name then plugin.
    pub fn node_plugins(
        &self,
        pool: Option<&str>,
    ) -> Result<Vec<(String, String, NodePluginRow)>, StoreError> {
        with_conn!(self, c => {
            let mut q = node_plugins::table
                .inner_join(nodes::table)
                .select((nodes::name, nodes::pool, NodePluginRow::as_select()))
                .order((nodes::name, node_plugins::name))
                .into_boxed();
            if let Some(p) = pool {
                q = q.filter(nodes::pool.eq(p.to_string()));
            }
            Ok(q.load(c)?)
        })
    }
}

/// The assignments that apply to a node of `pool` among `rows` (the pool's and those of
/// [`ALL_NODES`]): the pool's own wins over one of the same name for every node.
pub fn effective(pool: &str, rows: Vec<AssignmentRow>) -> Vec<AssignmentRow> {
    let own: Vec<String> = rows
        .iter()
        .filter(|r| r.pool == pool)
        .map(|r| r.name.clone())
        .collect();
    rows.into_iter()
        .filter(|r| r.pool == pool || (r.pool == ALL_NODES && !own.contains(&r.name)))
        .collect()
}
