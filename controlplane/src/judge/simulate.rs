//! Policy simulation (`POST /v1/policies/simulate`): a candidate policy and the running one
//! evaluated side by side over what the store kept of a time window, the stored health
//! events and each node's latest observation (in memory, else stored), with the verdict per node that each
//! would have given and the rules behind it.
//!
//! What it cannot see is said in the answer: the store keeps the latest observation per
//! node, not every scrape, so state rules are judged on that one observation, their `for`
//! durations are taken as held, and rules on counter growth (which need two observations)
//! do not fire; events cover those faults.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::judge::policy::{Evaluation, EventInput, NodeInput, Policy, Verdict};
use crate::model::observation::{GpuObservation, NodeObservation};
use crate::store::rows::{EventRow, ObservationRow};

/// One node's stored records in the window.
#[derive(Debug, Clone, Default)]
pub struct NodeRecord {
    /// Node id.
    pub id: String,
    /// The node as rules see it.
    pub input: NodeInput,
    /// Its events in the window, oldest first.
    pub events: Vec<EventRow>,
    /// Its latest observation (in memory, else stored), when it lies in the window (and when it was taken).
    pub observation: Option<(NodeObservation, i64)>,
}

/// A rule that matched a node.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RuleHit {
    /// The rule.
    pub rule: String,
    /// Its verdict.
    pub verdict: String,
    /// Events or observations it matched.
    pub hits: usize,
    /// First match (RFC 3339).
    pub first: String,
    /// Last match (RFC 3339).
    pub last: String,
    /// What the first match was.
    pub example: String,
}

/// What one policy made of one node.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Verdicts {
    /// `healthy`, `degraded` or `unhealthy`: the worst rule that matched.
    pub verdict: String,
    /// The rules that matched, worst first.
    pub rules: Vec<RuleHit>,
}

/// One node, both policies.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NodeSimulation {
    /// Node id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Pool.
    pub pool: String,
    /// The running policy's verdict.
    pub current: Verdicts,
    /// The candidate's verdict.
    pub candidate: Verdicts,
    /// True when the verdicts differ.
    pub changed: bool,
}

/// Nodes by verdict under one policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Counts {
    /// Nodes no rule flagged.
    pub healthy: usize,
    /// Nodes flagged degraded.
    pub degraded: usize,
    /// Nodes flagged unhealthy.
    pub unhealthy: usize,
}

/// A rule that failed at run time during the simulation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SimFailure {
    /// `current` or `candidate`.
    pub policy: String,
    /// The rule.
    pub rule: String,
    /// How often.
    pub count: usize,
    /// The first error.
    pub error: String,
}

/// The answer of `POST /v1/policies/simulate`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Simulation {
    /// Window start (RFC 3339).
    pub since: String,
    /// Window end (RFC 3339).
    pub until: String,
    /// Nodes looked at.
    pub nodes_evaluated: usize,
    /// Events evaluated (by each policy).
    pub events_evaluated: usize,
    /// Observations evaluated (by each policy).
    pub observations_evaluated: usize,
    /// Verdicts of the running policy.
    pub current: Counts,
    /// Verdicts of the candidate.
    pub candidate: Counts,
    /// Nodes whose verdict the candidate changes.
    pub changed: usize,
    /// Every node either policy flagged, changed ones first.
    pub nodes: Vec<NodeSimulation>,
    /// Rules that failed at run time.
    pub failures: Vec<SimFailure>,
    /// What the simulation cannot see.
    pub notes: Vec<String>,
}

/// Rebuilds a node's observation from its stored rows (`gpu = -1` is the node row).
pub fn observation_from_rows(rows: &[ObservationRow]) -> Option<(NodeObservation, i64)> {
    let mut o = NodeObservation::default();
    let mut at = i64::MIN;
    for r in rows {
        at = at.max(r.observed_at);
        let body: Value = serde_json::from_str(&r.body).ok()?;
        if r.gpu < 0 {
            let st = |k: &str| body[k].as_str().map(str::to_string);
            o.driver_version = st("driver_version");
            o.cuda_version = st("cuda_version");
            o.agent_version = st("agent_version");
            o.health_checks =
                serde_json::from_value(body["health_checks"].clone()).unwrap_or_default();
            o.samples = body["samples"].as_u64().map_or(0, |v| v as usize);
            continue;
        }
        let keyed = |k: &str| -> BTreeMap<u32, f64> {
            serde_json::from_value::<BTreeMap<String, f64>>(body[k].clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                .collect()
        };
        let g = GpuObservation {
            index: u32::try_from(r.gpu).ok()?,
            uuid: r.uuid.as_str().into(),
            model: r.model.as_str().into(),
            up: body["up"].as_bool(),
            values: serde_json::from_value(body["values"].clone()).unwrap_or_default(),
            xid_errors: keyed("xid_errors").into_iter().collect(),
            ecc_errors: serde_json::from_value::<BTreeMap<String, f64>>(body["ecc_errors"].clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| {
                    let (t, c) = k.split_once('/')?;
                    Some(((t.into(), c.into()), v))
                })
                .collect(),
            nvlink_up: serde_json::from_value::<BTreeMap<String, bool>>(body["nvlink_up"].clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                .collect(),
            nvlink_errors: keyed("nvlink_errors").into_iter().collect(),
            clock_events: serde_json::from_value(body["clock_events"].clone()).unwrap_or_default(),
        };
        o.gpus.insert(g.index, g);
    }
    (at != i64::MIN).then_some((o, at))
}

/// An event row as the rules see it: the same input the live path built from the agent's
/// event (`EventInput::from_event`).
pub fn event_input(e: &EventRow) -> EventInput {
    EventInput {
        seq: e.agent_seq,
        kind: e.kind.clone(),
        code: e.code,
        gpu: e.gpu.and_then(|g| u32::try_from(g).ok()),
        uuid: e.uuid.clone(),
        message: e.message.clone(),
        severity: e.severity.clone(),
        action: Some(e.action.clone()),
        source: e.source.clone(),
    }
}

#[derive(Default)]
struct Tally {
    hits: BTreeMap<String, (Verdict, usize, i64, i64, String)>,
    failures: BTreeMap<String, (usize, String)>,
}

impl Tally {
    fn add(&mut self, e: &Evaluation, at: i64) {
        for m in &e.matches {
            let h = self
                .hits
                .entry(m.rule.clone())
                .or_insert_with(|| (m.verdict, 0, at, at, m.detail.clone()));
            h.1 += 1;
            h.2 = h.2.min(at);
            h.3 = h.3.max(at);
        }
        for f in &e.failures {
            self.failures
                .entry(f.rule.clone())
                .or_insert_with(|| (0, f.error.clone()))
                .0 += 1;
        }
    }

    fn verdicts(&self) -> Verdicts {
        let mut rules: Vec<RuleHit> = self
            .hits
            .iter()
            .map(|(rule, (v, n, first, last, ex))| RuleHit {
                rule: rule.clone(),
                verdict: v.as_str().to_string(),
                hits: *n,
                first: rfc3339(*first),
                last: rfc3339(*last),
                example: ex.clone(),
            })
            .collect();
        rules.sort_by(|a, b| b.verdict.cmp(&a.verdict).then(a.rule.cmp(&b.rule)));
        let worst = self.hits.values().map(|h| h.0).max();
        Verdicts {
            verdict: worst.map_or("healthy", Verdict::as_str).to_string(),
            rules,
        }
    }
}

fn judge(p: &Policy, n: &NodeRecord, failures: &mut BTreeMap<String, (usize, String)>) -> Verdicts {
    let mut t = Tally::default();
    for e in &n.events {
        t.add(&p.eval_event(&event_input(e), &n.input), e.time);
    }
    if let Some((o, at)) = &n.observation {
        // It was scraped then, so it was online then.
        let input = NodeInput {
            connectivity: "online".into(),
            ..n.input.clone()
        };
        t.add(&p.eval_observation(o, None, &input), *at);
    }
    for (rule, (count, error)) in std::mem::take(&mut t.failures) {
        let f = failures.entry(rule).or_insert((0, error));
        f.0 += count;
    }
    t.verdicts()
}

fn count(c: &mut Counts, v: &str) {
    match v {
        "unhealthy" => c.unhealthy += 1,
        "degraded" => c.degraded += 1,
        _ => c.healthy += 1,
    }
}

/// Evaluates both policies over `nodes` (whose records already lie in `[since, until)`).
pub fn simulate(
    current: &Policy,
    candidate: &Policy,
    nodes: &[NodeRecord],
    since: i64,
    until: i64,
) -> Simulation {
    let mut out = Simulation {
        since: rfc3339(since),
        until: rfc3339(until),
        nodes_evaluated: nodes.len(),
        events_evaluated: nodes.iter().map(|n| n.events.len()).sum(),
        observations_evaluated: nodes.iter().filter(|n| n.observation.is_some()).count(),
        current: Counts::default(),
        candidate: Counts::default(),
        changed: 0,
        nodes: Vec::new(),
        failures: Vec::new(),
        notes: vec![
            "state rules are judged on each node's latest observation; their `for` durations are taken as held".into(),
            "rules on counter growth need two observations and do not fire here; the events cover those faults".into(),
            "a node with no observation in the window is judged on its events only (node rules such as node-offline need an observation)".into(),
        ],
    };
    let (mut fc, mut fk) = (BTreeMap::new(), BTreeMap::new());
    for n in nodes {
        let cur = judge(current, n, &mut fc);
        let cand = judge(candidate, n, &mut fk);
        count(&mut out.current, &cur.verdict);
        count(&mut out.candidate, &cand.verdict);
        let changed = cur.verdict != cand.verdict;
        out.changed += usize::from(changed);
        if cur.verdict != "healthy" || cand.verdict != "healthy" {
            out.nodes.push(NodeSimulation {
                id: n.id.clone(),
                name: n.input.name.clone(),
                pool: n.input.pool.clone(),
                current: cur,
                candidate: cand,
                changed,
            });
        }
    }
    out.nodes
        .sort_by(|a, b| b.changed.cmp(&a.changed).then(a.name.cmp(&b.name)));
    for (policy, map) in [("current", fc), ("candidate", fk)] {
        for (rule, (count, error)) in map {
            out.failures.push(SimFailure {
                policy: policy.into(),
                rule,
                count,
                error,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
