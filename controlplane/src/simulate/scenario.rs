//! A scenario file (TOML): the fleet, timed faults and expectations at times. Every problem
//! is reported at once, each with its place (`faults[2].node`). `config/scenarios/` holds the
//! shipped ones; docs/simulate.md documents every key.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

/// The fault kinds: those of the agent's fake backend (`POST /v1/fake/inject`'s `fault`),
/// and `agent_down` (the node's agent stops answering, through the fleet's control API).
pub const FAULTS: &[&str] = &[
    "xid",
    "temperature",
    "ecc",
    "fell_off_bus",
    "nvlink_down",
    "pcie_degraded",
    "power",
    "throttle",
    "recovery_action",
    "row_remap_pending",
    "row_remap_failure",
    "pcie_replays",
    "nvlink_errors",
    "processes",
    "agent_down",
];

/// NVLinks of each of the agent's fake GPUs (links 0 to 17).
pub const FAKE_NVLINKS: u32 = 18;

/// Connectivity values (`GET /v1/nodes`' `connectivity`).
pub const CONNECTIVITY: &[&str] = &["online", "offline", "unknown"];

/// Node health values (`GET /v1/nodes`' `health`).
pub const HEALTH: &[&str] = &["healthy", "degraded", "unhealthy", "unknown"];
/// Node lifecycle values (`status`).
pub const STATUS: &[&str] = &[
    "pending",
    "active",
    "cordoned",
    "draining",
    "terminating",
    "terminated",
];

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name (in the report).
    pub name: String,
    /// What it shows, for the reader.
    #[serde(default)]
    pub description: String,
    /// How long it runs after the fleet is online.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Seed of the fake GPUs and of any random choice (`--seed` overrides it).
    #[serde(default = "one")]
    pub seed: u64,
    /// Settings of the control plane the simulator starts.
    #[serde(default)]
    pub control_plane: ControlPlane,
    /// Node templates, in order: their nodes are named `{pool}-{i:05}` counting across them
    /// (none: only `[[pools]]`' nodes).
    #[serde(default)]
    pub fleet: Vec<Template>,
    /// Faults at times.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Expectations at times.
    #[serde(default)]
    pub expect: Vec<Expect>,
    /// Managed pools on the fake provider.
    #[serde(default)]
    pub pools: Vec<SimPool>,
    /// Pending jobs pushed for pools over time.
    #[serde(default)]
    pub demand: Vec<Demand>,
    /// Random faults at a rate (expanded into `faults` by [`Scenario::with_chaos`]).
    #[serde(default)]
    pub chaos: Option<Chaos>,
}

fn one() -> u64 {
    1
}

impl Scenario {
    /// Parses and checks a scenario file's text; every problem at once.
    pub fn parse(text: &str) -> Result<Scenario, Vec<String>> {
        let s = Scenario::read(text)?;
        s.check()?;
        Ok(s)
    }

    /// Reads a scenario file's text without checking its content (a TOML error alone): for
    /// `--nodes`, which scales the fleet before [`Scenario::check`] looks at node names.
    pub fn read(text: &str) -> Result<Scenario, Vec<String>> {
        toml::from_str(text).map_err(|e| vec![e.to_string()])
    }

    /// Every problem of its content, each with its place; none: `Ok`.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let p = self.problems();
        if p.is_empty() {
            Ok(())
        } else {
            Err(p)
        }
    }

    /// With the fleet scaled to `nodes` in all (the templates keep their proportions, each
    /// at least 1): `--nodes`. Expectations that count nodes scale with it, rounded to the
    /// nearest (a rack's 4 of 12 become 67 of 200: racks are filled round robin). Refused for
    /// a scenario with `[[pools]]` or without `[[fleet]]`.
    pub fn scaled(mut self, nodes: u32) -> Result<Scenario, String> {
        if !(1..=MAX_NODES).contains(&nodes) {
            return Err(format!("--nodes must be 1 to {MAX_NODES}, not {nodes}"));
        }
        if !self.pools.is_empty() || self.fleet.is_empty() {
            return Err(
                "--nodes scales the [[fleet]] templates of a scenario without [[pools]] (its \
                 count expectations would count the pools' nodes too): size a pool with its \
                 min_nodes and max_nodes"
                    .into(),
            );
        }
        let total: u64 = self
            .fleet
            .iter()
            .map(|t| u64::from(t.count))
            .sum::<u64>()
            .max(1);
        for t in &mut self.fleet {
            let share = u64::from(t.count) * u64::from(nodes) / total;
            t.count = u32::try_from(share.max(1)).unwrap_or(MAX_NODES);
        }
        let scaled: u64 = self.fleet.iter().map(|t| u64::from(t.count)).sum();
        for e in &mut self.expect {
            if let Some(c) = e.count.as_mut() {
                let v = (u64::from(*c) * scaled + total / 2) / total;
                *c = u32::try_from(v).unwrap_or(u32::MAX);
            }
        }
        Ok(self)
    }

    /// With `[chaos]`'s faults drawn (from the seed) and added to `faults`, in time order;
    /// nothing changes without `[chaos]`.
    pub fn with_chaos(mut self) -> Scenario {
        if let Some(c) = &self.chaos {
            let drawn = c.draw(self.duration, &self.nodes(), self.seed);
            self.faults.extend(drawn);
            self.faults.sort_by_key(|f| f.at);
        }
        self
    }

    /// The nodes the templates make, in order.
    pub fn nodes(&self) -> Vec<SimNode> {
        let mut out = Vec::new();
        let mut per_pool: BTreeMap<&str, u32> = BTreeMap::new();
        for t in &self.fleet {
            for i in 0..t.count {
                let k = per_pool.entry(t.pool.as_str()).or_insert(0);
                let rack = i % t.racks.max(1);
                let zone = rack % t.zones.max(1);
                out.push(SimNode {
                    name: format!("{}-{:05}", t.pool, *k),
                    pool: t.pool.clone(),
                    gpus: t.gpus,
                    model: t.model.clone(),
                    labels: [
                        ("rack".to_string(), format!("r{rack}")),
                        ("zone".to_string(), format!("z{zone}")),
                    ]
                    .into(),
                });
                *k += 1;
            }
        }
        out
    }

    /// Every problem, each with its place.
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.name.trim().is_empty() {
            p.push("name: must not be empty".into());
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(86_400) {
            p.push("duration: 1s to 24h".into());
        }
        let cp = &self.control_plane;
        for (key, d) in [
            ("control_plane.scrape_interval", cp.scrape_interval),
            ("control_plane.collect_interval", cp.collect_interval),
        ] {
            if d < Duration::from_millis(100) || d > Duration::from_secs(600) {
                p.push(format!("{key}: 100ms to 10m"));
            }
        }
        if cp.pool_interval < Duration::from_millis(100)
            || cp.pool_interval > Duration::from_secs(60)
        {
            p.push("control_plane.pool_interval: 100ms to 1m".into());
        }
        if self.fleet.is_empty() && self.pools.is_empty() {
            p.push("fleet: at least one [[fleet]] template or [[pools]] entry".into());
        }
        let mut total = 0u64;
        for (i, t) in self.fleet.iter().enumerate() {
            let at = format!("fleet[{i}]");
            total += u64::from(t.count);
            if t.count == 0 {
                p.push(format!("{at}.count: at least 1"));
            }
            if !(1..=64).contains(&t.gpus) {
                p.push(format!("{at}.gpus: 1 to 64, not {}", t.gpus));
            }
            if t.racks == 0 || t.zones == 0 || t.zones > t.racks {
                p.push(format!(
                    "{at}: racks and zones at least 1, and no more zones than racks"
                ));
            }
            if t.pool.is_empty()
                || t.pool.len() > 63
                || !t
                    .pool
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                p.push(format!(
                    "{at}.pool: 1 to 63 lowercase letters, digits or '-', not {:?}",
                    t.pool
                ));
            }
        }
        let templates: BTreeSet<&str> = self.fleet.iter().map(|t| t.pool.as_str()).collect();
        let mut pools = BTreeSet::new();
        for (i, sp) in self.pools.iter().enumerate() {
            let at = format!("pools[{i}]");
            p.extend(sp.problems(&at));
            if templates.contains(sp.name.as_str()) {
                p.push(format!(
                    "{at}.name: {:?} is a [[fleet]] template's pool (those are not managed)",
                    sp.name
                ));
            }
            if !pools.insert(sp.name.as_str()) {
                p.push(format!("{at}.name: {:?} given twice", sp.name));
            }
            total += sp.spec().map_or(0, |s| u64::from(s.max_nodes));
        }
        if total > u64::from(MAX_NODES) {
            p.push(format!(
                "fleet: {total} nodes (the pools' max_nodes included), more than {MAX_NODES}"
            ));
        }
        // Most nodes a pool fault can reach: a managed pool's max_nodes, a template pool's count.
        let mut pool_sizes: BTreeMap<&str, u32> = BTreeMap::new();
        for t in &self.fleet {
            *pool_sizes.entry(t.pool.as_str()).or_insert(0) += t.count;
        }
        for sp in &self.pools {
            pool_sizes.insert(
                sp.name.as_str(),
                sp.spec().map_or(u32::MAX, |s| s.max_nodes),
            );
        }
        for (i, d) in self.demand.iter().enumerate() {
            if d.at > self.duration {
                p.push(format!("demand[{i}].at: after the scenario's duration"));
            }
            if !pools.contains(d.pool.as_str()) {
                p.push(format!(
                    "demand[{i}].pool: no pool {:?} in [[pools]]",
                    d.pool
                ));
            }
        }
        if self.demand.len() > MAX_ITEMS {
            p.push(format!("demand: at most {MAX_ITEMS}"));
        }
        if let Some(c) = &self.chaos {
            p.extend(c.problems(self.duration, self.nodes().len()));
        }
        let nodes = self.nodes();
        let names: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        // A pool's machines take racks r0… and zones z0… as the fleet's nodes do.
        let pool_racks: Vec<String> = self
            .pools
            .iter()
            .flat_map(|sp| (0..sp.racks.min(10_000)).map(|r| format!("r{r}")))
            .chain(
                self.pools
                    .iter()
                    .flat_map(|sp| (0..sp.zone_count().min(10_000)).map(|z| format!("z{z}"))),
            )
            .collect();
        let racks: BTreeSet<&str> = nodes
            .iter()
            .map(|n| n.labels["rack"].as_str())
            .chain(
                pool_racks
                    .iter()
                    .map(String::as_str)
                    .filter(|r| r.starts_with('r')),
            )
            .collect();
        let zones: BTreeSet<&str> = nodes
            .iter()
            .map(|n| n.labels["zone"].as_str())
            .chain(
                pool_racks
                    .iter()
                    .map(String::as_str)
                    .filter(|z| z.starts_with('z')),
            )
            .collect();
        for (key, len) in [("faults", self.faults.len()), ("expect", self.expect.len())] {
            if len > MAX_ITEMS {
                p.push(format!("{key}: at most {MAX_ITEMS}, not {len}"));
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            let at = format!("faults[{i}]");
            if f.at > self.duration {
                p.push(format!("{at}.at: after the scenario's duration"));
            }
            let targets = [
                f.node.is_some(),
                f.rack.is_some(),
                f.zone.is_some(),
                f.pool.is_some(),
            ];
            if targets.iter().filter(|t| **t).count() != 1 {
                p.push(format!("{at}: exactly one of node, rack, zone, pool"));
            }
            if let Some(v) = f
                .pool
                .as_deref()
                .filter(|v| !pools.contains(v) && !templates.contains(v))
            {
                p.push(format!(
                    "{at}.pool: no pool {v:?} in the fleet or [[pools]]"
                ));
            }
            if f.nodes.is_some() && f.pool.is_none() {
                p.push(format!("{at}.nodes: goes with pool only"));
            }
            if let (Some(k), Some(pool)) = (f.nodes, f.pool.as_deref()) {
                let most = pool_sizes.get(pool).copied().unwrap_or(u32::MAX);
                if k == 0 || k > most {
                    p.push(format!(
                        "{at}.nodes: 1 to the pool's {most} nodes at most, not {k}"
                    ));
                }
            }
            match f.down_for {
                Some(_) if f.fault != "agent_down" => {
                    p.push(format!("{at}.for: only agent_down takes it"));
                }
                Some(d) if d < Duration::from_secs(1) || f.at + d > self.duration => {
                    p.push(format!(
                        "{at}.for: at least 1s, and back up within the duration"
                    ));
                }
                _ => {}
            }
            let in_range = |v: Option<f64>, lo: f64, hi: f64| {
                v.is_none_or(|v| v.is_finite() && (lo..=hi).contains(&v))
            };
            let range = match f.fault.as_str() {
                "temperature" => Some((-40.0, 150.0, "°C")),
                "power" => Some((0.0, 5000.0, "W")),
                "recovery_action" => Some((0.0, 4.0, "")),
                _ => None,
            };
            if let Some((lo, hi, unit)) = range.filter(|(lo, hi, _)| !in_range(f.value, *lo, *hi)) {
                p.push(format!("{at}.value: {lo} to {hi} {unit}"));
            }
            if f.link.is_some_and(|l| l >= FAKE_NVLINKS) {
                p.push(format!(
                    "{at}.link: 0 to {} (the fake GPUs' NVLinks)",
                    FAKE_NVLINKS - 1
                ));
            }
            if f.count.is_some_and(|c| c > 1_000_000_000) {
                p.push(format!("{at}.count: at most 1000000000"));
            }
            for (key, v, known) in [
                ("node", &f.node, &names),
                ("rack", &f.rack, &racks),
                ("zone", &f.zone, &zones),
            ] {
                if let Some(v) = v.as_deref().filter(|v| !known.contains(v)) {
                    p.push(format!("{at}.{key}: no {key} {v:?} in the fleet"));
                }
            }
            if !FAULTS.contains(&f.fault.as_str()) {
                p.push(format!(
                    "{at}.fault: unknown {:?} (one of {})",
                    f.fault,
                    FAULTS.join(", ")
                ));
            }
            let needs = |ok: bool, what: &str, p: &mut Vec<String>| {
                if !ok {
                    p.push(format!("{at}: {} needs {what}", f.fault));
                }
            };
            match f.fault.as_str() {
                "xid" => needs(f.code.is_some(), "code", &mut p),
                "temperature" | "power" | "recovery_action" => {
                    needs(f.value.is_some(), "value", &mut p)
                }
                "ecc" => needs(
                    matches!(f.ecc_type.as_deref(), Some("single_bit" | "double_bit")),
                    "type = \"single_bit\" or \"double_bit\"",
                    &mut p,
                ),
                "throttle" => needs(f.reason.is_some(), "reason", &mut p),
                "nvlink_down" => needs(f.link.is_some(), "link", &mut p),
                "nvlink_errors" => needs(
                    f.link.is_some() && f.count.is_some(),
                    "link and count",
                    &mut p,
                ),
                "pcie_replays" | "processes" => needs(f.count.is_some(), "count", &mut p),
                _ => {}
            }
            let gpus_min = self
                .fleet
                .iter()
                .map(|t| t.gpus)
                .chain(self.pools.iter().map(|sp| sp.gpus))
                .min()
                .unwrap_or(1);
            if f.gpu >= gpus_min {
                p.push(format!(
                    "{at}.gpu: {} is not below every node's GPU count ({gpus_min})",
                    f.gpu
                ));
            }
        }
        for (i, e) in self.expect.iter().enumerate() {
            let at = format!("expect[{i}]");
            if e.at > self.duration {
                p.push(format!("{at}.at: after the scenario's duration"));
            }
            let kinds = [
                e.node.is_some(),
                e.count.is_some(),
                e.unhealthy_outside_faulted.is_some(),
                e.faulted_not_unhealthy.is_some(),
                e.pool.is_some(),
                e.held.is_some() && e.pool.is_none(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                p.push(format!(
                    "{at}: exactly one of node, count, unhealthy_outside_faulted, faulted_not_unhealthy, pool, held"
                ));
            }
            let state = e.health.is_some() || e.status.is_some() || e.connectivity.is_some();
            if (e.node.is_some() || e.count.is_some()) && !state {
                p.push(format!("{at}: health, status or connectivity"));
            }
            if e.node.is_none() && e.count.is_none() && state {
                p.push(format!(
                    "{at}: health, status and connectivity go with node or count"
                ));
            }
            let sizes = [e.nodes, e.target, e.serving, e.held];
            match &e.pool {
                Some(pool) => {
                    if sizes.iter().all(Option::is_none) {
                        p.push(format!("{at}: pool with nodes, target, serving or held"));
                    }
                    if !pools.contains(pool.as_str()) {
                        p.push(format!("{at}.pool: no pool {pool:?} in [[pools]]"));
                    }
                }
                None if e.nodes.is_some() || e.target.is_some() || e.serving.is_some() => {
                    p.push(format!("{at}: nodes, target and serving go with pool"));
                }
                None => {}
            }
            if let Some(c) = e
                .connectivity
                .as_deref()
                .filter(|c| !CONNECTIVITY.contains(c))
            {
                p.push(format!(
                    "{at}.connectivity: {c:?} is not one of {}",
                    CONNECTIVITY.join(", ")
                ));
            }
            if let Some(n) = e.node.as_deref().filter(|n| !names.contains(n)) {
                p.push(format!("{at}.node: no node {n:?} in the fleet"));
            }
            if let Some(h) = e.health.as_deref().filter(|h| !HEALTH.contains(h)) {
                p.push(format!(
                    "{at}.health: {h:?} is not one of {}",
                    HEALTH.join(", ")
                ));
            }
            if let Some(s) = e.status.as_deref().filter(|s| !STATUS.contains(s)) {
                p.push(format!(
                    "{at}.status: {s:?} is not one of {}",
                    STATUS.join(", ")
                ));
            }
        }
        p
    }
}

pub mod chaos;
mod items;
mod pools;
pub use chaos::Chaos;
pub use items::{ControlPlane, Expect, Fault, SimNode, Template, MAX_ITEMS, MAX_NODES};
pub use pools::{Demand, SimPool, Zones};

#[cfg(test)]
mod tests;
