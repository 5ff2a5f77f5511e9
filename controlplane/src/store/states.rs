//! Connectivity and health changes of a node, each stored with its transition row.

use diesel::prelude::*;

use super::rows::{NewTransition, NodeRow};
use super::schema::{nodes, transitions};
use super::{with_conn, Store, StoreError, WriteTx};
use crate::model::Connectivity;

impl Store {
    /// Records a connectivity change (and, going online, the time of the scrape).
    pub fn set_connectivity(
        &self,
        id: &str,
        to: Connectivity,
        reason: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let Some(node) = nodes::table.find(id).first::<NodeRow>(c).optional()? else {
                return Ok(());
            };
            if node.connectivity == to.as_str() {
                return Ok(());
            }
            let t = NewTransition::of(&node, "connectivity", to.as_str(), reason, "scraper", now);
            diesel::insert_into(transitions::table).values(&t).execute(c)?;
            let seen = (to == Connectivity::Online).then_some(now).or(node.last_seen);
            diesel::update(nodes::table.find(id))
                .set((
                    nodes::connectivity.eq(to.as_str()),
                    nodes::updated_at.eq(now),
                    nodes::last_seen.eq(seen),
                ))
                .execute(c)?;
            Ok(())
        }))
    }

    /// Records a health change with its reason and actor (`policy:RULE`, `admin:…`).
    pub fn set_health(
        &self,
        id: &str,
        to: crate::model::Health,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let Some(node) = nodes::table.find(id).first::<NodeRow>(c).optional()? else {
                return Ok(());
            };
            if node.health == to.as_str() {
                return Ok(());
            }
            let t = NewTransition::of(&node, "health", to.as_str(), reason, actor, now);
            diesel::insert_into(transitions::table).values(&t).execute(c)?;
            diesel::update(nodes::table.find(id))
                .set((nodes::health.eq(to.as_str()), nodes::updated_at.eq(now)))
                .execute(c)?;
            Ok(())
        }))
    }
}

impl NewTransition {
    /// The transition of `field` (`status`, `health`, `connectivity`) of `c_node` to `to`.
    pub fn of(
        c_node: &NodeRow,
        field: &str,
        to: &str,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Self {
        let from = match field {
            "status" => c_node.status.clone(),
            "health" => c_node.health.clone(),
            _ => c_node.connectivity.clone(),
        };
        NewTransition {
            node_id: c_node.id.clone(),
            field: field.to_string(),
            from_state: from,
            to_state: to.to_string(),
            reason: reason.to_string(),
            actor: actor.to_string(),
            time: now,
        }
    }
}
