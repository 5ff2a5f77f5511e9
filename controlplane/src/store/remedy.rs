//! An operator's hand on the remediation budget (docs/POOLS.md, "Budget"): budgets raised
//! (or lowered) at run time for the fleet or a pool, and held nodes released past the
//! budget. Both are stored, so a restart keeps them; each change is audited in the
//! transaction that makes it.

use diesel::prelude::*;

use super::rows::NewAudit;
use super::schema::{audit, nodes, remediation_budgets, remediation_releases};
use super::{with_conn, Store, StoreError, WriteTx};
use crate::model::pool::BudgetSpec;

/// Which budget an operator's override is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum BudgetScope {
    /// The whole fleet's.
    Fleet,
    /// One pool's.
    Pool(String),
}

impl BudgetScope {
    /// The stored key: `fleet` or `pool:NAME`.
    pub fn key(&self) -> String {
        match self {
            BudgetScope::Fleet => "fleet".into(),
            BudgetScope::Pool(p) => format!("pool:{p}"),
        }
    }

    /// From a stored key.
    pub fn parse(key: &str) -> Result<BudgetScope, StoreError> {
        match key.strip_prefix("pool:") {
            Some(p) => Ok(BudgetScope::Pool(p.to_string())),
            None if key == "fleet" => Ok(BudgetScope::Fleet),
            None => Err(StoreError::Corrupt(format!("budget scope {key:?}"))),
        }
    }
}

/// A row of `remediation_budgets`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = remediation_budgets)]
pub struct BudgetRow {
    /// [`BudgetScope::key`].
    pub scope: String,
    /// Percentage of the nodes (more than 0, at most 100).
    pub max_percent: f64,
    /// Count of nodes.
    pub max_nodes: i32,
    /// The operator (token name).
    pub set_by: String,
    /// When (Unix ms).
    pub set_at: i64,
}

impl BudgetRow {
    /// The budget it sets.
    pub fn spec(&self) -> BudgetSpec {
        BudgetSpec {
            max_percent: self.max_percent,
            max_nodes: u32::try_from(self.max_nodes).unwrap_or(0),
        }
    }
}

/// A row of `remediation_releases`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = remediation_releases)]
pub struct ReleaseRow {
    /// The released node.
    pub node_id: String,
    /// Its pool.
    pub pool: String,
    /// The operator (token name).
    pub released_by: String,
    /// When (Unix ms).
    pub released_at: i64,
}

impl Store {
    /// Sets the budget of `scope` to `spec` (over the configured one until cleared), with
    /// its audit entry. A pool's must name a pool that exists.
    pub fn set_budget(
        &self,
        scope: &BudgetScope,
        spec: BudgetSpec,
        by: &str,
        now: i64,
        entry: NewAudit,
    ) -> Result<BudgetRow, StoreError> {
        let row = BudgetRow {
            scope: scope.key(),
            max_percent: spec.max_percent,
            max_nodes: i32::try_from(spec.max_nodes).unwrap_or(i32::MAX),
            set_by: by.to_string(),
            set_at: now,
        };
        with_conn!(self, c => c.write_tx(|c| {
            if let BudgetScope::Pool(p) = scope {
                use super::schema::pools;
                let n: i64 = pools::table.filter(pools::name.eq(p)).count().get_result(c)?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("pool {p}")));
                }
            }
            diesel::insert_into(remediation_budgets::table)
                .values(&row)
                .on_conflict(remediation_budgets::scope)
                .do_update()
                .set((
                    remediation_budgets::max_percent.eq(row.max_percent),
                    remediation_budgets::max_nodes.eq(row.max_nodes),
                    remediation_budgets::set_by.eq(&row.set_by),
                    remediation_budgets::set_at.eq(row.set_at),
                ))
                .execute(c)?;
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        }))?;
        Ok(row)
    }

    /// Removes the override of `scope` (the configured budget applies again), with its
    /// audit entry; false when there was none (nothing is audited then).
    pub fn clear_budget(&self, scope: &BudgetScope, entry: NewAudit) -> Result<bool, StoreError> {
        let key = scope.key();
        with_conn!(self, c => c.write_tx(|c| {
            let n = diesel::delete(remediation_budgets::table.find(&key)).execute(c)?;
            if n > 0 {
                diesel::insert_into(audit::table).values(&entry).execute(c)?;
            }
            Ok(n > 0)
        }))
    }

    /// Every override, by scope.
    pub fn budgets(&self) -> Result<Vec<BudgetRow>, StoreError> {
        with_conn!(self, c => Ok(remediation_budgets::table
            .order(remediation_budgets::scope)
            .select(BudgetRow::as_select())
            .load(c)?))
    }

    /// Releases held node `node_id` of `pool` (remediated past the budget at the next
    /// evaluation), with its audit entry. Releasing it again keeps the first release.
    pub fn release_node(&self, row: &ReleaseRow, entry: NewAudit) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let n: i64 = nodes::table.filter(nodes::id.eq(&row.node_id)).count().get_result(c)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("node {}", row.node_id)));
            }
            diesel::insert_into(remediation_releases::table)
                .values(row)
                .on_conflict(remediation_releases::node_id)
                .do_nothing()
                .execute(c)?;
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        }))
    }

    /// Every release not yet carried out.
    pub fn releases(&self) -> Result<Vec<ReleaseRow>, StoreError> {
        with_conn!(self, c => Ok(remediation_releases::table
            .order(remediation_releases::released_at)
            .select(ReleaseRow::as_select())
            .load(c)?))
    }

    /// Forgets the release of `node_id` (carried out, or no longer needed).
    pub fn clear_release(&self, node_id: &str) -> Result<(), StoreError> {
        with_conn!(self, c => {
            diesel::delete(remediation_releases::table.find(node_id)).execute(c)?;
            Ok(())
        })
    }
}
