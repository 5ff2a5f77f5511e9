//! Pools: their specs, the operator's target and pushed demand, the pool manager's state
//! and its last decisions.
//!
//! A pool from the config file (`source = config`) is read-only through the API: changing
//! or deleting it is a conflict naming the file. The store enforces that, so no caller can
//! forget it. Scaling it and pushing its demand are not changes to its declaration and are
//! allowed.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::pool_rows::{
    spec_json, DecisionRow, NewDecision, PoolRow, PoolRuntime, SOURCE_API, SOURCE_CONFIG,
};
use super::rows::NewAudit;
use super::schema::{
    audit, instances, nodes, plugin_assignments, pool_decisions, pools, remediation_budgets,
};
use super::{is_unique_violation, with_conn, Store, StoreError, WriteTx};
use crate::model::pool::{InstanceState, PoolSpec};
use crate::model::Status;

pub use super::pool_rows::ConfigApplied;

/// Nodes (not terminated) and instances in flight of pool `$name`, on connection `$c`.
macro_rules! machines {
    ($c:expr, $name:expr) => {{
        let n: i64 = nodes::table
            .filter(nodes::pool.eq($name))
            .filter(nodes::status.ne(Status::Terminated.as_str()))
            .count()
            .get_result($c)?;
        let i: i64 = instances::table
            .filter(instances::pool.eq($name))
            .filter(instances::state.eq_any(live_states()))
            .count()
            .get_result($c)?;
        (n, i)
    }};
}

/// Deletes pool `$name` with its decisions, an operator's budget for it and its plugin
/// assignments (a pool created again under the name starts without them).
macro_rules! forget_pool {
    ($c:expr, $name:expr) => {{
        diesel::delete(pool_decisions::table.filter(pool_decisions::pool.eq($name))).execute($c)?;
        diesel::delete(plugin_assignments::table.filter(plugin_assignments::pool.eq($name)))
            .execute($c)?;
        diesel::delete(
            remediation_budgets::table
                .filter(remediation_budgets::scope.eq(format!("pool:{}", $name))),
        )
        .execute($c)?;
        diesel::delete(pools::table.find($name)).execute($c)?;
    }};
}

fn read_only(row: &PoolRow) -> StoreError {
    row.config_conflict()
        .unwrap_or_else(|| StoreError::Conflict(format!("pool {:?} is read-only", row.name)))
}

/// The manual target moved into `spec`'s bounds when a change of the spec left it outside
/// (a lowered `max_nodes`): the new target and why, or `None` when it stays.
fn clamp_manual(manual: Option<i32>, spec: &PoolSpec) -> Option<(i32, String)> {
    let m = manual?;
    let (lo, hi) = (i64::from(spec.min_nodes), i64::from(spec.max_nodes));
    let to = i64::from(m).clamp(lo, hi.max(lo));
    (to != i64::from(m)).then(|| {
        (
            i32::try_from(to).unwrap_or(i32::MAX),
            format!("manual target {m} clamped to {to}: the pool's bounds are now {lo}..{hi}"),
        )
    })
}

/// The decision that records a clamped manual target (shown by `GET /v1/pools/{name}`
/// among the pool manager's): no actions, the counts of the last decision.
fn clamp_decision(
    pool: &str,
    target: i32,
    why: &str,
    counts: Option<String>,
    now: i64,
) -> NewDecision {
    NewDecision {
        pool: pool.to_string(),
        time: now,
        target,
        reasons: serde_json::json!([why]).to_string(),
        actions: "[]".into(),
        counts: counts.unwrap_or_else(|| "{}".into()),
    }
}

/// Instances that still hold or will hold a machine.
fn live_states() -> Vec<&'static str> {
    InstanceState::ALL
        .iter()
        .filter(|s| !matches!(s, InstanceState::Terminated | InstanceState::Failed))
        .map(|s| s.as_str())
        .collect()
}

impl Store {
    /// Inserts a pool, with its audit entry; a pool of that name is a conflict (naming the
    /// config file when the config declares it).
    pub fn create_pool(&self, row: &PoolRow, entry: NewAudit) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let existing = pools::table.find(&row.name).first::<PoolRow>(c).optional()?;
            match existing {
                Some(r) if r.from_config() => return Err(read_only(&r)),
                Some(r) => return Err(StoreError::Conflict(format!("a pool named {:?} exists", r.name))),
                None => {}
            }
            diesel::insert_into(pools::table).values(row).execute(c).map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("a pool named {:?} exists", row.name))
                } else {
                    e.into()
                }
            })?;
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        }))
    }

    /// One pool.
    pub fn pool(&self, name: &str) -> Result<PoolRow, StoreError> {
        with_conn!(self, c => pools::table
            .find(name)
            .first::<PoolRow>(c)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("pool {name}"))))
    }

    /// Every pool, by name.
    pub fn pools(&self) -> Result<Vec<PoolRow>, StoreError> {
        with_conn!(self, c => Ok(pools::table.order(pools::name).load::<PoolRow>(c)?))
    }

    /// Replaces an API pool's spec (its manager state stays), with its audit entry.
    pub fn update_pool_spec(
        &self,
        spec: &PoolSpec,
        now: i64,
        entry: NewAudit,
    ) -> Result<PoolRow, StoreError> {
        let json = spec_json(spec)?;
        with_conn!(self, c => c.write_tx(|c| {
            let mut row = pools::table
                .find(&spec.name)
                .first::<PoolRow>(c)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("pool {}", spec.name)))?;
            if row.from_config() {
                return Err(read_only(&row));
            }
            diesel::update(pools::table.find(&spec.name))
                .set((pools::spec.eq(&json), pools::updated_at.eq(now)))
                .execute(c)?;
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            if let Some((to, why)) = clamp_manual(row.manual_target, spec) {
                let counts: Option<String> = pool_decisions::table
                    .filter(pool_decisions::pool.eq(&spec.name))
                    .order(pool_decisions::id.desc())
                    .select(pool_decisions::counts)
                    .first(c)
                    .optional()?;
                diesel::update(pools::table.find(&spec.name))
                    .set(pools::manual_target.eq(Some(to)))
                    .execute(c)?;
                diesel::insert_into(pool_decisions::table)
                    .values(&clamp_decision(&spec.name, to, &why, counts, now))
                    .execute(c)?;
                row.manual_target = Some(to);
            }
            row.spec = json.clone();
            row.updated_at = now;
            Ok(row)
        }))
    }

    /// Deletes an API pool and its decisions. A pool that still has nodes (not terminated)
    /// or live instances is a conflict unless `force`; with `force` those stay in the
    /// database as they are (nothing is terminated; the nodes keep the pool's name).
    pub fn delete_pool(&self, name: &str, force: bool, entry: NewAudit) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let row = pools::table
                .find(name)
                .first::<PoolRow>(c)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("pool {name}")))?;
            if row.from_config() {
                return Err(read_only(&row));
            }
            if !force {
                let (n, i) = machines!(c, name);
                if n > 0 || i > 0 {
                    return Err(StoreError::Conflict(format!(
                        "pool {name:?} has {n} node(s) and {i} instance(s) in flight; give them \
                         back first (set min_nodes to 0, then scale to 0), or delete with force \
                         (?force=true; the CLI's --force) to leave them as they are"
                    )));
                }
            }
            forget_pool!(c, name);
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        }))
    }

    /// Sets (or, with `None`, clears) the operator's target, with its audit entry.
    pub fn set_manual_target(
        &self,
        name: &str,
        nodes: Option<u32>,
        now: i64,
        entry: NewAudit,
    ) -> Result<(), StoreError> {
        let n = nodes.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        with_conn!(self, c => c.write_tx(|c| {
            let changed = diesel::update(pools::table.find(name))
                .set((pools::manual_target.eq(n), pools::updated_at.eq(now)))
                .execute(c)?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("pool {name}")));
            }
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        }))
    }

    /// Stores the pending jobs an operator's scheduler pushed, and when.
    pub fn set_demand(&self, name: &str, pending_jobs: u64, now: i64) -> Result<(), StoreError> {
        let n = i64::try_from(pending_jobs).unwrap_or(i64::MAX);
        with_conn!(self, c => {
            let changed = diesel::update(pools::table.find(name))
                .set((pools::demand_pending.eq(Some(n)), pools::demand_at.eq(Some(now))))
                .execute(c)?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("pool {name}")));
            }
            Ok(())
        })
    }

    /// Stores what the pool manager keeps of a pool between evaluations.
    pub fn save_pool_runtime(&self, name: &str, rt: &PoolRuntime) -> Result<(), StoreError> {
        with_conn!(self, c => {
            let changed = diesel::update(pools::table.find(name)).set(rt).execute(c)?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("pool {name}")));
            }
            Ok(())
        })
    }

    /// Records one evaluation of a pool and keeps only its last `keep` (at least 1).
    pub fn record_decision(&self, d: &NewDecision, keep: usize) -> Result<(), StoreError> {
        let keep = i64::try_from(keep.max(1)).unwrap_or(i64::MAX);
        with_conn!(self, c => c.write_tx(|c| {
            diesel::insert_into(pool_decisions::table).values(d).execute(c)?;
            let oldest_kept: Option<i64> = pool_decisions::table
                .filter(pool_decisions::pool.eq(&d.pool))
                .select(pool_decisions::id)
                .order(pool_decisions::id.desc())
                .offset(keep - 1)
                .first(c)
                .optional()?;
            if let Some(id) = oldest_kept {
                diesel::delete(
                    pool_decisions::table
                        .filter(pool_decisions::pool.eq(&d.pool))
                        .filter(pool_decisions::id.lt(id)),
                )
                .execute(c)?;
            }
            Ok(())
        }))
    }

    /// A pool's last `limit` decisions, newest first.
    pub fn decisions(&self, pool: &str, limit: i64) -> Result<Vec<DecisionRow>, StoreError> {
        with_conn!(self, c => Ok(pool_decisions::table
            .filter(pool_decisions::pool.eq(pool))
            .order(pool_decisions::id.desc())
            .limit(limit)
            .load::<DecisionRow>(c)?))
    }

    /// Nodes per pool that are not terminated (`nodes` of `GET /v1/pools`).
    pub fn pool_node_counts(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        with_conn!(self, c => {
            let rows: Vec<(String, i64)> = nodes::table
                .filter(nodes::status.ne(Status::Terminated.as_str()))
                .group_by(nodes::pool)
                .select((nodes::pool, diesel::dsl::count_star()))
                .load(c)?;
            Ok(rows.into_iter().collect())
        })
    }

    /// Makes the database's config pools those of the config file `file`: creates the new,
    /// updates the changed (their manager state stays), takes over API pools of the same
    /// name, and deletes config pools no longer declared. One transaction.
    pub fn apply_config_pools(
        &self,
        specs: &[PoolSpec],
        file: &str,
        now: i64,
    ) -> Result<ConfigApplied, StoreError> {
        let mut wanted = Vec::with_capacity(specs.len());
        for s in specs {
            wanted.push((s.name.clone(), spec_json(s)?, s));
        }
        with_conn!(self, c => c.write_tx(|c| {
            let mut out = ConfigApplied::default();
            let existing: BTreeMap<String, PoolRow> = pools::table
                .load::<PoolRow>(c)?
                .into_iter()
                .map(|r| (r.name.clone(), r))
                .collect();
            for (name, json, spec) in &wanted {
                match existing.get(name) {
                    None => {
                        let row = PoolRow::new(spec, SOURCE_CONFIG, Some(file.to_string()), now)?;
                        diesel::insert_into(pools::table).values(&row).execute(c)?;
                        out.created.push(name.clone());
                    }
                    Some(r) if r.from_config() && &r.spec == json && r.source_file.as_deref() == Some(file) => {}
                    Some(r) => {
                        diesel::update(pools::table.find(name))
                            .set((
                                pools::spec.eq(json),
                                pools::source.eq(SOURCE_CONFIG),
                                pools::source_file.eq(Some(file)),
                                pools::updated_at.eq(now),
                            ))
                            .execute(c)?;
                        if let Some((to, why)) = clamp_manual(r.manual_target, spec) {
                            let counts: Option<String> = pool_decisions::table
                                .filter(pool_decisions::pool.eq(name))
                                .order(pool_decisions::id.desc())
                                .select(pool_decisions::counts)
                                .first(c)
                                .optional()?;
                            diesel::update(pools::table.find(name))
                                .set(pools::manual_target.eq(Some(to)))
                                .execute(c)?;
                            diesel::insert_into(pool_decisions::table)
                                .values(&clamp_decision(name, to, &why, counts, now))
                                .execute(c)?;
                            out.clamped.push(why);
                        }
                        if r.source == SOURCE_API {
                            out.taken_over.push(name.clone());
                        } else {
                            out.updated.push(name.clone());
                        }
                    }
                }
            }
            for (name, r) in &existing {
                if r.from_config() && !wanted.iter().any(|(n, _, _)| n == name) {
                    let (n, i) = machines!(c, name);
                    if n > 0 || i > 0 {
                        diesel::update(pools::table.find(name))
                            .set((
                                pools::source.eq(SOURCE_API),
                                pools::source_file.eq(None::<String>),
                                pools::updated_at.eq(now),
                            ))
                            .execute(c)?;
                        out.handed_back.push(name.clone());
                    } else {
                        forget_pool!(c, name);
                        out.removed.push(name.clone());
                    }
                }
            }
            let entry = NewAudit::ok(
                "config",
                "pools.apply",
                file,
                serde_json::json!({
                    "created": out.created, "updated": out.updated,
                    "taken_over": out.taken_over, "removed": out.removed,
                    "handed_back": out.handed_back, "clamped": out.clamped,
                }),
                now,
            );
            if out != ConfigApplied::default() {
                diesel::insert_into(audit::table).values(&entry).execute(c)?;
            }
            Ok(out)
        }))
    }
}
