//! What the scraper does with a scrape's outcome: the policy's rules on the observation and
//! on each new event, health changes stored (and written again when the store refused
//! them), and rule failures counted and logged at most once a minute per rule.

use std::sync::Mutex;

use gpuwarden_wire::event::HealthEvent;
use tracing::{info, warn};

use super::Scraper;
use crate::clock::parse_rfc3339;
use crate::judge::health::HealthChange;
use crate::judge::policy::{Evaluation, EventInput};

impl Scraper {
    pub(super) fn failures(&self, e: &Evaluation) {
        for f in &e.failures {
            self.metrics
                .rule_failures
                .with_label_values(&[&f.rule])
                .inc();
            // Logged at most once a minute per rule, so a broken rule cannot flood the log.
            if log_allowed(&f.rule, self.clock.now_ms()) {
                warn!(rule = %f.rule, input = %f.input, error = %f.error, "policy rule failed (counted in gpuwarden_cp_rule_failures_total)");
            }
        }
    }

    /// Stores a health change of node `id`; one the store refuses is kept and written again
    /// by housekeeping, so remediation never misses an unhealthy node.
    pub fn store_health(&self, id: &str, c: &HealthChange, now: i64) {
        let actor = c
            .rule
            .as_ref()
            .map_or_else(|| "policy".to_string(), |r| format!("policy:{r}"));
        if let Err(e) = self.store.set_health(id, c.to, &c.reason, &actor, now) {
            self.metrics
                .store_errors
                .with_label_values(&["transition"])
                .inc();
            warn!(node = %id, to = %c.to, error = %e, "storing a health change failed; written again within a second");
            self.fleet.health_unsaved(id, c.clone(), now);
            return;
        }
        info!(node = %id, from = %c.from, to = %c.to, reason = %c.reason, "health changed");
        self.metrics
            .health_changes
            .with_label_values(&[c.to.as_str()])
            .inc();
        if c.to == crate::model::Health::Unhealthy {
            self.links.remediate.notify();
        }
        self.links.notifier.send(
            "health",
            id,
            now,
            serde_json::json!({"health": {"from": c.from, "to": c.to, "reason": c.reason, "rule": c.rule}}),
        );
    }

    /// Writes again the health changes the store refused.
    pub fn retry_unsaved(&self) {
        for (id, c, at) in self.fleet.take_unsaved_health() {
            self.store_health(&id, &c, at);
        }
    }

    /// Runs the gpu and node rules on the node's latest observation.
    pub(super) fn judge_observation(&self, id: &str, now: i64) {
        let Some((Some(obs), prev, node, memo)) = self.fleet.policy_input(id) else {
            return;
        };
        let e = crate::judge::policy::current(&self.policy).eval_observation_memo(
            &obs,
            prev.as_ref().map(|(p, dt)| (&**p, *dt)),
            &node,
            &mut memo.lock().unwrap_or_else(|p| p.into_inner()),
        );
        self.failures(&e);
        if let Some(c) = self.fleet.observed_health(id, &e.matches, now) {
            self.store_health(id, &c, now);
        }
    }

    /// Runs the event rules on one health event of the node.
    pub(super) fn judge_event(&self, id: &str, ev: &HealthEvent, now: i64) {
        let Some((_, _, node, _)) = self.fleet.policy_input(id) else {
            return;
        };
        let input = EventInput::from_event(ev);
        let e = crate::judge::policy::current(&self.policy).eval_event(&input, &node);
        self.failures(&e);
        let time = parse_rfc3339(&ev.time).unwrap_or(now);
        if let Some(c) = self.fleet.event_health(id, &e.matches, time, now) {
            self.store_health(id, &c, now);
        }
    }

    /// Node rules for the nodes that are not scraped now (offline), and degraded verdicts
    /// that clear with time.
    pub fn judge_idle(&self, now: i64) {
        let policy = crate::judge::policy::current(&self.policy);
        for (id, node) in self.fleet.offline() {
            let e = policy.eval_node(&node);
            self.failures(&e);
            if let Some(c) = self.fleet.unobserved_health(&id, &e.matches, now) {
                self.store_health(&id, &c, now);
            }
        }
        for (id, c) in self.fleet.settle_health(now) {
            self.store_health(&id, &c, now);
        }
    }
}

/// Whether a failure of `rule` may be logged now (once a minute per rule).
fn log_allowed(rule: &str, now: i64) -> bool {
    static LAST: std::sync::OnceLock<Mutex<std::collections::HashMap<String, i64>>> =
        std::sync::OnceLock::new();
    let mut last = LAST
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match last.get(rule) {
        Some(t) if now - t < 60_000 => false,
        _ => {
            last.insert(rule.to_string(), now);
            true
        }
    }
}
