//! The entries of a scenario file: `[control_plane]`, `[[fleet]]`, `[[faults]]`,
//! `[[expect]]` (docs/simulate.md).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// Most nodes a scenario (or `--nodes`) may ask for.
pub const MAX_NODES: u32 = 20_000;
/// Most faults and expectations a scenario may list, each.
pub const MAX_ITEMS: usize = 10_000;

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
    /// The pool manager's `interval` (how often pools are sized and remediated; 100ms to
    /// 1m; default 1s).
    #[serde(with = "humantime_serde")]
    pub pool_interval: Duration,
    /// Lines appended to the control plane's TOML as they are (e.g. `[remediation]`
    /// settings); checked by the control plane itself when it starts.
    pub extra: String,
}

impl Default for ControlPlane {
    fn default() -> Self {
        ControlPlane {
            scrape_interval: Duration::from_secs(1),
            collect_interval: Duration::from_secs(1),
            pool_interval: Duration::from_secs(1),
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

pub(super) fn eight() -> u32 {
    8
}
pub(super) fn one_u32() -> u32 {
    1
}
pub(super) fn h100() -> String {
    "NVIDIA H100 80GB HBM3".into()
}
fn sim() -> String {
    "sim".into()
}

/// `[[faults]]`: one fault, on one node, every node of a rack or of a zone, or nodes of a
/// managed pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// When, after the fleet is online.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// Nodes of this pool (a `[[pools]]` one or a `[[fleet]]` template's), as they are at
    /// the fault's time.
    #[serde(default)]
    pub pool: Option<String>,
    /// With `pool`: this many of its nodes, picked by the seed (default all).
    #[serde(default)]
    pub nodes: Option<u32>,
    /// `agent_down`: back up after this long (default: down to the end).
    #[serde(default, rename = "for", with = "humantime_serde::option")]
    pub down_for: Option<Duration>,
    /// Drawn by `[chaos]` (in the report).
    #[serde(skip)]
    pub chaos: bool,
    /// A node by name.
    #[serde(default)]
    pub node: Option<String>,
    /// Every node of this rack (`r0`, …).
    #[serde(default)]
    pub rack: Option<String>,
    /// Every node of this zone.
    #[serde(default)]
    pub zone: Option<String>,
    /// The fault (one of [`FAULTS`](super::FAULTS)), as `POST /v1/fake/inject` names it.
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

impl Fault {
    /// A fault of kind `fault` at 0 s on no target yet, every parameter unset.
    pub fn named(fault: &str) -> Fault {
        Fault {
            at: Duration::ZERO,
            pool: None,
            nodes: None,
            down_for: None,
            chaos: false,
            node: None,
            rack: None,
            zone: None,
            fault: fault.to_string(),
            gpu: 0,
            code: None,
            value: None,
            ecc_type: None,
            count: None,
            link: None,
            reason: None,
            benign: false,
        }
    }
}

/// `[[expect]]`: what must hold at a time. One of: a node's `health`/`status`/
/// `connectivity`; a `count` of nodes with those; `unhealthy_outside_faulted`; a `pool`'s
/// `nodes`, `target`, `serving` and `held`; `held` nodes in the fleet.
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
    /// At most this many nodes that a non-benign fault reached are not unhealthy (every
    /// fault found: 0).
    #[serde(default)]
    pub faulted_not_unhealthy: Option<u32>,
    /// Its connectivity, or the connectivity counted (`online`, `offline`, `unknown`).
    #[serde(default)]
    pub connectivity: Option<String>,
    /// The pool looked at (with `nodes`, `target`, `serving`, `held`).
    #[serde(default)]
    pub pool: Option<String>,
    /// The pool has this many nodes (all but terminated ones: `GET /v1/pools`' `nodes`).
    #[serde(default)]
    pub nodes: Option<u32>,
    /// The pool's target is this (`GET /v1/pools`' `target`).
    #[serde(default)]
    pub target: Option<u32>,
    /// This many of the pool's nodes serve: active, online and not unhealthy.
    #[serde(default)]
    pub serving: Option<u32>,
    /// This many nodes (of the pool, or of the fleet without `pool`) are held by the
    /// remediation budget (`held` in `GET /v1/nodes`).
    #[serde(default)]
    pub held: Option<u32>,
}

impl Expect {
    /// What it asks, in words (the report's `what`).
    pub fn describe(&self) -> String {
        let state = [
            self.health.as_deref(),
            self.status.as_deref(),
            self.connectivity.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" and ");
        if let Some(p) = &self.pool {
            let parts: Vec<String> = [
                ("nodes", self.nodes),
                ("target", self.target),
                ("serving", self.serving),
                ("held", self.held),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k} {v}")))
            .collect();
            return format!("pool {p} has {}", parts.join(", "));
        }
        if let Some(m) = self.faulted_not_unhealthy {
            return format!("at most {m} faulted nodes not unhealthy");
        }
        match (
            &self.node,
            self.count,
            self.unhealthy_outside_faulted,
            self.held,
        ) {
            (Some(n), _, _, _) => format!("node {n} is {state}"),
            (None, Some(c), _, _) => format!("{c} node(s) are {state}"),
            (None, None, Some(m), _) => {
                format!("at most {m} unhealthy nodes outside the faulted")
            }
            (None, None, None, Some(h)) => format!("{h} nodes held by the budget"),
            _ => "nothing".into(),
        }
    }
}
