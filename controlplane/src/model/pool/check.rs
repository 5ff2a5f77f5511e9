//! [`PoolSpec::validate`]: every problem of a pool at once, each naming its field path
//! (`providers[1].weight`, `autoscaler.windows[0].start`), so an operator fixes them all in
//! one round.

use std::collections::BTreeSet;
use std::time::Duration;

use thiserror::Error;

use super::{AutoscalerSpec, DurationText, PoolSpec, ProviderSpec, ScheduledSpec, PROVIDER_KINDS};
use crate::validate;

mod caps;
use caps::{clip, count};
pub use caps::{MAX_AUTOSCALERS, MAX_CHILDREN, MAX_PARAMS_BYTES};
pub use caps::{MAX_PROVIDERS, MAX_WINDOWS, MAX_ZONES};

/// Most nodes a pool may have: bounds what the pool manager holds per pool.
pub const MAX_POOL_NODES: u32 = 10_000;

/// How deeply autoscalers may nest (composite and scheduled fallbacks).
const MAX_DEPTH: usize = 4;

/// One problem of a pool spec.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct PoolError {
    /// Path of the field (`min_nodes`, `providers[0].kind`, `autoscaler.step`).
    pub field: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

struct Problems(Vec<PoolError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(PoolError {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// `plugins`: each pinned to a digest and checked as `PUT /v1/pools/{name}/plugins` checks
/// it; names unique; at most [`gpuwarden_wire::plugin_sync::MAX_PLUGINS`].
fn plugins(out: &mut Problems, p: &PoolSpec) {
    let Some(list) = &p.plugins else { return };
    let max = gpuwarden_wire::plugin_sync::MAX_PLUGINS;
    if too_long(out, "plugins", list.len(), max) {
        return;
    }
    let mut seen = BTreeSet::new();
    for (i, a) in list.iter().enumerate() {
        if let Err(problems) = a.check(true) {
            for (f, m) in problems {
                out.add(format!("plugins[{i}].{f}"), m);
            }
        }
        if !seen.insert(a.name.as_str()) {
            out.add(
                format!("plugins[{i}].name"),
                format!("{:?} is listed twice", a.name),
            );
        }
    }
}

/// Lists (and maps) of a pool spec are bounded, so that one pool cannot make the control
/// plane hold megabytes: a list longer than its cap is one problem (its entries are not
/// checked one by one).
fn too_long(out: &mut Problems, field: &str, len: usize, max: usize) -> bool {
    if len > max {
        out.add(field, format!("has {len} entries; at most {max}"));
        true
    } else {
        false
    }
}

impl PoolSpec {
    /// Every problem of this spec, each naming its field; empty when it is valid.
    pub fn validate(&self) -> Vec<PoolError> {
        problems(self)
    }
}

fn problems(p: &PoolSpec) -> Vec<PoolError> {
    let mut out = Problems(Vec::new());
    if let Err(e) = validate::name(&p.name) {
        out.add("name", e);
    }
    providers(p, &mut out);
    if p.min_nodes > p.max_nodes {
        out.add(
            "min_nodes",
            format!("{} is more than max_nodes ({})", p.min_nodes, p.max_nodes),
        );
    }
    if p.max_nodes > MAX_POOL_NODES {
        out.add("max_nodes", format!("must be at most {MAX_POOL_NODES}"));
    }
    for (field, text) in [("instance_type", &p.instance_type), ("region", &p.region)] {
        if let Some(Err(e)) = text.as_deref().map(short_text) {
            out.add(field, e);
        }
    }
    let mut seen = BTreeSet::new();
    let zones = if too_long(&mut out, "zones", p.zones.len(), MAX_ZONES) {
        &[][..]
    } else {
        &p.zones[..]
    };
    for (i, z) in zones.iter().enumerate() {
        if let Err(e) = short_text(z) {
            out.add(format!("zones[{i}]"), e);
        } else if !seen.insert(z) {
            out.add(format!("zones[{i}]"), format!("{z:?} is listed twice"));
        }
    }
    labels(&mut out, p);
    plugins(&mut out, p);
    let day = Duration::from_secs(86_400);
    duration(
        &mut out,
        "scale_up_cooldown",
        &p.scale_up_cooldown,
        Duration::ZERO,
        day,
    );
    duration(
        &mut out,
        "scale_down_cooldown",
        &p.scale_down_cooldown,
        Duration::ZERO,
        day,
    );
    let (second, week) = (Duration::from_secs(1), Duration::from_secs(7 * 86_400));
    duration(
        &mut out,
        "registration_timeout",
        &p.registration_timeout,
        second,
        day,
    );
    duration(
        &mut out,
        "remediation.drain_timeout",
        &p.remediation.drain_timeout,
        second,
        week,
    );
    let b = &p.budget;
    if !(b.max_percent > 0.0 && b.max_percent <= 100.0) {
        out.add("budget.max_percent", "must be more than 0 and at most 100");
    }
    if let Some(a) = &p.autoscaler {
        let n = count(a);
        if n > MAX_AUTOSCALERS {
            out.add(
                "autoscaler",
                format!("{n} autoscalers in all; at most {MAX_AUTOSCALERS}"),
            );
        } else {
            autoscaler(&mut out, "autoscaler", a, p, 1);
        }
    }
    out.0
}

/// Every bad label name and value, each named `labels.NAME`.
fn labels(out: &mut Problems, p: &PoolSpec) {
    if too_long(out, "labels", p.labels.len(), validate::MAX_LABELS) {
        return;
    }
    for (k, v) in &p.labels {
        // The name as the field's path: clipped, so a huge bad name is not echoed whole.
        let at = format!("labels.{}", clip(k));
        // A name longer than 64 bytes is invalid clipped too (the mark is not ASCII).
        if let Err(e) = validate::label_name(&clip(k)) {
            out.add(at.clone(), e);
        }
        if let Err(e) = validate::label_value(&clip(k), v) {
            out.add(at, e);
        }
    }
}

fn providers(p: &PoolSpec, out: &mut Problems) {
    match (&p.provider, p.providers.is_empty()) {
        (Some(_), false) => out.add("provider", "give `provider` or `providers`, not both"),
        (None, true) => out.add(
            "providers",
            format!(
                "a pool needs a provider: `provider` (one of {}) or a `providers` list",
                PROVIDER_KINDS.join(", ")
            ),
        ),
        (Some(kind), true) => {
            if !PROVIDER_KINDS.contains(&kind.as_str()) {
                out.add("provider", unknown_kind(kind));
            }
        }
        (None, false) => {}
    }
    if too_long(out, "providers", p.providers.len(), MAX_PROVIDERS) {
        return;
    }
    let mut names = BTreeSet::new();
    for (i, pr) in p.providers.iter().enumerate() {
        provider(out, i, pr);
        if !names.insert(&pr.name) {
            out.add(
                format!("providers[{i}].name"),
                format!("{:?} is used by another provider of this pool", pr.name),
            );
        }
    }
}

fn provider(out: &mut Problems, i: usize, pr: &ProviderSpec) {
    let at = |f: &str| format!("providers[{i}].{f}");
    if let Err(e) = validate::name(&pr.name) {
        out.add(at("name"), e);
    }
    if !PROVIDER_KINDS.contains(&pr.kind.as_str()) {
        out.add(at("kind"), unknown_kind(&pr.kind));
    }
    if !(1..=1000).contains(&pr.weight) {
        out.add(at("weight"), "must be between 1 and 1000");
    }
    if pr.priority > 1000 {
        out.add(at("priority"), "must be between 0 and 1000");
    }
    if pr
        .cost_per_hour
        .is_some_and(|c| !(c.is_finite() && c >= 0.0))
    {
        out.add(at("cost_per_hour"), "must be a price of 0 or more");
    }
    let bytes = serde_json::to_string(&pr.params).map_or(usize::MAX, |j| j.len());
    if bytes > MAX_PARAMS_BYTES {
        out.add(
            at("params"),
            format!("{bytes} bytes of JSON; at most {MAX_PARAMS_BYTES}"),
        );
    }
}

fn unknown_kind(kind: &str) -> String {
    format!(
        "unknown provider kind {kind:?}: use one of {}",
        PROVIDER_KINDS.join(", ")
    )
}

fn short_text(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    validate::free_text(s, 128)
}

fn duration(out: &mut Problems, field: &str, d: &DurationText, min: Duration, max: Duration) {
    match d.parse() {
        Err(e) => out.add(field, e),
        Ok(v) if v < min || v > max => out.add(
            field,
            format!(
                "{d} must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ),
        Ok(_) => {}
    }
}

fn ratio(out: &mut Problems, field: String, v: f64) {
    if !(0.0..=1.0).contains(&v) {
        out.add(field, format!("{v} is not a fraction between 0 and 1"));
    }
}

fn autoscaler(out: &mut Problems, at: &str, a: &AutoscalerSpec, p: &PoolSpec, depth: usize) {
    if depth > MAX_DEPTH {
        out.add(at, format!("autoscalers nest at most {MAX_DEPTH} deep"));
        return;
    }
    let f = |name: &str| format!("{at}.{name}");
    match a {
        AutoscalerSpec::Reactive(r) => {
            ratio(out, f("scale_up_threshold"), r.scale_up_threshold);
            ratio(out, f("scale_down_threshold"), r.scale_down_threshold);
            if r.scale_up_threshold <= r.scale_down_threshold {
                out.add(
                    f("scale_up_threshold"),
                    "must be more than scale_down_threshold, or the pool would flap",
                );
            }
            if !(1..=1000).contains(&r.step) {
                out.add(f("step"), "must be between 1 and 1000");
            }
        }
        AutoscalerSpec::Queue(q) => {
            if !(q.jobs_per_node.is_finite() && q.jobs_per_node > 0.0) {
                out.add(f("jobs_per_node"), "must be more than 0");
            }
        }
        AutoscalerSpec::Scheduled(s) => scheduled(out, at, s, p, depth),
        AutoscalerSpec::Predictive(pr) => {
            let (min, week) = (Duration::from_secs(1), Duration::from_secs(7 * 86_400));
            duration(out, &f("window"), &pr.window, min, week);
            duration(out, &f("horizon"), &pr.horizon, min, week);
            if !(pr.target_utilization > 0.0 && pr.target_utilization <= 1.0) {
                out.add(f("target_utilization"), "must be more than 0 and at most 1");
            }
            if !(1..=1000).contains(&pr.max_step) {
                out.add(f("max_step"), "must be between 1 and 1000");
            }
            if !(2..=100_000).contains(&pr.min_samples) {
                out.add(f("min_samples"), "must be between 2 and 100000");
            }
        }
        AutoscalerSpec::Composite(c) => {
            if c.autoscalers.is_empty() {
                out.add(
                    f("autoscalers"),
                    "a composite needs at least one autoscaler",
                );
            }
            if too_long(out, &f("autoscalers"), c.autoscalers.len(), MAX_CHILDREN) {
                return;
            }
            for (i, child) in c.autoscalers.iter().enumerate() {
                autoscaler(out, &format!("{at}.autoscalers[{i}]"), child, p, depth + 1);
            }
        }
    }
}

fn scheduled(out: &mut Problems, at: &str, s: &ScheduledSpec, p: &PoolSpec, depth: usize) {
    if let Err(e) = jiff::tz::db().get(&s.timezone) {
        out.add(
            format!("{at}.timezone"),
            format!(
                "{:?} is not a known IANA time zone (like Europe/Berlin): {e}",
                clip(&s.timezone)
            ),
        );
    }
    if s.windows.is_empty() {
        out.add(
            format!("{at}.windows"),
            "a scheduled autoscaler needs at least one window",
        );
    }
    let windows = if too_long(out, &format!("{at}.windows"), s.windows.len(), MAX_WINDOWS) {
        &[][..]
    } else {
        &s.windows[..]
    };
    for (i, w) in windows.iter().enumerate() {
        let f = |name: &str| format!("{at}.windows[{i}].{name}");
        if too_long(out, &f("days"), w.days.len(), 7) {
            continue;
        }
        if let Err(e) = w.day_bits() {
            out.add(f("days"), e);
        }
        match (w.start_minute(), w.end_minute()) {
            (Ok(a), Ok(b)) if a == b => out.add(f("end"), "must differ from start"),
            (a, b) => {
                if let Err(e) = a {
                    out.add(f("start"), e);
                }
                if let Err(e) = b {
                    out.add(f("end"), e);
                }
            }
        }
        if w.min_nodes > w.max_nodes {
            out.add(
                f("min_nodes"),
                format!("{} is more than max_nodes ({})", w.min_nodes, w.max_nodes),
            );
        }
        if w.min_nodes < p.min_nodes || w.max_nodes > p.max_nodes {
            out.add(
                f("max_nodes"),
                format!(
                    "the window's {}..{} must lie within the pool's {}..{}",
                    w.min_nodes, w.max_nodes, p.min_nodes, p.max_nodes
                ),
            );
        }
    }
    if let Some(fb) = &s.fallback {
        autoscaler(out, &format!("{at}.fallback"), fb, p, depth + 1);
    }
}
