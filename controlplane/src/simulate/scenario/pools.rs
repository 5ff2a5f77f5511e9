//! `[[pools]]` and `[[demand]]` of a scenario: pools the control plane manages, whose
//! machines the `fake` provider makes into simulated agents of the fleet (autoscaling,
//! replacement and the remediation budget run as in production), and the pending jobs a
//! scheduler would push over time.

use std::time::Duration;

use serde::Deserialize;

use super::items::{eight, h100, one_u32, MAX_NODES};
use crate::model::pool::PoolSpec;

/// `[[pools]]`: a managed pool. Besides the keys below it takes every key of the control
/// plane's `[[pools]]` (`min_nodes`, `max_nodes`, `auto_replace`, `[pools.autoscaler]`,
/// `[pools.budget]`, …) except `provider`, `providers` and `strategy`: its provider is
/// `fake`, linked to the simulation's fleet.
#[derive(Debug, Clone, Deserialize)]
pub struct SimPool {
    /// The pool's name (also its nodes' names' start).
    pub name: String,
    /// GPUs per node (1 to 64).
    #[serde(default = "eight")]
    pub gpus: u32,
    /// GPU model.
    #[serde(default = "h100")]
    pub model: String,
    /// Racks its machines are spread over, round robin (label `rack`: `r0`, …).
    #[serde(default = "one_u32")]
    pub racks: u32,
    /// Zones the racks are spread over (label `zone`): a number; a list of names is the
    /// control plane's `zones` key (the provider's zones, in order of preference), and the
    /// racks are then in one zone.
    #[serde(default)]
    pub zones: Zones,
    /// The rest: the pool spec's keys, as `POST /v1/pools` takes them.
    #[serde(flatten)]
    pub spec: toml::Table,
}

/// `zones` of a `[[pools]]` entry: a count (the simulator's) or names (the pool spec's).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Zones {
    /// Zones the racks are spread over.
    Count(u32),
    /// The pool spec's `zones`.
    Names(Vec<String>),
}

impl Default for Zones {
    fn default() -> Self {
        Zones::Count(1)
    }
}

impl SimPool {
    /// Zones the racks are spread over (1 when `zones` names the provider's).
    pub fn zone_count(&self) -> u32 {
        match self.zones {
            Zones::Count(n) => n,
            Zones::Names(_) => 1,
        }
    }
}

/// Keys the simulator sets itself.
const OURS: &[&str] = &["provider", "providers", "strategy"];

impl SimPool {
    /// The pool as `POST /v1/pools` takes it, its provider `fake` on the fleet's control API
    /// at `fleet_url`.
    pub fn body(&self, fleet_url: &str) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.spec).unwrap_or_default();
        v["name"] = self.name.clone().into();
        if let Zones::Names(z) = &self.zones {
            v["zones"] = serde_json::json!(z);
        }
        v["providers"] = serde_json::json!([{
            "name": "sim", "kind": "fake",
            "params": {"fleet": fleet_url, "prefix": self.name, "gpus": self.gpus,
                       "model": self.model, "racks": self.racks, "zones": self.zone_count()},
        }]);
        v
    }

    /// The pool's spec as the control plane reads it (for checks and sizes).
    pub fn spec(&self) -> Result<PoolSpec, String> {
        serde_json::from_value(self.body("http://127.0.0.1:1")).map_err(|e| e.to_string())
    }

    /// The spec read leniently for its checks: keys the simulator sets and unknown keys
    /// left out (each a problem), so the rest is still checked by the pool rules.
    fn lenient(&self) -> (Option<PoolSpec>, Vec<String>) {
        let mut problems = Vec::new();
        let mut body = self.body("http://127.0.0.1:1");
        if let Some(m) = body.as_object_mut() {
            for k in OURS.iter().filter(|k| **k != "providers") {
                m.remove(*k);
            }
        }
        // A key that is unknown or of the wrong shape is named and left out, then the spec is
        // read again (a few times), so that every such key is named at once.
        let mut dropped: Vec<String> = Vec::new();
        for _ in 0..16 {
            let e = match serde_path_to_error::deserialize::<_, PoolSpec>(body.clone()) {
                Ok(spec) => return (Some(spec), problems),
                Err(e) => e,
            };
            let text = e.inner().to_string();
            let unknown = text
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next())
                .map(str::to_string);
            let path = e.path().to_string();
            let top = path.split(['.', '[']).next().unwrap_or("").to_string();
            if let Some(k) = unknown.filter(|k| body.get(k).is_some()) {
                problems.push(format!(
                    "{k}: unknown key (a pool's keys are in docs/POOLS.md; here also gpus, model, racks, zones)"
                ));
                dropped.push(k);
            } else if !top.is_empty() && top != "." && body.get(&top).is_some() {
                problems.push(format!("{path}: {text}"));
                dropped.push(top);
            } else {
                // A key left out above is now missing: already named.
                if !dropped.iter().any(|k| text.contains(&format!("`{k}`"))) {
                    problems.push(text);
                }
                return (None, problems);
            }
            if let (Some(m), Some(k)) = (body.as_object_mut(), dropped.last()) {
                m.remove(k);
            }
        }
        (None, problems)
    }

    /// Every problem, each with its place (`at` is `pools[0]`).
    pub(super) fn problems(&self, at: &str) -> Vec<String> {
        let mut p = Vec::new();
        for k in OURS {
            if self.spec.contains_key(*k) {
                p.push(format!(
                    "{at}.{k}: set by the simulator (the fake provider on the fleet)"
                ));
            }
        }
        if !(1..=64).contains(&self.gpus) {
            p.push(format!("{at}.gpus: 1 to 64, not {}", self.gpus));
        }
        if self.racks == 0 || self.zone_count() == 0 || self.zone_count() > self.racks {
            p.push(format!(
                "{at}: racks and zones at least 1, and no more zones than racks"
            ));
        }
        let (spec, read) = self.lenient();
        p.extend(read.into_iter().map(|e| {
            if e.contains(": ") && !e.starts_with("invalid") {
                format!("{at}.{e}")
            } else {
                format!("{at}: {e}")
            }
        }));
        if let Some(spec) = spec {
            for e in spec
                .validate()
                .into_iter()
                .chain(crate::pool::rules::param_problems(&spec))
            {
                p.push(format!("{at}.{}: {}", e.field, e.message));
            }
            if spec.max_nodes > MAX_NODES {
                p.push(format!("{at}.max_nodes: at most {MAX_NODES}"));
            }
        }
        p
    }

    /// `min_nodes`, the size the simulation waits for before its timeline starts.
    pub fn min_nodes(&self) -> u32 {
        self.spec().map_or(0, |s| s.min_nodes)
    }
}

/// `[[demand]]`: pending jobs pushed for a pool at a time (`PUT /v1/pools/{name}/demand`),
/// what a `queue` autoscaler sizes the pool by.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Demand {
    /// When, after the timeline starts.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// The pool (one of `[[pools]]`).
    pub pool: String,
    /// Pending jobs.
    pub pending_jobs: u64,
}
