//! What a simulation saw, and its JSON report: per fault, when each node it touched was
//! judged and remediated; nodes judged unhealthy that no fault explains (false positives);
//! each expectation's result.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

/// One node as `GET /v1/nodes` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `healthy`, `degraded`, `unhealthy`, `unknown`.
    pub health: String,
    /// Lifecycle status.
    pub status: String,
    /// `online`, `offline`, `unknown`.
    pub connectivity: String,
    /// Its pool (empty: none).
    pub pool: String,
    /// Its agent's base URL, when known.
    pub address: Option<String>,
    /// Its labels (`rack`, `zone`, …).
    pub labels: BTreeMap<String, String>,
    /// Held by the remediation budget.
    pub held: bool,
}

/// The nodes of `GET /v1/nodes` pages, by name.
pub fn read_nodes(pages: &[Value]) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    for page in pages {
        for n in page["nodes"].as_array().into_iter().flatten() {
            let s = |k: &str| n[k].as_str().unwrap_or("unknown").to_string();
            let labels = n["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(
                s("name"),
                Seen {
                    health: s("health"),
                    status: s("status"),
                    connectivity: s("connectivity"),
                    pool: n["pool"].as_str().unwrap_or("").to_string(),
                    address: n["address"].as_str().map(str::to_string),
                    labels,
                    held: !n["held"].is_null(),
                },
            );
        }
    }
    out
}

/// The first time (ms after the start) each node was seen in each health and status.
#[derive(Debug, Default)]
pub struct Timeline {
    first: BTreeMap<String, BTreeMap<String, u64>>,
    pools: BTreeMap<String, String>,
}

impl Timeline {
    /// Records a look at `now_ms`.
    pub fn observe(&mut self, now_ms: u64, nodes: &BTreeMap<String, Seen>) {
        for (name, s) in nodes {
            if !s.pool.is_empty() && !self.pools.contains_key(name) {
                self.pools.insert(name.clone(), s.pool.clone());
            }
            let t = self.first.entry(name.clone()).or_default();
            t.entry("seen".into()).or_insert(now_ms);
            for key in [
                format!("health:{}", s.health),
                format!("status:{}", s.status),
                format!("connectivity:{}", s.connectivity),
            ] {
                t.entry(key).or_insert(now_ms);
            }
        }
    }

    /// Nodes of `pools` seen.
    pub fn pool_nodes(&self, pools: &BTreeSet<&str>) -> usize {
        self.pools
            .values()
            .filter(|p| pools.contains(p.as_str()))
            .count()
    }

    /// When a node of `name`'s pool, first seen after `since`, was first seen online at
    /// or after `from` (ms); `None` for a node of no pool, or none came.
    fn replacement(&self, name: &str, since: u64, from: u64) -> Option<u64> {
        let pool = self.pools.get(name)?;
        self.pools
            .iter()
            .filter(|(other, p)| *p == pool && *other != name)
            .filter_map(|(other, _)| {
                let t = self.first.get(other)?;
                let seen = *t.get("seen")?;
                (seen > since).then_some(())?;
                t.get("connectivity:online").copied()
            })
            .filter(|t| *t >= from)
            .min()
    }

    /// When node `name` was first seen with `key` (`health:unhealthy`, `status:cordoned`),
    /// at or after `from` ms; `None` if never.
    fn first(&self, name: &str, key: &str, from: u64) -> Option<u64> {
        self.first
            .get(name)
            .and_then(|t| t.get(key))
            .copied()
            .filter(|t| *t >= from)
    }
}

/// A fault as injected.
#[derive(Debug, Clone, Serialize)]
pub struct Injected {
    /// When (s after the start), as planned.
    pub at_s: f64,
    /// When its injection began (s after the start).
    pub injected_s: f64,
    /// `node:NAME`, `rack:R` or `zone:Z`.
    pub target: String,
    /// The fault and its parameters, as sent to `/v1/fake/inject`.
    pub fault: Value,
    /// Must not condemn a node.
    pub benign: bool,
    /// The nodes it reached (the report lists their names as `nodes`), each with when it
    /// was injected (ms after the start): a rack's nodes are injected a few at a time, and
    /// each node's latency counts from its own injection.
    #[serde(rename = "nodes", serialize_with = "names")]
    pub reached: BTreeMap<String, u64>,
    /// Injections refused (node and reason).
    pub errors: Vec<String>,
    /// Drawn by `[chaos]`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub chaos: bool,
}

/// A map's keys as a JSON list.
fn names<S: serde::Serializer>(m: &BTreeMap<String, u64>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(m.keys())
}

/// One node's outcome of one fault.
#[derive(Debug, Clone, Serialize)]
pub struct NodeOutcome {
    /// The node.
    pub node: String,
    /// Fault → the node judged `degraded` or `unhealthy` (s), when it was; for
    /// `agent_down`, fault → seen `offline`.
    pub detected_s: Option<f64>,
    /// Its verdict then (`offline` for `agent_down`).
    pub verdict: Option<String>,
    /// Verdict → cordoned (s).
    pub cordoned_s: Option<f64>,
    /// Verdict → draining (s).
    pub draining_s: Option<f64>,
    /// Verdict → terminated (s).
    pub terminated_s: Option<f64>,
    /// Verdict → a new node of its (managed) pool online (s): its replacement, or the
    /// pool grown back.
    pub replaced_s: Option<f64>,
}

/// One fault with its outcomes.
#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    /// The fault.
    #[serde(flatten)]
    pub injected: Injected,
    /// Per node it reached.
    pub outcomes: Vec<NodeOutcome>,
}

/// One expectation's result.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectReport {
    /// When (s after the start).
    pub at_s: f64,
    /// What was expected.
    pub what: String,
    /// Whether it held.
    pub passed: bool,
    /// What was seen.
    pub observed: String,
}

/// A node judged unhealthy without a non-benign fault on it.
#[derive(Debug, Clone, Serialize)]
pub struct FalsePositive {
    /// The node.
    pub node: String,
    /// First seen unhealthy (s after the start).
    pub at_s: f64,
}

/// The report (`--report FILE`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// The seed used.
    pub seed: u64,
    /// Simulated nodes of the `[[fleet]]` templates.
    pub nodes: usize,
    /// Nodes of the `[[pools]]` seen over the run (replacements included).
    pub pool_nodes: usize,
    /// Fleet online after the start of its process (s).
    pub online_after_s: f64,
    /// Scenario time run (s).
    pub duration_s: f64,
    /// Faults with outcomes.
    pub faults: Vec<FaultReport>,
    /// False positives.
    pub false_positives: Vec<FalsePositive>,
    /// Expectations.
    pub expectations: Vec<ExpectReport>,
    /// Every expectation held (and every fault was injected).
    pub passed: bool,
    /// Detection latency over every node a non-benign fault reached (s): p50, max; `None`
    /// when none was detected.
    pub detection_p50_s: Option<f64>,
    /// The largest detection latency (s).
    pub detection_max_s: Option<f64>,
    /// How often the fleet was read (s): every latency is up to this late.
    pub look_s: f64,
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The outcomes of each fault, and the false positives: nodes seen unhealthy that no
/// non-benign fault reached before.
pub fn outcomes(
    injected: &[Injected],
    timeline: &Timeline,
) -> (Vec<FaultReport>, Vec<FalsePositive>) {
    let mut faulted: BTreeMap<&str, u64> = BTreeMap::new();
    for f in injected.iter().filter(|f| !f.benign) {
        for (n, &at) in &f.reached {
            faulted
                .entry(n.as_str())
                .and_modify(|t| *t = (*t).min(at))
                .or_insert(at);
        }
    }
    let faults = injected
        .iter()
        .map(|f| {
            let outcomes = f
                .reached
                .iter()
                .map(|(n, &at)| {
                    let signs: &[&str] = if f.fault["fault"] == "agent_down" {
                        &["connectivity:offline"]
                    } else {
                        &["health:unhealthy", "health:degraded"]
                    };
                    let verdict = signs
                        .iter()
                        .filter_map(|key| {
                            timeline
                                .first(n, key, at)
                                .map(|t| (t, key.split(':').nth(1).unwrap_or(key)))
                        })
                        .min();
                    let after = |key: &str| {
                        verdict.and_then(|(v, _)| {
                            timeline.first(n, key, v).map(|t| secs(t.saturating_sub(v)))
                        })
                    };
                    NodeOutcome {
                        node: n.clone(),
                        detected_s: verdict.map(|(t, _)| secs(t - at)),
                        verdict: verdict.map(|(_, h)| h.to_string()),
                        cordoned_s: after("status:cordoned"),
                        draining_s: after("status:draining"),
                        terminated_s: after("status:terminated"),
                        replaced_s: verdict
                            .and_then(|(v, _)| timeline.replacement(n, at, v).map(|t| secs(t - v))),
                    }
                })
                .collect();
            FaultReport {
                injected: f.clone(),
                outcomes,
            }
        })
        .collect();
    let mut false_positives = Vec::new();
    for (node, t) in &timeline.first {
        if let Some(&at) = t.get("health:unhealthy") {
            let explained = faulted.get(node.as_str()).is_some_and(|f| *f <= at);
            if !explained {
                false_positives.push(FalsePositive {
                    node: node.clone(),
                    at_s: secs(at),
                });
            }
        }
    }
    (faults, false_positives)
}

/// p50 and max of the detection latencies of non-benign faults.
pub fn detection(faults: &[FaultReport]) -> (Option<f64>, Option<f64>) {
    let mut d: Vec<f64> = faults
        .iter()
        .filter(|f| !f.injected.benign)
        .flat_map(|f| f.outcomes.iter().filter_map(|o| o.detected_s))
        .collect();
    d.sort_by(f64::total_cmp);
    (d.get(d.len() / 2).copied(), d.last().copied())
}

/// Nodes a non-benign fault reached (for `unhealthy_outside_faulted`).
pub fn faulted(injected: &[Injected]) -> BTreeSet<String> {
    injected
        .iter()
        .filter(|f| !f.benign)
        .flat_map(|f| f.reached.keys().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(h: &str, s: &str) -> Seen {
        Seen {
            health: h.into(),
            status: s.into(),
            connectivity: "online".into(),
            pool: String::new(),
            address: None,
            labels: BTreeMap::new(),
            held: false,
        }
    }

    /// Latencies run from the injection to the verdict, and from the verdict to each
    /// remediation step; an unhealthy node no fault reached is a false positive, and one a
    /// benign fault reached is one too.
    #[test]
    fn latencies_and_false_positives_are_counted_from_the_right_moments() {
        let mut t = Timeline::default();
        let look = |t: &mut Timeline, ms: u64, list: &[(&str, &str, &str)]| {
            let nodes = list
                .iter()
                .map(|(n, h, s)| (n.to_string(), seen(h, s)))
                .collect();
            t.observe(ms, &nodes);
        };
        look(
            &mut t,
            0,
            &[
                ("a", "healthy", "active"),
                ("b", "healthy", "active"),
                ("c", "healthy", "active"),
            ],
        );
        look(
            &mut t,
            1_500,
            &[
                ("a", "unhealthy", "active"),
                ("b", "healthy", "active"),
                ("c", "healthy", "active"),
            ],
        );
        look(
            &mut t,
            2_000,
            &[
                ("a", "unhealthy", "cordoned"),
                ("b", "healthy", "active"),
                ("c", "unhealthy", "active"),
            ],
        );
        look(
            &mut t,
            4_000,
            &[
                ("a", "unhealthy", "draining"),
                ("b", "healthy", "active"),
                ("c", "unhealthy", "active"),
            ],
        );
        let inj = |node: &str, at: f64, benign: bool| Injected {
            at_s: at,
            injected_s: at,
            target: format!("node:{node}"),
            fault: serde_json::json!({"fault": "xid"}),
            benign,
            reached: [(node.to_string(), (at * 1000.0) as u64)].into(),
            errors: vec![],
            chaos: false,
        };
        let mut a = inj("a", 1.0, false);
        // Its own injection came 200 ms after the fault's began (a rack, a few at a time).
        a.reached.insert("a".into(), 1_200);
        let injected = vec![a, inj("c", 1.0, true)];
        let (faults, fps) = outcomes(&injected, &t);
        let a = &faults[0].outcomes[0];
        assert_eq!(a.detected_s, Some(0.3), "from its own injection");
        assert_eq!(a.verdict.as_deref(), Some("unhealthy"));
        assert_eq!(a.cordoned_s, Some(0.5));
        assert_eq!(a.draining_s, Some(2.5));
        assert_eq!(a.terminated_s, None);
        assert_eq!(fps.len(), 1);
        assert_eq!((fps[0].node.as_str(), fps[0].at_s), ("c", 2.0));
        assert_eq!(detection(&faults), (Some(0.3), Some(0.3)));
        assert_eq!(faulted(&injected), ["a".to_string()].into());
    }
}
