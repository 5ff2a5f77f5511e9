//! Each pool's utilization history for the predictive autoscaler (docs/POOLS.md,
//! "Predictive"): one sample per evaluation, stored so a restart forecasts from the same
//! trend, and pruned to the window the pool's autoscaler reads.

use diesel::prelude::*;

use super::schema::pool_utilization;
use super::{with_conn, Store, StoreError, WriteTx};

impl Store {
    /// Adds `pool`'s sample (`time`, `ratio`) and removes its samples older than
    /// `keep_from` (Unix ms), in one transaction. A second sample at the same time replaces
    /// the first.
    pub fn add_utilization(
        &self,
        pool: &str,
        time: i64,
        ratio: f64,
        keep_from: i64,
    ) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            diesel::insert_into(pool_utilization::table)
                .values((
                    pool_utilization::pool.eq(pool),
                    pool_utilization::time.eq(time),
                    pool_utilization::ratio.eq(ratio),
                ))
                .on_conflict((pool_utilization::pool, pool_utilization::time))
                .do_update()
                .set(pool_utilization::ratio.eq(ratio))
                .execute(c)?;
            diesel::delete(
                pool_utilization::table
                    .filter(pool_utilization::pool.eq(pool))
                    .filter(pool_utilization::time.lt(keep_from)),
            )
            .execute(c)?;
            Ok(())
        }))
    }

    /// `pool`'s samples from `since` (Unix ms), oldest first, at most `limit` (the newest).
    pub fn utilization(
        &self,
        pool: &str,
        since: i64,
        limit: usize,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows: Vec<(i64, f64)> = with_conn!(self, c => pool_utilization::table
            .filter(pool_utilization::pool.eq(pool))
            .filter(pool_utilization::time.ge(since))
            .order(pool_utilization::time.desc())
            .limit(limit)
            .select((pool_utilization::time, pool_utilization::ratio))
            .load(c)?);
        rows.reverse();
        Ok(rows)
    }
}
