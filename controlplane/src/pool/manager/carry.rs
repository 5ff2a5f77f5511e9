//! Carrying out a decision's actions, each idempotent: a replayed action finds its work
//! done (an instance recorded, a node already cordoned, a call under way) and does nothing.
//!
//! Provider calls run on threads of their own, outside any lock, under the call timeout;
//! their outcome is written when it comes (the next tick sees it). Node steps go through
//! the command queue like remediation's: one transaction stores the transition, the
//! command for the agent and the audit entry, and the dispatcher delivers it.

use serde_json::json;
use tracing::{info, warn};

use crate::model::lifecycle::Step;
use crate::model::pool::InstanceState;
use crate::model::{CommandKind, CommandState};
use crate::pool::compile::Pool;
use crate::pool::provider::{ErrorKind, ProvisionRequest};
use crate::pool::select::Backoff;
use crate::store::pool_rows::{InstanceNode, InstanceRow, InstanceUpdate, NewInstance};
use crate::store::rows::{CommandRow, NewAudit};
use crate::store::StoreError;
use crate::token::{self, TokenKind};

use super::calls;
use super::context::Ctx;

/// Who the pool manager's commands, transitions and audit entries are by.
pub const ACTOR: &str = "pool-manager";

fn node_name(pool: &str, id: &str) -> String {
    if id.len() <= 63 {
        id.to_string()
    } else {
        let tail = &id[id.len() - 20..];
        format!("{}-{tail}", &pool[..pool.len().min(42)])
    }
}

/// Records instance `id` of `pool` with its pre-created node and join token, then asks the
/// chosen provider for it on a thread of its own. A recorded id is not asked again here
/// (the reconciler resumes an instance left in `provisioning`).
pub fn provision(ctx: &Ctx, pool: &Pool, id: &str, now: i64) -> Result<(), StoreError> {
    let name = &pool.spec.name;
    let choice = ctx.with_select(name, |s| s.choose(&pool.providers, pool.spec.strategy, now));
    let choice = match choice {
        Ok(c) => c,
        // The status shows the backing-off provider's own last error (`save`), the cause.
        Err(crate::pool::select::NoProvider::BackingOff { .. }) => return Ok(()),
        Err(e) => {
            ctx.error(name, e.to_string());
            return Ok(());
        }
    };
    let join = token::issue(TokenKind::Node).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let node_id = token::random_id("node-").map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let new = NewInstance {
        id: id.to_string(),
        pool: name.clone(),
        provider: choice.name.clone(),
        node: Some(InstanceNode {
            id: node_id,
            name: node_name(name, id),
            labels: pool.spec.labels.clone(),
            token_digest: join.digest.clone(),
            token_expires: Some(now.saturating_add(pool.registration_timeout_ms)),
        }),
        now,
    };
    let (row, created) = ctx.store.create_instance(&new)?;
    if !created {
        return Ok(());
    }
    info!(pool = %name, instance = %id, provider = %choice.name, reason = %choice.reason, "provisioning");
    start_provision(ctx, pool, &row, join.secret);
    Ok(())
}

/// The request for `row`'s machine.
pub fn request(
    ctx: &Ctx,
    pool: &Pool,
    row: &InstanceRow,
    join_token: String,
    node_name: String,
) -> ProvisionRequest {
    let spec = &pool.spec;
    ProvisionRequest {
        instance_id: row.id.clone(),
        pool: spec.name.clone(),
        node_name,
        instance_type: spec.instance_type.clone().unwrap_or_default(),
        region: spec.region.clone().unwrap_or_default(),
        zone: spec.zones.first().cloned(),
        labels: spec.labels.clone(),
        join_token,
        control_plane_url: ctx.env.control_plane_url.clone(),
    }
}

/// Asks `row`'s provider for its machine on a thread of its own (nothing when a call for
/// it is under way). Success: `registering` with the provider's id. A failure whose outcome
/// is unknown (timeout, unavailable) leaves it `provisioning` for the reconciler to find or
/// ask again; any other fails it (the next evaluation replaces it). The provider backs off.
pub fn start_provision(ctx: &Ctx, pool: &Pool, row: &InstanceRow, join_token: String) {
    let Some(spec) = pool
        .providers
        .iter()
        .find(|p| p.name == row.provider)
        .cloned()
    else {
        ctx.error(
            &pool.spec.name,
            format!(
                "instance {}: provider {:?} is no longer in the pool",
                row.id, row.provider
            ),
        );
        return;
    };
    let provider = match ctx.providers.get(&pool.spec.name, &spec, &ctx.env) {
        Ok(p) => p,
        Err(e) => {
            ctx.error(&pool.spec.name, e);
            return;
        }
    };
    if !ctx.in_flight.claim(&row.id) {
        return;
    }
    let name = ctx
        .store
        .node(row.node_id.as_deref().unwrap_or_default())
        .map(|n| n.name)
        .unwrap_or_else(|_| node_name(&pool.spec.name, &row.id));
    let req = request(ctx, pool, row, join_token, name);
    let (ctx, id, pool_name, prov) = (
        ctx.clone(),
        row.id.clone(),
        pool.spec.name.clone(),
        spec.name,
    );
    let spawned = std::thread::Builder::new()
        .name("pool-provision".into())
        .spawn({
            let ctx = ctx.clone();
            let id = id.clone();
            move || {
                let timeout = ctx.settings.call_timeout;
                let r = calls::call("provision", timeout, move || provider.provision(&req));
                let now = ctx.clock.now_ms();
                let update = match r {
                    Ok(m) => {
                        ctx.with_select(&pool_name, |s| {
                            s.succeeded(&prov, now);
                            s.capacity(&prov, true);
                        });
                        info!(pool = %pool_name, instance = %id, provider_id = %m.provider_id, "provisioned; waiting for its agent");
                        InstanceUpdate {
                            state: Some(InstanceState::Registering),
                            provider_id: Some(m.provider_id),
                            error: Some(None),
                            attempt: true,
                            ..InstanceUpdate::default()
                        }
                    }
                    Err(e) => {
                        let msg = format!("provider {prov}: {} ({})", e.message, e.kind.as_str());
                        warn!(pool = %pool_name, instance = %id, error = %msg, "provision failed");
                        let backoff = Backoff::default();
                        ctx.with_select(&pool_name, |s| {
                            s.failed(&prov, &msg, now, backoff);
                            if e.kind == ErrorKind::Capacity {
                                s.capacity(&prov, false);
                            }
                            if let (Some(after), Some(h)) = (e.retry_after, s.providers.get_mut(&prov)) {
                                let at = now.saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
                                h.retry_at_ms = h.retry_at_ms.max(at);
                            }
                        });
                        ctx.error(&pool_name, msg.clone());
                        let unknown = matches!(e.kind, ErrorKind::Timeout | ErrorKind::Unavailable);
                        InstanceUpdate {
                            state: (!unknown).then_some(InstanceState::Failed),
                            error: Some(Some(msg)),
                            attempt: true,
                            ..InstanceUpdate::default()
                        }
                    }
                };
                if let Err(e) = ctx.store.update_instance(&id, &update, now) {
                    warn!(instance = %id, error = %e, "cannot record the provider's answer; the reconciler will find the machine");
                }
                ctx.in_flight.release(&id);
            }
        });
    if let Err(e) = spawned {
        ctx.in_flight.release(&id);
        ctx.error(
            &pool.spec.name,
            format!("no thread for a provider call: {e}"),
        );
    }
}

/// Cordons or drains a node through the command queue (nothing while a lifecycle command
/// of the node is unfinished, or when its status makes the step a no-op).
pub fn node_step(
    ctx: &Ctx,
    node: &str,
    step: Step,
    reason: &str,
    drain_timeout_ms: i64,
) -> Result<bool, StoreError> {
    let unfinished = ctx.store.commands(node, 10)?.into_iter().any(|c| {
        c.kind != CommandKind::RunDiagnostic.as_str()
            && (c.state == CommandState::Pending.as_str()
                || c.state == CommandState::Running.as_str())
    });
    if unfinished {
        return Ok(false);
    }
    let row = ctx.store.node(node)?;
    let from = row.status()?;
    if crate::model::lifecycle::next(from, step).is_ok_and(|to| to == from) {
        return Ok(false);
    }
    let kind = match step {
        Step::Cordon => CommandKind::Cordon,
        Step::Drain => CommandKind::Drain,
        _ => CommandKind::Terminate,
    };
    let now = ctx.clock.now_ms();
    let params = match kind {
        CommandKind::Drain => {
            json!({"reason": reason, "timeout": humantime::format_duration(std::time::Duration::from_millis(drain_timeout_ms.max(1000) as u64)).to_string()})
        }
        _ => json!({"reason": reason}),
    };
    let id = token::random_id("cmd-").map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let cmd = CommandRow::pending(id.clone(), node, kind, &params, ACTOR, now);
    let entry = NewAudit::ok(
        ACTOR,
        &format!("node.{}", step.as_str()),
        node,
        json!({"reason": reason, "command": id}),
        now,
    );
    ctx.store
        .apply_step(node, step, reason, ACTOR, Some(cmd), entry)?;
    info!(node, step = step.as_str(), command = %id, reason, "pool step");
    ctx.notifier.send("remediation", node, now, json!({"remediation": {"step": step.as_str(), "command": id, "reason": reason, "by": ACTOR}}));
    ctx.dispatch.notify();
    Ok(true)
}
