//! What the demo watches: the pool's nodes and instances as the REST API shows them, the
//! changes between two looks, and the demo's phases (pool up → fault → replaced).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

/// One node, as the live view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    /// Node name.
    pub name: String,
    /// Lifecycle: `pending`, `active`, `cordoned`, `draining`, `drained`, `terminated` …
    pub status: String,
    /// `healthy`, `degraded`, `unhealthy` or `unknown`.
    pub health: String,
    /// Why, when not healthy (the rule and its reason).
    pub reason: String,
    /// `online`, `offline` or `unknown`.
    pub connectivity: String,
    /// GPUs the agent reports.
    pub gpus: usize,
    /// The remediation budget's hold, when held.
    pub held: Option<String>,
    /// The agent's URL.
    pub address: String,
    /// The instance that runs it.
    pub instance: String,
}

/// The pool, its nodes and instances at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Nodes by name.
    pub nodes: BTreeMap<String, NodeLine>,
    /// Instance id → state.
    pub instances: BTreeMap<String, String>,
    /// The pool's node count (all but terminated).
    pub pool_nodes: i64,
    /// The pool's target.
    pub target: u64,
    /// `ok`, `degraded` or `error`.
    pub pool_status: String,
    /// The pool's last error.
    pub pool_error: String,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_string()
}

impl Snapshot {
    /// From the answers of `GET /v1/nodes?pool=…`, `GET /v1/pools/{name}` and
    /// `GET /v1/instances?pool=…`.
    pub fn read(nodes: &Value, pool: &Value, instances: &Value) -> Snapshot {
        let mut s = Snapshot {
            pool_nodes: pool["nodes"].as_i64().unwrap_or(0),
            target: pool["target"].as_u64().unwrap_or(0),
            pool_status: text(&pool["status"]),
            pool_error: pool["last_error"].as_str().unwrap_or("").to_string(),
            ..Snapshot::default()
        };
        for n in nodes["nodes"].as_array().into_iter().flatten() {
            let reason = match n["health_reason"].as_object() {
                Some(r) => format!(
                    "{}: {}",
                    r.get("rule").and_then(Value::as_str).unwrap_or("-"),
                    r.get("reason").and_then(Value::as_str).unwrap_or("")
                ),
                None => String::new(),
            };
            let line = NodeLine {
                name: text(&n["name"]),
                status: text(&n["status"]),
                health: text(&n["health"]),
                reason,
                connectivity: text(&n["connectivity"]),
                gpus: n["gpus"].as_array().map_or(0, Vec::len),
                held: n["held"].as_str().map(str::to_string),
                address: n["address"].as_str().unwrap_or("").to_string(),
                instance: n["instance_id"].as_str().unwrap_or("").to_string(),
            };
            s.nodes.insert(line.name.clone(), line);
        }
        for i in instances["instances"].as_array().into_iter().flatten() {
            s.instances.insert(text(&i["id"]), text(&i["state"]));
        }
        s
    }

    /// Nodes in service: active, healthy and online.
    pub fn serving(&self) -> Vec<&NodeLine> {
        self.nodes
            .values()
            .filter(|n| n.status == "active" && n.health == "healthy" && n.connectivity == "online")
            .collect()
    }

    /// Instances neither running nor ended: provisioning, registering, terminating.
    pub fn in_flight(&self) -> usize {
        self.instances
            .values()
            .filter(|s| matches!(s.as_str(), "provisioning" | "registering" | "terminating"))
            .count()
    }
}

/// One line per change from `before` to `now` (everything is new when there is no before).
pub fn changes(before: Option<&Snapshot>, now: &Snapshot) -> Vec<String> {
    let empty = Snapshot::default();
    let b = before.unwrap_or(&empty);
    let mut out = Vec::new();
    for (name, n) in &now.nodes {
        match b.nodes.get(name) {
            None => out.push(format!(
                "node {name} joined: {}, {}, {}",
                n.status, n.health, n.connectivity
            )),
            Some(o) => {
                if o.status != n.status {
                    out.push(format!("node {name}: {} → {}", o.status, n.status));
                }
                if o.health != n.health {
                    let why = if n.reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", n.reason)
                    };
                    out.push(format!("node {name}: {} → {}{why}", o.health, n.health));
                }
                if o.connectivity != n.connectivity {
                    out.push(format!(
                        "node {name}: {} → {}",
                        o.connectivity, n.connectivity
                    ));
                }
                if o.held != n.held {
                    match &n.held {
                        Some(r) => out.push(format!("node {name}: held by the budget ({r})")),
                        None => out.push(format!("node {name}: released from the budget's hold")),
                    }
                }
            }
        }
    }
    for (id, state) in &now.instances {
        match b.instances.get(id) {
            None => out.push(format!("instance {id}: {state}")),
            Some(o) if o != state => out.push(format!("instance {id}: {o} → {state}")),
            _ => {}
        }
    }
    if before.is_some() && (b.pool_nodes, b.target) != (now.pool_nodes, now.target) {
        out.push(format!(
            "pool: {} nodes, target {}",
            now.pool_nodes, now.target
        ));
    }
    if !now.pool_error.is_empty() && b.pool_error != now.pool_error {
        out.push(format!("pool error: {}", now.pool_error));
    }
    out
}

/// The fault the demo injects: XID 79 (the GPU fell off the bus) on GPU 0, as the agent's
/// fake backend takes it at `POST /v1/fake/inject`.
pub fn fatal_xid() -> Value {
    json!({"gpu": 0, "fault": "xid", "code": 79})
}

/// Where the demo is.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Waiting for the pool to be up: every node active, healthy and online.
    Starting,
    /// The pool is up since `at` (time since the demo started).
    Up {
        /// When it came up.
        at: Duration,
    },
    /// A fatal XID was injected into `node`.
    Faulted {
        /// The node.
        node: String,
        /// When.
        at: Duration,
    },
    /// The faulty node is terminated and the pool is back at size with healthy nodes.
    Replaced {
        /// One line saying so, with the times.
        summary: String,
    },
}

impl Phase {
    /// In words, for the view and a time-out's message.
    pub fn describe(&self) -> String {
        match self {
            Phase::Starting => "starting the pool".into(),
            Phase::Up { .. } => "pool up, about to inject a fatal XID".into(),
            Phase::Faulted { node, .. } => {
                format!("XID 79 injected into {node}: waiting for its replacement")
            }
            Phase::Replaced { summary } => summary.clone(),
        }
    }

    /// The next phase given `now`, for a pool of `want` nodes whose fault comes
    /// `fault_after` once it is up, `elapsed` into the demo; `inject` puts the fault into the
    /// agent at an address. Lines to say.
    pub fn advance(
        &self,
        now: &Snapshot,
        want: usize,
        fault_after: Duration,
        elapsed: Duration,
        inject: impl FnOnce(&str) -> Result<(), String>,
    ) -> (Phase, Vec<String>) {
        match self {
            Phase::Starting if now.serving().len() >= want => (
                Phase::Up { at: elapsed },
                vec![format!(
                    "pool up: {want} nodes active, healthy and online after {:.1}s; a fatal XID in {}s",
                    elapsed.as_secs_f64(),
                    fault_after.as_secs()
                )],
            ),
            Phase::Up { at } if elapsed >= *at + fault_after => {
                let Some(victim) = now.serving().first().map(|n| (*n).clone()) else {
                    return (Phase::Starting, vec!["the pool is no longer up".into()]);
                };
                match inject(&victim.address) {
                    Ok(()) => (
                        Phase::Faulted {
                            node: victim.name.clone(),
                            at: elapsed,
                        },
                        vec![format!(
                            "injected XID 79 (GPU fell off the bus) into {} GPU 0",
                            victim.name
                        )],
                    ),
                    Err(e) => (self.clone(), vec![format!("injecting the fault: {e}")]),
                }
            }
            Phase::Faulted { node, at } => {
                let gone = now.nodes.get(node).is_none_or(|n| n.status == "terminated");
                let serving = now.serving().iter().filter(|n| n.name != *node).count();
                if gone && serving >= want {
                    let summary = format!(
                        "done: {node} was replaced, drained and terminated; the pool is back at {want} healthy nodes {:.1}s after the fault",
                        (elapsed - *at).as_secs_f64()
                    );
                    (
                        Phase::Replaced {
                            summary: summary.clone(),
                        },
                        vec![summary],
                    )
                } else {
                    (self.clone(), Vec::new())
                }
            }
            _ => (self.clone(), Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, status: &str, health: &str, conn: &str) -> Value {
        json!({"name": name, "status": status, "health": health, "connectivity": conn,
               "gpus": [{}, {}], "address": "http://127.0.0.1:1", "instance_id": "i-1"})
    }

    fn snap(nodes: Vec<Value>, instances: Value) -> Snapshot {
        Snapshot::read(
            &json!({ "nodes": nodes }),
            &json!({"nodes": 2, "target": 2, "status": "ok"}),
            &json!({ "instances": instances }),
        )
    }

    #[test]
    fn changes_name_each_move_of_a_node_and_an_instance() {
        let a = snap(
            vec![node("n1", "active", "healthy", "online")],
            json!([{"id": "i-1", "state": "running"}]),
        );
        let mut bad = node("n1", "cordoned", "unhealthy", "online");
        bad["health_reason"] = json!({"rule": "fatal-xid", "reason": "XID 79"});
        let b = snap(
            vec![bad, node("n2", "pending", "unknown", "unknown")],
            json!([{"id": "i-1", "state": "running"}, {"id": "i-2", "state": "provisioning"}]),
        );
        let lines = changes(Some(&a), &b);
        assert_eq!(
            lines,
            vec![
                "node n1: active → cordoned",
                "node n1: healthy → unhealthy (fatal-xid: XID 79)",
                "node n2 joined: pending, unknown, unknown",
                "instance i-2: provisioning",
            ]
        );
        assert!(changes(Some(&b), &b).is_empty(), "no change, no line");
        assert_eq!(
            changes(None, &a).len(),
            2,
            "the first look names everything"
        );
    }

    #[test]
    fn only_active_healthy_online_nodes_serve() {
        let s = snap(
            vec![
                node("a", "active", "healthy", "online"),
                node("b", "cordoned", "healthy", "online"),
                node("c", "active", "unhealthy", "online"),
                node("d", "active", "healthy", "offline"),
            ],
            json!([{"id": "1", "state": "registering"}, {"id": "2", "state": "running"}]),
        );
        let names: Vec<&str> = s.serving().iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a"]);
        assert_eq!(s.in_flight(), 1);
    }

    #[test]
    fn the_phases_go_up_fault_and_replaced_only_when_the_pool_is_back() {
        let up = snap(
            vec![
                node("a", "active", "healthy", "online"),
                node("b", "active", "healthy", "online"),
            ],
            json!([]),
        );
        let secs = Duration::from_secs;
        let no_inject = |_: &str| -> Result<(), String> { panic!("no fault yet") };
        // Not up with one node of two.
        let one = snap(vec![node("a", "active", "healthy", "online")], json!([]));
        let (p, _) = Phase::Starting.advance(&one, 2, secs(5), secs(1), no_inject);
        assert!(matches!(p, Phase::Starting));
        let (p, said) = Phase::Starting.advance(&up, 2, secs(5), secs(2), no_inject);
        assert!(matches!(p, Phase::Up { at } if at == secs(2)), "{said:?}");
        // The fault waits for fault_after, then goes to the first serving node's address.
        let (p, _) = p.advance(&up, 2, secs(5), secs(6), no_inject);
        assert!(matches!(p, Phase::Up { .. }));
        let mut hit = None;
        let (p, _) = p.advance(&up, 2, secs(5), secs(7), |addr| {
            hit = Some(addr.to_string());
            Ok(())
        });
        assert_eq!(hit.as_deref(), Some("http://127.0.0.1:1"));
        assert!(matches!(&p, Phase::Faulted { node, .. } if node == "a"));
        // The bad node cordoned and a replacement joining: not done.
        let mid = snap(
            vec![
                node("a", "cordoned", "unhealthy", "online"),
                node("b", "active", "healthy", "online"),
                node("c", "active", "unknown", "offline"),
            ],
            json!([]),
        );
        let (p, _) = p.advance(&mid, 2, secs(5), secs(8), no_inject);
        assert!(matches!(p, Phase::Faulted { .. }));
        // A replacement serving but the bad node not terminated yet: not done either.
        let both = snap(
            vec![
                node("a", "draining", "unhealthy", "online"),
                node("b", "active", "healthy", "online"),
                node("c", "active", "healthy", "online"),
            ],
            json!([]),
        );
        let (p, _) = p.advance(&both, 2, secs(5), secs(9), no_inject);
        assert!(matches!(p, Phase::Faulted { .. }));
        let done = snap(
            vec![
                node("a", "terminated", "unhealthy", "offline"),
                node("b", "active", "healthy", "online"),
                node("c", "active", "healthy", "online"),
            ],
            json!([]),
        );
        let (p, said) = p.advance(&done, 2, secs(5), secs(10), no_inject);
        assert!(matches!(p, Phase::Replaced { .. }), "{said:?}");
        assert!(said[0].contains("3.0s after the fault"), "{said:?}");
    }
}
