//! The command queue: what is due for delivery, delivery attempts, final results, and the
//! facts remediation decides from.

use diesel::prelude::*;

use super::rows::{CommandRow, NewAudit, NewTransition, NodeRow};
use super::schema::{audit, commands, node_tokens, nodes, transitions};
use super::{with_conn, Store, StoreError, WriteTx};
use crate::model::lifecycle;
use crate::model::{CommandKind, CommandState, Health, Status};

/// Where a node's agent takes commands.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryTarget {
    /// The agent's base URL.
    pub address: Option<String>,
    /// Digest of the node token issued last (the credential the agent checks).
    pub token_digest: Option<String>,
}

impl Store {
    /// Commands waiting for delivery (`pending`) or for their end (`running`) whose next
    /// attempt is due, oldest due first.
    pub fn due_commands(&self, now: i64, limit: i64) -> Result<Vec<CommandRow>, StoreError> {
        let open = [
            CommandState::Pending.as_str(),
            CommandState::Running.as_str(),
        ];
        with_conn!(self, c => Ok(commands::table
            .filter(commands::state.eq_any(open))
            .filter(commands::next_attempt_at.le(now))
            .order(commands::next_attempt_at.asc())
            .limit(limit)
            .load::<CommandRow>(c)?))
    }

    /// Stores a command that changes no status (run_diagnostic), with its audit entry.
    pub fn add_command(&self, cmd: &CommandRow, entry: NewAudit) -> Result<(), StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            diesel::insert_into(commands::table).values(cmd).execute(c)?;
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(())
        }))
    }

    /// One command by id.
    pub fn command(&self, id: &str) -> Result<CommandRow, StoreError> {
        with_conn!(self, c => commands::table
            .find(id)
            .first::<CommandRow>(c)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("command {id}"))))
    }

    /// The address and credential for node `id`'s agent.
    pub fn delivery_target(&self, id: &str) -> Result<DeliveryTarget, StoreError> {
        with_conn!(self, c => {
            let address = nodes::table
                .find(id)
                .select(nodes::address)
                .first::<Option<String>>(c)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("node {id}")))?;
            let token_digest = node_tokens::table
                .filter(node_tokens::node_id.eq(id))
                .order(node_tokens::created_at.desc())
                .select(node_tokens::digest)
                .first::<String>(c)
                .optional()?;
            Ok(DeliveryTarget { address, token_digest })
        })
    }

    /// Records a delivery attempt that did not end the command: it stays `state` and is
    /// tried again at `next_attempt_at`.
    pub fn command_attempt(
        &self,
        id: &str,
        state: CommandState,
        next_attempt_at: i64,
        result: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        with_conn!(self, c => {
            diesel::update(commands::table.find(id))
                .set((
                    commands::state.eq(state.as_str()),
                    commands::attempts.eq(commands::attempts + 1),
                    commands::next_attempt_at.eq(next_attempt_at),
                    commands::result.eq(result),
                    commands::updated_at.eq(now),
                ))
                .execute(c)?;
            Ok(())
        })
    }

    /// Records the end of a command, with its audit entry (result `ok`, or `failed: WHY`).
    /// The end of the node's latest lifecycle command also moves the node
    /// ([`lifecycle::after_command`]): a terminate that succeeded to `terminated`, one that
    /// failed back to `cordoned`, a drain that ended to `cordoned`. One transaction. A
    /// command that had already ended is left as it was (`Ok(false)`).
    pub fn finish_command(
        &self,
        id: &str,
        state: CommandState,
        result: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        with_conn!(self, c => c.write_tx(|c| {
            let cmd = commands::table
                .find(id)
                .first::<CommandRow>(c)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("command {id}")))?;
            let open = [CommandState::Pending.as_str(), CommandState::Running.as_str()];
            if !open.contains(&cmd.state.as_str()) {
                return Ok(false);
            }
            diesel::update(commands::table.find(id))
                .set((
                    commands::state.eq(state.as_str()),
                    commands::attempts.eq(commands::attempts + 1),
                    commands::result.eq(result),
                    commands::updated_at.eq(now),
                    commands::completed_at.eq(Some(now)),
                ))
                .execute(c)?;
            let kind: CommandKind = cmd.kind.parse().map_err(StoreError::Corrupt)?;
            let step = lifecycle::after_command(kind, state == CommandState::Succeeded);
            if let Some(step) = step {
                // Only the node's latest lifecycle command moves it: a drain that ends after
                // the operator asked for something else changes nothing.
                let later: i64 = commands::table
                    .filter(commands::node_id.eq(&cmd.node_id))
                    .filter(commands::kind.ne(CommandKind::RunDiagnostic.as_str()))
                    .filter(commands::created_at.gt(cmd.created_at))
                    .count()
                    .get_result(c)?;
                let node = nodes::table.find(&cmd.node_id).first::<NodeRow>(c).optional()?;
                if let (Some(node), 0) = (node, later) {
                    let from = node.status()?;
                    if let Ok(to) = lifecycle::next(from, step) {
                        if to != from {
                            let t = NewTransition {
                                node_id: node.id.clone(),
                                field: "status".into(),
                                from_state: node.status.clone(),
                                to_state: to.as_str().into(),
                                reason: format!(
                                    "{} command {id} {}: {}",
                                    cmd.kind,
                                    state.as_str(),
                                    crate::store::rows::message_of(result)
                                ),
                                actor: "agent".into(),
                                time: now,
                            };
                            diesel::insert_into(transitions::table).values(&t).execute(c)?;
                            diesel::update(nodes::table.find(&node.id))
                                .set((nodes::status.eq(to.as_str()), nodes::updated_at.eq(now)))
                                .execute(c)?;
                        }
                    }
                }
            }
            let message = crate::store::rows::message_of(result);
            let outcome = if state == CommandState::Succeeded {
                "ok".to_string()
            } else {
                let m: String = message.chars().take(512).collect();
                format!("{}: {m}", state.as_str())
            };
            let entry = NewAudit {
                result: outcome,
                ..NewAudit::ok(
                    "agent",
                    &format!("command.{}", state.as_str()),
                    &cmd.node_id,
                    serde_json::json!({"command": id, "kind": cmd.kind, "requested_by": cmd.requested_by}),
                    now,
                )
            };
            diesel::insert_into(audit::table).values(&entry).execute(c)?;
            Ok(true)
        }))
    }

    /// Nodes that are unhealthy and not terminated: the ones remediation looks at.
    pub fn unhealthy_nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        with_conn!(self, c => Ok(nodes::table
            .filter(nodes::health.eq(Health::Unhealthy.as_str()))
            .filter(nodes::status.ne(Status::Terminated.as_str()))
            .order(nodes::id.asc())
            .load::<NodeRow>(c)?))
    }

    /// When node `id` last turned unhealthy (Unix ms).
    pub fn unhealthy_since(&self, id: &str) -> Result<Option<i64>, StoreError> {
        with_conn!(self, c => Ok(transitions::table
            .filter(transitions::node_id.eq(id))
            .filter(transitions::field.eq("health"))
            .filter(transitions::to_state.eq(Health::Unhealthy.as_str()))
            .order(transitions::id.desc())
            .select(transitions::time)
            .first::<i64>(c)
            .optional()?))
    }
}
