//! A node's health from the verdicts of its policy: the worst matched rule wins; `unhealthy`
//! sticks until an operator clears it; `degraded` clears once its condition has stopped
//! holding for `degraded_clear_after`; state rules with a `for` count only once their
//! condition has held that long. Pure logic over Unix-millisecond times, so tests drive the
//! clock by hand.
//!
//! Being built (step 4): the store, the API (`clear-health`) and remediation come next.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::judge::policy::{Match, Verdict};
use crate::model::Health;

/// Settings of the state machine.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// How long a degraded condition must have stopped before the node is healthy again.
    pub degraded_clear_after: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            degraded_clear_after: Duration::from_secs(300),
        }
    }
}

/// One rule's finding on one GPU (or the node).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The rule.
    pub rule: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// The GPU.
    pub gpu: Option<u32>,
    /// What matched.
    pub detail: String,
    /// When the condition started to hold (Unix ms).
    pub since: i64,
    /// When it was last seen holding.
    pub last_seen: i64,
    /// How long it must hold to count.
    pub hold_ms: i64,
    /// It holds in the latest evaluation (always false for events, which happen once).
    pub holding: bool,
}

impl Finding {
    fn counts(&self, now: i64) -> bool {
        now - self.since >= self.hold_ms
    }
}

/// A change of a node's health, to store with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthChange {
    /// Before.
    pub from: Health,
    /// After.
    pub to: Health,
    /// Why: the rule and what matched, or who cleared it.
    pub reason: String,
    /// The rule that decided, when one did.
    pub rule: Option<String>,
}

/// The health of one node.
#[derive(Debug, Clone)]
pub struct NodeHealth {
    settings: HealthSettings,
    health: Health,
    /// State findings by (rule, gpu), and event findings by (rule, gpu, time).
    findings: BTreeMap<(String, Option<u32>, i64), Finding>,
    /// The finding that made the node unhealthy, kept until cleared.
    sticky: Option<Finding>,
    /// Whether the node has had a successful observation: until then, no verdict is
    /// `unknown` (absence of data), never `healthy`.
    observed: bool,
}

fn key(m: &Match, event_time: Option<i64>) -> (String, Option<u32>, i64) {
    (m.rule.clone(), m.gpu, event_time.unwrap_or(0))
}

impl NodeHealth {
    /// A node not evaluated yet (`unknown`).
    pub fn new(settings: HealthSettings) -> Self {
        Self {
            settings,
            health: Health::Unknown,
            findings: BTreeMap::new(),
            sticky: None,
            observed: false,
        }
    }

    /// A node whose stored health is `stored` (after a control-plane restart): `unhealthy`
    /// stays sticky, `degraded` clears unless its rule matches again, the rest start over.
    pub fn restore(settings: HealthSettings, stored: Health, now: i64) -> Self {
        let mut n = Self::new(settings);
        let kept = |verdict| Finding {
            rule: "(stored before restart)".into(),
            verdict,
            gpu: None,
            detail: "health kept across a control-plane restart".into(),
            since: now,
            last_seen: now,
            hold_ms: 0,
            holding: false,
        };
        match stored {
            Health::Unhealthy => n.sticky = Some(kept(Verdict::Unhealthy)),
            Health::Degraded => {
                n.findings.insert(
                    ("(stored)".into(), None, now.max(1)),
                    kept(Verdict::Degraded),
                );
            }
            _ => {}
        }
        n.health = stored;
        // A stored verdict was made from data; `unknown` waits for the first observation.
        n.observed = stored != Health::Unknown;
        n
    }

    /// The current health.
    pub fn health(&self) -> Health {
        self.health
    }

    /// The finding that keeps the node unhealthy.
    pub fn sticky(&self) -> Option<&Finding> {
        self.sticky.as_ref()
    }

    /// Applies the state-rule matches of a successful observation at `now`: conditions that
    /// no longer match stop holding.
    pub fn observe(&mut self, matches: &[Match], now: i64) -> Option<HealthChange> {
        self.observed = true;
        self.judge(matches, now)
    }

    /// Applies the matches of node rules run without an observation (an offline node): they
    /// can flag the node, but cannot make a never-observed node `healthy`.
    pub fn judge_unobserved(&mut self, matches: &[Match], now: i64) -> Option<HealthChange> {
        self.judge(matches, now)
    }

    fn judge(&mut self, matches: &[Match], now: i64) -> Option<HealthChange> {
        let seen: Vec<_> = matches.iter().map(|m| key(m, None)).collect();
        for (k, f) in self.findings.iter_mut() {
            if k.2 == 0 && f.holding && !seen.contains(k) {
                f.holding = false;
                f.last_seen = now;
            }
        }
        for m in matches {
            let hold_ms = m
                .hold
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let f = self
                .findings
                .entry(key(m, None))
                .or_insert_with(|| Finding {
                    rule: m.rule.clone(),
                    verdict: m.verdict,
                    gpu: m.gpu,
                    detail: m.detail.clone(),
                    since: now,
                    last_seen: now,
                    hold_ms,
                    holding: true,
                });
            if !f.holding {
                // It had stopped: a new episode starts now.
                f.since = now;
                f.holding = true;
            }
            f.detail = m.detail.clone();
            f.last_seen = now;
        }
        self.settle(now)
    }

    /// Applies the matches of one health event that happened at `time`.
    pub fn event(&mut self, matches: &[Match], time: i64, now: i64) -> Option<HealthChange> {
        // An event stamped in the future (a node's clock ahead of ours) counts from now.
        let at = time.min(now);
        for m in matches {
            self.findings.insert(
                key(m, Some(time.max(1))),
                Finding {
                    rule: m.rule.clone(),
                    verdict: m.verdict,
                    gpu: m.gpu,
                    detail: m.detail.clone(),
                    since: at,
                    last_seen: at,
                    hold_ms: 0,
                    holding: false,
                },
            );
        }
        self.settle(now)
    }

    /// An operator clears the node's health: the sticky verdict goes, and so do findings
    /// that no longer hold; the health is recomputed from what still holds.
    pub fn clear(&mut self, who: &str, now: i64) -> Option<HealthChange> {
        self.sticky = None;
        self.findings.retain(|_, f| f.holding);
        self.settle(now).map(|mut c| {
            // The node's verdicts were just forgotten, not outlived: say so, not that no rule
            // has matched for the clearing time.
            let why = match (&c.rule, c.to) {
                (None, Health::Healthy) => "no rule holds now".to_string(),
                _ => std::mem::take(&mut c.reason),
            };
            c.reason = format!("cleared by {who}; {why}");
            c
        })
    }

    /// Recomputes the health at `now` (also called on a timer, so degraded clears on time).
    pub fn settle(&mut self, now: i64) -> Option<HealthChange> {
        let clear_ms =
            i64::try_from(self.settings.degraded_clear_after.as_millis()).unwrap_or(i64::MAX);
        // Findings past their clearing time are forgotten.
        self.findings
            .retain(|_, f| f.holding || now - f.last_seen < clear_ms);
        // A finding counts once it has held for its `for`; one that stopped counts (until it
        // is forgotten) only if it had held long enough.
        let counting: Vec<&Finding> = self
            .findings
            .values()
            .filter(|f| {
                f.counts(now) && (f.holding || f.hold_ms == 0 || f.last_seen - f.since >= f.hold_ms)
            })
            .collect();
        if self.sticky.is_none() {
            if let Some(f) = counting.iter().find(|f| f.verdict == Verdict::Unhealthy) {
                self.sticky = Some((*f).clone());
            }
        }
        let (to, why) = if let Some(f) = &self.sticky {
            (Health::Unhealthy, Some(f.clone()))
        } else if let Some(f) = counting.iter().find(|f| f.verdict == Verdict::Degraded) {
            (Health::Degraded, Some((*f).clone()))
        } else if self.observed {
            (Health::Healthy, None)
        } else {
            (Health::Unknown, None)
        };
        if to == self.health {
            return None;
        }
        let from = self.health;
        self.health = to;
        let reason = match &why {
            Some(f) => format!("rule {}: {}", f.rule, f.detail),
            None if to == Health::Unknown => "no successful observation yet".to_string(),
            None if from == Health::Unknown => "no rule matches".to_string(),
            None => format!(
                "no rule has matched for {}",
                humantime::format_duration(self.settings.degraded_clear_after)
            ),
        };
        Some(HealthChange {
            from,
            to,
            reason,
            rule: why.map(|f| f.rule),
        })
    }
}

#[cfg(test)]
mod tests;
