//! An agent's `/metrics` body as the control plane sees it: per-GPU values, XID and ECC
//! counters, NVLink and clock-event state, plugin verdicts, driver versions.
//!
//! Parsing uses the strict parser of `gpuwarden-wire`: a broken body is a failed scrape with
//! a reason, never a partial observation. Names come from `gpuwarden_wire::metric`, the same
//! constants the agent renders with.

use std::collections::BTreeMap;

use gpuwarden_wire::exposition::{self, Sample};
use gpuwarden_wire::metric as m;

pub mod compact;
mod error;
pub mod limits;
mod scratch;
pub use compact::{intern, LinkStates, LinkValues, Name, SmallMap, SmallSet, Values};
pub use error::ObserveError;

/// One GPU.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuObservation {
    /// Index.
    pub index: u32,
    /// UUID.
    pub uuid: Box<str>,
    /// Model, shared by the GPUs (and nodes) of one model.
    pub model: Name,
    /// Whether the agent could read it (`gpuwarden_gpu_up`); `None` when the body has no
    /// such series for this GPU: unknown, never read as down.
    pub up: Option<bool>,
    /// Single-series families by name without the `gpuwarden_gpu_` prefix, e.g.
    /// `temperature_celsius`, `power_watts`, `pcie_link_width` (names shared fleet-wide).
    pub values: Values,
    /// XIDs seen, by code.
    pub xid_errors: SmallMap<u32, f64>,
    /// ECC errors by (`type`, `counter`).
    pub ecc_errors: SmallMap<(Name, Name), f64>,
    /// NVLink state by link.
    pub nvlink_up: LinkStates,
    /// NVLink errors by link, all types summed.
    pub nvlink_errors: LinkValues,
    /// Active clock-event reasons.
    pub clock_events: SmallSet<Name>,
}

impl GpuObservation {
    /// Drops the spare capacity left by parsing.
    fn shrink(&mut self) {
        self.xid_errors.shrink();
        self.ecc_errors.shrink();
        self.nvlink_up.shrink();
        self.nvlink_errors.shrink();
        self.clock_events.shrink();
    }
}

/// One node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeObservation {
    /// GPUs by index.
    pub gpus: SmallMap<u32, GpuObservation>,
    /// Driver version from `gpuwarden_node_info`.
    pub driver_version: Option<String>,
    /// CUDA version.
    pub cuda_version: Option<String>,
    /// Agent version.
    pub agent_version: Option<String>,
    /// Health-check plugin verdicts (0 healthy, 1 degraded, 2 unhealthy, 3 unknown).
    pub health_checks: SmallMap<String, f64>,
    /// Samples in the body.
    pub samples: usize,
    /// Health events the agent has recorded (all kinds), since it started.
    pub events_total: f64,
    /// When the agent started (Unix seconds); a change means a restart.
    pub agent_started: Option<f64>,
    /// Its workload's slots and readiness (pool autoscaling).
    pub workload: crate::model::workload::WorkloadObservation,
}

impl NodeObservation {
    /// What the policy reads from the observation before the latest: the counters whose
    /// growth it judges (volatile ECC counts, the NVLink error total, PCIe replays), so a
    /// node does not keep two full observations.
    pub fn counters_only(&self) -> NodeObservation {
        let gpus = self
            .gpus
            .iter()
            .map(|(i, g)| {
                let mut slim = GpuObservation {
                    index: g.index,
                    up: g.up,
                    ecc_errors: g
                        .ecc_errors
                        .iter()
                        .filter(|((_, counter), _)| &**counter == "volatile")
                        .map(|(k, v)| (k.clone(), *v))
                        .collect(),
                    // Kept under link 0: rules read the sum over links.
                    nvlink_errors: (!g.nvlink_errors.is_empty())
                        .then(|| (0, g.nvlink_errors.values().sum::<f64>()))
                        .into_iter()
                        .collect(),
                    ..Default::default()
                };
                if let Some(v) = g.values.get("pcie_replays_total") {
                    slim.values.insert("pcie_replays_total", *v);
                }
                (*i, slim)
            })
            .collect();
        NodeObservation {
            gpus,
            ..Default::default()
        }
    }
}

fn gpu_of<'o>(
    node: &'o mut NodeObservation,
    s: &Sample<'_>,
) -> Result<&'o mut GpuObservation, ObserveError> {
    let index: u32 = s
        .labels
        .get("gpu")
        .and_then(|g| canonical_u32(&g))
        .ok_or_else(|| ObserveError::BadGpuLabel {
            metric: s.name.to_string(),
        })?;
    if !node.gpus.contains_key(&index) {
        limits::room(node.gpus.len(), limits::MAX_GPUS, || "GPUs".into())?;
        node.gpus.insert(
            index,
            GpuObservation {
                index,
                ..Default::default()
            },
        );
    }
    let Some(g) = node.gpus.get_mut(&index) else {
        return Err(ObserveError::BadGpuLabel {
            metric: s.name.to_string(),
        });
    };
    if g.uuid.is_empty() {
        if let Some(u) = limits::label(s, "uuid")? {
            g.uuid = u.into();
        }
        if let Some(m) = limits::label_ref(s, "model")? {
            g.model = intern(&m);
        }
    }
    Ok(g)
}

/// A number label (`gpu`, `link`, `xid`) in its one decimal spelling: `0`, `17`; not `+0`,
/// `00` or `007`. Two spellings of one number would be two series to the text format's
/// "no series twice" rule but one GPU or link here, and the later would silently win.
fn canonical_u32(v: &str) -> Option<u32> {
    let canonical =
        !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) && (v == "0" || !v.starts_with('0'));
    canonical.then(|| v.parse().ok()).flatten()
}

fn label_u32(s: &Sample<'_>, name: &str) -> Option<u32> {
    s.labels.get(name).and_then(|v| canonical_u32(&v))
}

/// Reads an agent's `/metrics` body; at most `sample_limit` samples, and at most the
/// [`limits`] of distinct GPUs, links, checks, … per body.
///
/// A sample whose value is NaN or ±Inf is absent for the policy, like a missing series (the
/// GPU it names still exists): no rule compares a temperature of NaN. Errors: see
/// [`ObserveError`]; a body without any `gpuwarden_` series is [`ObserveError::NotAnAgent`].
pub fn observe(body: &[u8], sample_limit: usize) -> Result<NodeObservation, ObserveError> {
    let mut node = NodeObservation::default();
    let mut ours = false;
    // Per GPU: values (borrowed from the body), counters, link totals and reasons, in
    // growable lists until the end, then each compact form built once.
    let mut scratch: BTreeMap<u32, scratch::Scratch<'_>> = BTreeMap::new();
    // Streamed: no vector of samples, and a body over the limit stops being read there.
    for entry in exposition::Parser::new(body) {
        let exposition::Entry::Sample(s) = entry? else {
            continue;
        };
        node.samples += 1;
        if node.samples > sample_limit {
            return Err(ObserveError::TooManySamples {
                limit: sample_limit,
            });
        }
        ours |= s.name.starts_with("gpuwarden_");
        let s = &s;
        let value = s.value.is_finite().then_some(s.value);
        match s.name {
            m::NODE_INFO => {
                node.driver_version = limits::label(s, "driver_version")?;
                node.cuda_version = limits::label(s, "cuda_version")?;
                node.agent_version = limits::label(s, "agent_version")?;
            }
            m::HEALTH_CHECK_STATUS => {
                if let (Some(c), Some(v)) = (limits::label(s, "check")?, value) {
                    limits::insert(&mut node.health_checks, c, v, limits::MAX_CHECKS, || {
                        "health checks".into()
                    })?;
                }
            }
            m::GPU_UP => gpu_of(&mut node, s)?.up = value.map(|v| v == 1.0),
            m::AGENT_EVENTS => node.events_total += value.unwrap_or(0.0),
            m::AGENT_START_TIME => node.agent_started = value,
            m::WORKLOAD_SLOTS | m::WORKLOAD_READY => {
                let state = limits::label_ref(s, "state")?;
                node.workload.add(s.name, state.as_deref(), value);
            }
            m::GPU_XID_ERRORS => {
                let code = label_u32(s, "xid");
                let i = gpu_of(&mut node, s)?.index;
                if let (Some(code), Some(v)) = (code, value) {
                    let list = &mut scratch.entry(i).or_default().xid;
                    *scratch::slot(list, code, limits::MAX_PER_GPU, || {
                        format!("XID codes on GPU {i}")
                    })? = v;
                }
            }
            m::GPU_ECC_ERRORS => {
                // Interned straight from the body: no owned string per sample.
                let key = (
                    intern(limits::label_ref(s, "type")?.as_deref().unwrap_or_default()),
                    intern(
                        limits::label_ref(s, "counter")?
                            .as_deref()
                            .unwrap_or_default(),
                    ),
                );
                let i = gpu_of(&mut node, s)?.index;
                if let Some(v) = value {
                    let list = &mut scratch.entry(i).or_default().ecc;
                    *scratch::slot(list, key, limits::MAX_PER_GPU, || {
                        format!("ECC counters on GPU {i}")
                    })? = v;
                }
            }
            m::GPU_NVLINK_UP => {
                let link = label_u32(s, "link");
                let g = gpu_of(&mut node, s)?;
                if let (Some(l), Some(v)) = (link, value) {
                    let i = g.index;
                    if !g.nvlink_up.contains_key(&l) {
                        limits::room(g.nvlink_up.len(), limits::MAX_LINKS, || {
                            format!("NVLink links on GPU {i}")
                        })?;
                    }
                    g.nvlink_up.insert(l, v == 1.0);
                }
            }
            m::GPU_NVLINK_ERRORS => {
                let link = label_u32(s, "link");
                let i = gpu_of(&mut node, s)?.index;
                if let (Some(l), Some(v)) = (link, value) {
                    let list = &mut scratch.entry(i).or_default().links;
                    *scratch::slot(list, l, limits::MAX_LINKS, || {
                        format!("NVLink links on GPU {i}")
                    })? += v;
                }
            }
            m::GPU_CLOCK_EVENT => {
                let reason = limits::label_ref(s, "reason")?;
                let i = gpu_of(&mut node, s)?.index;
                if let (Some(r), Some(1.0)) = (reason, value) {
                    let list = &mut scratch.entry(i).or_default().clocks;
                    if let Err(at) = list.binary_search_by(|x| (**x).cmp(&*r)) {
                        limits::room(list.len(), limits::MAX_PER_GPU, || {
                            format!("clock-event reasons on GPU {i}")
                        })?;
                        list.insert(at, intern(&r));
                    }
                }
            }
            "gpuwarden_gpu_info" | "gpuwarden_gpu_remapped_rows_total" => {
                gpu_of(&mut node, s)?;
            }
            name => {
                if let Some(short) = name.strip_prefix(m::GPU_PREFIX) {
                    limits::name(s, short)?;
                    let i = gpu_of(&mut node, s)?.index;
                    if let Some(v) = value {
                        // Sized for an agent's ~35 values a GPU at once (no doubling).
                        let list = &mut scratch.entry(i).or_default().values;
                        if list.capacity() == 0 {
                            list.reserve_exact(48);
                        }
                        // Counted per sample: a name sent twice with other labels counts
                        // twice, which only matters past a bound no agent comes near.
                        limits::room(list.len(), limits::MAX_PER_GPU, || {
                            format!("distinct series on GPU {i}")
                        })?;
                        list.push((short, v));
                    }
                }
            }
        }
    }
    if !ours {
        return Err(ObserveError::NotAnAgent);
    }
    for (i, lists) in scratch {
        if let Some(g) = node.gpus.get_mut(&i) {
            finish(lists, g);
        }
    }
    for g in node.gpus.values_mut() {
        g.shrink();
    }
    node.gpus.shrink();
    node.health_checks.shrink();
    Ok(node)
}

/// Whether the agent has new health events to read: it restarted, its event count moved,
/// or an XID or ECC counter changed.
pub fn events_pending(prev: Option<&NodeObservation>, cur: &NodeObservation) -> bool {
    let Some(prev) = prev else { return true };
    if prev.agent_started != cur.agent_started || prev.events_total != cur.events_total {
        return true;
    }
    cur.gpus.iter().any(|(i, g)| {
        let Some(p) = prev.gpus.get(i) else {
            return true;
        };
        let changed = |a: Option<&f64>, b: Option<&f64>| {
            a.copied().unwrap_or(0.0) != b.copied().unwrap_or(0.0)
        };
        g.xid_errors
            .iter()
            .any(|(c, v)| changed(Some(v), p.xid_errors.get(c)))
            || p.xid_errors.keys().any(|c| !g.xid_errors.contains_key(c))
            || g.ecc_errors
                .iter()
                .any(|(k, v)| &*k.1 == "volatile" && changed(Some(v), p.ecc_errors.get(k)))
    })
}

/// Moves a GPU's scratch lists into `g`, each container built once and exactly sized.
fn finish(lists: scratch::Scratch<'_>, g: &mut GpuObservation) {
    if !lists.values.is_empty() {
        g.values = Values::from_pairs(lists.values);
    }
    g.xid_errors = SmallMap::from_sorted(lists.xid);
    g.ecc_errors = SmallMap::from_sorted(lists.ecc);
    g.nvlink_errors = LinkValues::from_sorted(lists.links);
    g.clock_events = SmallSet::from_sorted(lists.clocks);
}

#[cfg(test)]
mod tests;
