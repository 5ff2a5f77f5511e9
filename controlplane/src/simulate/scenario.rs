//! A scenario file (TOML): the fleet, timed faults and expectations at times. Every problem
//! is reported at once, each with its place (`faults[2].node`). `config/scenarios/` holds the
//! shipped ones; docs/simulate.md documents every key.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

/// Most nodes a scenario (or `--nodes`) may ask for.
pub const MAX_NODES: u32 = 20_000;
/// Most faults and expectations a scenario may list, each.
pub const MAX_ITEMS: usize = 10_000;

/// The fault kinds of the agent's fake backend (`POST /v1/fake/inject`'s `fault`).
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
];

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
    /// Node templates, in order: their nodes are named `{pool}-{i:05}` counting across them.
    pub fleet: Vec<Template>,
    /// Faults at times.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Expectations at times.
    #[serde(default)]
    pub expect: Vec<Expect>,
}

fn one() -> u64 {
    1
}

/// `[control_plane]`: the simulated fleet's control plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlPlane {
    /// `scrape.interval`.
    #[serde(with = "humantime_serde")]
    pub scrape_interval: Duration,
    /// The agents' collection interval.
    #[serde(with = "humantime_serde")]
    pub collect_interval: Duration,
    /// Lines appended to the control plane's TOML as they are (e.g. `[remediation]`
    /// settings); checked by the control plane itself when it starts.
    pub extra: String,
}

impl Default for ControlPlane {
    fn default() -> Self {
        ControlPlane {
            scrape_interval: Duration::from_secs(1),
            collect_interval: Duration::from_secs(1),
            extra: String::new(),
        }
    }
}

/// `[[fleet]]`: `count` alike nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Nodes (at least 1).
    pub count: u32,
    /// GPUs per node (1 to 64).
    #[serde(default = "eight")]
    pub gpus: u32,
    /// GPU model.
    #[serde(default = "h100")]
    pub model: String,
    /// Pool (also the node names' prefix).
    #[serde(default = "sim")]
    pub pool: String,
    /// Racks the nodes are spread over, round robin (label `rack`: `r0`, `r1`, …).
    #[serde(default = "one_u32")]
    pub racks: u32,
    /// Zones the racks are spread over (label `zone`: `z0`, …).
    #[serde(default = "one_u32")]
    pub zones: u32,
}

fn eight() -> u32 {
    8
}
fn one_u32() -> u32 {
    1
}
fn h100() -> String {
    "NVIDIA H100 80GB HBM3".into()
}
fn sim() -> String {
    "sim".into()
}

/// `[[faults]]`: one fault, on one node, every node of a rack or of a zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// When, after the fleet is online.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// A node by name.
    #[serde(default)]
    pub node: Option<String>,
    /// Every node of this rack (`r0`, …).
    #[serde(default)]
    pub rack: Option<String>,
    /// Every node of this zone.
    #[serde(default)]
    pub zone: Option<String>,
    /// The fault (one of [`FAULTS`]), as `POST /v1/fake/inject` names it.
    pub fault: String,
    /// GPU index.
    #[serde(default)]
    pub gpu: u32,
    /// XID code (`xid`).
    #[serde(default)]
    pub code: Option<u32>,
    /// Value (`temperature` °C, `power` W, `recovery_action`).
    #[serde(default)]
    pub value: Option<f64>,
    /// `ecc`: `single_bit` or `double_bit`.
    #[serde(default, rename = "type")]
    pub ecc_type: Option<String>,
    /// Count (`ecc`, `pcie_replays`, `nvlink_errors`, `processes`).
    #[serde(default)]
    pub count: Option<u64>,
    /// Link (`nvlink_down`, `nvlink_errors`).
    #[serde(default)]
    pub link: Option<u32>,
    /// Clock-event reason (`throttle`), e.g. `hw_slowdown`.
    #[serde(default)]
    pub reason: Option<String>,
    /// The fault must not condemn a node (recoverable XIDs, noise): its nodes count as
    /// false positives when they turn unhealthy.
    #[serde(default)]
    pub benign: bool,
}

/// `[[expect]]`: what must hold at a time. One of: a node's `health`/`status`; a `count` of
/// nodes with a `health`/`status`; `unhealthy_outside_faulted`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// When, after the fleet is online.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// The node looked at (with `health` and/or `status`).
    #[serde(default)]
    pub node: Option<String>,
    /// Its health, or the health counted.
    #[serde(default)]
    pub health: Option<String>,
    /// Its lifecycle status, or the status counted.
    #[serde(default)]
    pub status: Option<String>,
    /// The number of nodes with `health` (and `status`) must be this.
    #[serde(default)]
    pub count: Option<u32>,
    /// At most this many unhealthy nodes outside those a non-benign fault touched.
    #[serde(default)]
    pub unhealthy_outside_faulted: Option<u32>,
}

impl Expect {
    /// What it asks, in words (the report's `what`).
    pub fn describe(&self) -> String {
        let state = [self.health.as_deref(), self.status.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" and ");
        match (&self.node, self.count, self.unhealthy_outside_faulted) {
            (Some(n), _, _) => format!("node {n} is {state}"),
            (None, Some(c), _) => format!("{c} nodes are {state}"),
            (None, None, Some(m)) => format!("at most {m} unhealthy nodes outside the faulted"),
            _ => "nothing".into(),
        }
    }
}

/// One node to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimNode {
    /// Name.
    pub name: String,
    /// Pool.
    pub pool: String,
    /// GPUs.
    pub gpus: u32,
    /// Model.
    pub model: String,
    /// `rack` and `zone` labels.
    pub labels: BTreeMap<String, String>,
}

impl Scenario {
    /// Parses and checks a scenario file's text; every problem at once.
    pub fn parse(text: &str) -> Result<Scenario, Vec<String>> {
        let s: Scenario = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let p = s.problems();
        if p.is_empty() {
            Ok(s)
        } else {
            Err(p)
        }
    }

    /// With the fleet scaled to `nodes` in all (the templates keep their proportions, each
    /// at least 1): `--nodes`. Expectations that count nodes scale with it, rounded to the
    /// nearest (a rack's 4 of 12 become 67 of 200: racks are filled round robin).
    pub fn scaled(mut self, nodes: u32) -> Result<Scenario, String> {
        if !(1..=MAX_NODES).contains(&nodes) {
            return Err(format!("--nodes must be 1 to {MAX_NODES}, not {nodes}"));
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
        if self.fleet.is_empty() {
            p.push("fleet: at least one [[fleet]] template".into());
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
        if total > u64::from(MAX_NODES) {
            p.push(format!("fleet: {total} nodes, more than {MAX_NODES}"));
        }
        let nodes = self.nodes();
        let names: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        let racks: BTreeSet<&str> = nodes.iter().map(|n| n.labels["rack"].as_str()).collect();
        let zones: BTreeSet<&str> = nodes.iter().map(|n| n.labels["zone"].as_str()).collect();
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
            let targets = [f.node.is_some(), f.rack.is_some(), f.zone.is_some()];
            if targets.iter().filter(|t| **t).count() != 1 {
                p.push(format!("{at}: exactly one of node, rack, zone"));
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
            let gpus_min = self.fleet.iter().map(|t| t.gpus).min().unwrap_or(1);
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
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                p.push(format!(
                    "{at}: exactly one of node, count, unhealthy_outside_faulted"
                ));
            }
            if (e.node.is_some() || e.count.is_some()) && e.health.is_none() && e.status.is_none() {
                p.push(format!("{at}: health or status (or both)"));
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

#[cfg(test)]
mod tests;
