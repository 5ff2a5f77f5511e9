//! What a pool's evaluation leaves in the database: its runtime (last target, cooldown
//! starts, provider selection state, status and last error) when it changed, and its
//! decision when it differs from the last one recorded (a hold repeated every tick, or a
//! cooldown's seconds counting down, is one decision, not one per tick).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::pool::decide::Decision;
use crate::store::pool_rows::{NewDecision, PoolRow, PoolRuntime};
use crate::store::StoreError;

use super::context::Ctx;

/// The last decision recorded per pool: target, reasons (numbers blanked), counts and
/// actions as stored.
pub(super) type Recorded = HashMap<String, (i32, String, String, String)>;

/// `text` with every run of digits as `#`: reasons that differ only in a count-down match.
fn blank_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// Stores `row`'s runtime after an evaluation (`d`, or `failure` when there was none) and
/// its decision; an idle pool's tick writes nothing.
pub(super) fn save(
    ctx: &Ctx,
    recorded: &Mutex<Recorded>,
    row: &PoolRow,
    d: Option<&Decision>,
    failure: Option<String>,
) -> Result<(), StoreError> {
    let now = ctx.clock.now_ms();
    let errors = ctx
        .errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&row.name)
        .unwrap_or_default();
    // A provider still backing off keeps its error in the status until it succeeds.
    let backing_off = ctx.with_select(&row.name, |s| {
        s.providers
            .values()
            .filter(|h| h.retry_at_ms > now)
            .find_map(|h| h.last_error.clone())
    });
    let last_error = failure.or_else(|| errors.last().cloned()).or(backing_off);
    let select_state = ctx.with_select(&row.name, |s| {
        serde_json::to_string(s).unwrap_or_else(|_| "{}".into())
    });
    let rt = PoolRuntime {
        last_target: d
            .map(|d| i32::try_from(d.target).unwrap_or(i32::MAX))
            .or(row.last_target),
        last_scale_up: if d.is_some_and(|d| d.starts_scale_up) {
            Some(now)
        } else {
            row.last_scale_up
        },
        last_scale_down: if d.is_some_and(|d| d.starts_scale_down) {
            Some(now)
        } else {
            row.last_scale_down
        },
        select_state,
        status: if last_error.is_some() { "error" } else { "ok" }.into(),
        last_error,
        updated_at: now,
    };
    // An idle pool's tick writes nothing: the runtime only when it changed, a decision
    // only when it differs from the last one recorded.
    let same_runtime = rt.last_target == row.last_target
        && rt.last_scale_up == row.last_scale_up
        && rt.last_scale_down == row.last_scale_down
        && rt.select_state == row.select_state
        && rt.status == row.status
        && rt.last_error == row.last_error;
    if !same_runtime {
        ctx.store.save_pool_runtime(&row.name, &rt)?;
    }
    if let Some(d) = d {
        let text = |v: serde_json::Result<String>| v.unwrap_or_else(|_| "null".into());
        let new = NewDecision {
            pool: row.name.clone(),
            time: now,
            target: i32::try_from(d.target).unwrap_or(i32::MAX),
            reasons: text(serde_json::to_string(&d.reasons)),
            actions: text(serde_json::to_string(&d.actions)),
            counts: text(serde_json::to_string(&d.counts)),
        };
        let key = (
            new.target,
            blank_numbers(&new.reasons),
            new.counts.clone(),
            new.actions.clone(),
        );
        let mut last = recorded.lock().unwrap_or_else(|p| p.into_inner());
        if last.get(&row.name) != Some(&key) {
            ctx.store
                .record_decision(&new, ctx.settings.keep_decisions)?;
            last.insert(row.name.clone(), key);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::blank_numbers;

    #[test]
    fn reasons_that_differ_only_in_numbers_are_the_same_decision() {
        assert_eq!(
            blank_numbers(r#"["scale-down cooldown: 27 s left"]"#),
            blank_numbers(r#"["scale-down cooldown: 3 s left"]"#)
        );
        assert_ne!(blank_numbers("hold a"), blank_numbers("hold b"));
    }
}
