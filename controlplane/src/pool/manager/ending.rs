//! The end of instances and nodes: terminating them through their provider (on a thread
//! of its own, outside any lock, under the call timeout), failing them, and registration
//! matching (an instance whose node its agent registered is `running`).

use serde_json::json;
use tracing::{info, warn};

use crate::model::lifecycle::Step;
use crate::model::pool::InstanceState;
use crate::model::Status;
use crate::pool::compile::Pool;
use crate::pool::provider::ErrorKind;
use crate::store::pool_rows::{InstanceRow, InstanceUpdate};
use crate::store::rows::NewAudit;
use crate::store::StoreError;

use super::calls;
use super::carry::ACTOR;
use super::context::Ctx;

/// Moves a node to `terminated` (through `terminating`) without a command: its machine is
/// the provider's to stop.
pub fn node_gone(ctx: &Ctx, node: &str, reason: &str) -> Result<(), StoreError> {
    let row = match ctx.store.node(node) {
        Ok(r) => r,
        Err(StoreError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let now = ctx.clock.now_ms();
    for step in [Step::Terminate, Step::Terminated] {
        let st = ctx.store.node(&row.id)?.status()?;
        if st == Status::Terminated || (step == Step::Terminate && st == Status::Terminating) {
            continue;
        }
        let entry = NewAudit::ok(
            ACTOR,
            &format!("node.{}", step.as_str()),
            &row.id,
            json!({"reason": reason}),
            now,
        );
        ctx.store
            .apply_step(&row.id, step, reason, ACTOR, None, entry)?;
    }
    Ok(())
}

/// Terminates instance `row` (and its node): `terminating`, the provider's terminate on a
/// thread of its own (a machine already gone is success), then `terminated`. A failed call
/// leaves it `terminating`, asked again at the next tick.
pub fn terminate_instance(
    ctx: &Ctx,
    pool: Option<&Pool>,
    row: &InstanceRow,
    reason: &str,
) -> Result<(), StoreError> {
    let now = ctx.clock.now_ms();
    let state = row.state()?;
    if state == InstanceState::Terminated || ctx.in_flight.contains(&row.id) {
        return Ok(());
    }
    if state != InstanceState::Terminating {
        ctx.store.update_instance(
            &row.id,
            &InstanceUpdate {
                state: Some(InstanceState::Terminating),
                ..InstanceUpdate::default()
            },
            now,
        )?;
        info!(instance = %row.id, reason, "terminating instance");
    }
    let Some(provider_id) = row.provider_id.clone() else {
        // The provider never answered with a machine: nothing to stop (a late one carries
        // this instance's tag, and the reconciler stops it).
        if let Some(n) = &row.node_id {
            node_gone(ctx, n, reason)?;
        }
        ctx.store.update_instance(
            &row.id,
            &InstanceUpdate {
                state: Some(InstanceState::Terminated),
                ..InstanceUpdate::default()
            },
            now,
        )?;
        return Ok(());
    };
    let provider = pool
        .and_then(|p| {
            p.providers
                .iter()
                .find(|s| s.name == row.provider)
                .map(|s| (p, s))
        })
        .map(|(p, s)| ctx.providers.get(&p.spec.name, s, &ctx.env));
    let provider = match provider {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            ctx.error(&row.pool, e);
            return Ok(());
        }
        None => {
            ctx.error(&row.pool, format!("instance {}: its provider {:?} is not in the pool; terminate the machine {provider_id} by hand", row.id, row.provider));
            return Ok(());
        }
    };
    if !ctx.in_flight.claim(&row.id) {
        return Ok(());
    }
    let (ctx2, id, node, reason) = (
        ctx.clone(),
        row.id.clone(),
        row.node_id.clone(),
        reason.to_string(),
    );
    let spawned = std::thread::Builder::new().name("pool-terminate".into()).spawn(move || {
        let ctx = ctx2;
        let r = calls::call("terminate", ctx.settings.call_timeout, move || match provider.terminate(&provider_id) {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            other => other,
        });
        let now = ctx.clock.now_ms();
        let done = match r {
            Ok(()) => {
                let n = node.as_deref().map_or(Ok(()), |n| node_gone(&ctx, n, &reason));
                n.and_then(|_| ctx.store.update_instance(&id, &InstanceUpdate { state: Some(InstanceState::Terminated), attempt: true, ..InstanceUpdate::default() }, now).map(|_| ()))
            }
            Err(e) => {
                let msg = format!("terminate: {} ({})", e.message, e.kind.as_str());
                warn!(instance = %id, error = %msg, "terminate failed; asked again at the next evaluation");
                if let Ok(row) = ctx.store.instance(&id) {
                    ctx.error(&row.pool, msg.clone());
                }
                ctx.store.update_instance(&id, &InstanceUpdate { error: Some(Some(msg)), attempt: true, ..InstanceUpdate::default() }, now).map(|_| ())
            }
        };
        if let Err(e) = done {
            warn!(instance = %id, error = %e, "cannot record the terminate");
        }
        ctx.in_flight.release(&id);
    });
    if let Err(e) = spawned {
        ctx.in_flight.release(&row.id);
        ctx.error(&row.pool, format!("no thread for a provider call: {e}"));
    }
    Ok(())
}

/// Marks an instance failed with `reason`.
pub fn fail_instance(ctx: &Ctx, id: &str, reason: &str) -> Result<(), StoreError> {
    let now = ctx.clock.now_ms();
    let row = ctx.store.instance(id)?;
    if matches!(
        row.state()?,
        InstanceState::Failed | InstanceState::Terminating | InstanceState::Terminated
    ) {
        return Ok(());
    }
    warn!(instance = %id, reason, "instance failed");
    ctx.store.update_instance(
        id,
        &InstanceUpdate {
            state: Some(InstanceState::Failed),
            error: Some(Some(reason.to_string())),
            ..InstanceUpdate::default()
        },
        now,
    )?;
    Ok(())
}

/// Registration matching: an instance whose pre-created node has been registered by its
/// agent (the join token was spent: the node is no longer `pending`) and scraped (online) is
/// `running`.
pub fn match_registrations(
    ctx: &Ctx,
    instances: &[InstanceRow],
    nodes: &[crate::store::rows::NodeRow],
) -> Result<usize, StoreError> {
    let now = ctx.clock.now_ms();
    let mut n = 0;
    for i in instances {
        if !i.state()?.is_booting() {
            continue;
        }
        let Some(node) = i
            .node_id
            .as_ref()
            .and_then(|id| nodes.iter().find(|r| &r.id == id))
        else {
            continue;
        };
        if matches!(
            node.status()?,
            Status::Pending | Status::Terminating | Status::Terminated
        ) {
            continue;
        }
        // Registered but not scraped yet: still booting (counted toward the size). As
        // `running` it would be an offline node, no capacity, and be provisioned again.
        if node.connectivity != crate::model::Connectivity::Online.as_str() {
            continue;
        }
        ctx.store.update_instance(
            &i.id,
            &InstanceUpdate {
                state: Some(InstanceState::Running),
                error: Some(None),
                ..InstanceUpdate::default()
            },
            now,
        )?;
        info!(instance = %i.id, node = %node.id, "instance's agent registered: running");
        n += 1;
    }
    Ok(n)
}
