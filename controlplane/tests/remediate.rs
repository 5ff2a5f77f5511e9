//! Remediation and command delivery over a real store (SQLite file and PostgreSQL), with a
//! fake clock and a scripted agent (the rig here is shared by the other `remediate_*`
//! modules): the full plan walks cordon → drain → terminate one finished step at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gpuwarden_controlplane::act::deliver::{Deliver, Delivery, Dispatcher};
use gpuwarden_controlplane::act::remediate::Remediator;
use gpuwarden_controlplane::clock::FakeClock;
use gpuwarden_controlplane::config::{CommandsConfig, Plan, PoolRemediation, RemediationConfig};
use gpuwarden_controlplane::metrics::Metrics;
use gpuwarden_controlplane::model::Health;
use gpuwarden_controlplane::store::{Registration, Store, StoreOptions};
use gpuwarden_wire::command::{CommandRequest, CommandState as AgentState, CommandStatus};

use crate::util::{sqlite_store, Postgres, TempDir};

pub(crate) const T0: i64 = 1_800_000_000_000;

/// An agent that answers from a script per command kind, and counts what it was sent.
#[derive(Default)]
pub(crate) struct ScriptedAgent {
    /// Answers per kind, used in order; the last one repeats.
    pub(crate) script: Mutex<HashMap<String, VecDeque<Delivery>>>,
    /// Every delivery: (address, credential, command id, kind).
    pub(crate) seen: Mutex<Vec<(String, String, String, String)>>,
    /// When set, every delivery fails as unreachable.
    pub(crate) down: Mutex<bool>,
}

pub(crate) fn answer(id: &str, kind: &str, state: AgentState, message: &str) -> Delivery {
    Delivery::Answered(CommandStatus {
        id: id.into(),
        kind: kind.into(),
        state,
        message: message.into(),
        result: serde_json::json!({"hook": {"exit": 0}}),
        received_at: "2027-01-15T08:00:00Z".into(),
        finished_at: None,
    })
}

impl ScriptedAgent {
    pub(crate) fn script(&self, kind: &str, states: &[AgentState]) {
        let mut s = self.script.lock().unwrap();
        s.insert(
            kind.into(),
            states
                .iter()
                .map(|st| answer("", kind, *st, &format!("{kind} {}", st.as_str())))
                .collect(),
        );
    }
    pub(crate) fn kinds_seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.3.clone())
            .collect()
    }
}

impl Deliver for ScriptedAgent {
    fn send(&self, address: &str, credential: &str, req: &CommandRequest) -> Delivery {
        self.seen.lock().unwrap().push((
            address.into(),
            credential.into(),
            req.id.clone(),
            req.kind.clone(),
        ));
        if *self.down.lock().unwrap() {
            return Delivery::Retry("connection refused".into());
        }
        let mut s = self.script.lock().unwrap();
        let q = s.entry(req.kind.clone()).or_default();
        let next = if q.len() > 1 {
            q.pop_front()
        } else {
            q.front().cloned()
        };
        match next.unwrap_or_else(|| answer("", &req.kind, AgentState::Succeeded, "ok")) {
            Delivery::Answered(mut st) => {
                st.id = req.id.clone();
                Delivery::Answered(st)
            }
            other => other,
        }
    }
}

pub(crate) struct Rig {
    pub(crate) clock: FakeClock,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) remediator: Remediator,
}

pub(crate) fn rig(
    store: Arc<Store>,
    clock: FakeClock,
    agent: Arc<ScriptedAgent>,
    plan: Plan,
) -> Rig {
    let metrics = Metrics::new();
    let cfg = CommandsConfig {
        poll_interval: Duration::from_secs(2),
        retry_max: Duration::from_secs(60),
        ..CommandsConfig::default()
    };
    let dispatcher = Dispatcher::new(
        store.clone(),
        Arc::new(clock.clone()),
        cfg,
        agent.clone(),
        metrics.clone(),
        Default::default(),
    );
    let remediator = Remediator::new(
        store.clone(),
        Arc::new(clock.clone()),
        RemediationConfig {
            action: plan,
            drain_timeout: Duration::from_secs(600),
            pools: [(
                "canary".to_string(),
                PoolRemediation {
                    action: Some(Plan::Nothing),
                    drain_timeout: None,
                },
            )]
            .into(),
        },
        metrics,
        Default::default(),
        dispatcher.wake.clone(),
        dispatcher.ended.clone(),
    );
    Rig {
        clock,
        dispatcher,
        remediator,
    }
}

pub(crate) fn register(s: &Store, name: &str, pool: Option<&str>, now: i64) -> String {
    s.register(&Registration {
        new_id: format!("node-{name}"),
        name: name.into(),
        pool: pool.map(str::to_string),
        labels: Default::default(),
        address: format!("http://{name}:9410"),
        capabilities: "{}".into(),
        token_digest: format!("digest-of-{name}"),
        token_expires: None,
        actor: "bootstrap".into(),
        bootstrap: false,
        now,
    })
    .unwrap()
    .node
    .id
}

/// Registers `name`, makes it unhealthy, takes one remediation pass and one delivery, and
/// returns its newest command.
pub(crate) fn first_step(
    r: &Rig,
    store: &Store,
    name: &str,
) -> gpuwarden_controlplane::model::Command {
    let id = register(store, name, None, T0);
    store
        .set_health(&id, Health::Unhealthy, "x", "policy:x", T0)
        .unwrap();
    r.remediator.run_once();
    r.dispatcher.run_once();
    store
        .commands(&id, 1)
        .unwrap()
        .remove(0)
        .to_model()
        .unwrap()
}

pub(crate) fn status(s: &Store, id: &str) -> String {
    s.node(id).unwrap().status
}

fn run_full_plan(store: Arc<Store>) {
    let clock = FakeClock::at(T0);
    let agent = Arc::new(ScriptedAgent::default());
    let r = rig(
        store.clone(),
        clock.clone(),
        agent.clone(),
        Plan::CordonDrainTerminate,
    );
    let id = register(&store, "gpu-a", None, T0);
    let canary = register(&store, "gpu-c", Some("canary"), T0);
    assert_eq!(r.remediator.run_once(), 0, "healthy nodes are left alone");

    for n in [&id, &canary] {
        store
            .set_health(
                n,
                Health::Unhealthy,
                "fatal-xid: XID 79 on GPU 0",
                "policy:fatal-xid",
                T0,
            )
            .unwrap();
    }
    // Cordon: stored with its transition and audit entry; the canary pool's plan is nothing.
    assert_eq!(r.remediator.run_once(), 1);
    assert_eq!(status(&store, &id), "cordoned");
    assert_eq!(status(&store, &canary), "active");
    assert_eq!(
        r.remediator.run_once(),
        0,
        "no second cordon while the first is pending"
    );
    let cmds = store.commands(&id, 10).unwrap();
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0].requested_by, "remediation");
    assert!(cmds[0].params.contains("XID 79"), "{}", cmds[0].params);

    // Delivered with the node's address and the digest of its token.
    assert_eq!(r.dispatcher.run_once(), 1);
    let seen = agent.seen.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.0.as_str(), seen.1.as_str()),
        ("http://gpu-a:9410", "digest-of-gpu-a")
    );
    assert_eq!(store.command(&cmds[0].id).unwrap().state, "succeeded");

    // Drain: the agent is at it for two polls, then done.
    agent.script(
        "drain",
        &[
            AgentState::Running,
            AgentState::Running,
            AgentState::Succeeded,
        ],
    );
    assert_eq!(r.remediator.run_once(), 1);
    assert_eq!(status(&store, &id), "draining");
    let drain = store
        .commands(&id, 10)
        .unwrap()
        .into_iter()
        .find(|c| c.kind == "drain")
        .expect("a drain command");
    assert!(
        drain.params.contains("\"timeout\":\"10m\""),
        "{}",
        drain.params
    );
    r.dispatcher.run_once();
    assert_eq!(store.command(&drain.id).unwrap().state, "running");
    assert_eq!(
        r.dispatcher.run_once(),
        0,
        "a running command is asked again only after the poll interval"
    );
    assert_eq!(r.remediator.run_once(), 0, "no terminate while draining");
    for _ in 0..2 {
        r.clock.advance(2_000);
        assert_eq!(r.dispatcher.run_once(), 1);
    }
    assert_eq!(store.command(&drain.id).unwrap().state, "succeeded");
    assert_eq!(
        status(&store, &id),
        "cordoned",
        "a finished drain leaves the node cordoned, not draining"
    );

    // Terminate, and the node is terminated once the agent says the hook ran.
    assert_eq!(r.remediator.run_once(), 1);
    assert_eq!(status(&store, &id), "terminating");
    r.dispatcher.run_once();
    assert_eq!(status(&store, &id), "terminated");
    assert_eq!(r.remediator.run_once(), 0);
    assert_eq!(
        agent.kinds_seen(),
        ["cordon", "drain", "drain", "drain", "terminate"]
    );

    // Every step is in the history and the audit log, with who and why.
    let history: Vec<(String, String)> = store
        .transitions(&id, 20)
        .unwrap()
        .into_iter()
        .filter(|t| t.field == "status")
        .map(|t| (t.to_state, t.actor))
        .collect();
    assert_eq!(
        history,
        [
            ("terminated".to_string(), "agent".to_string()),
            ("terminating".into(), "remediation".into()),
            ("cordoned".into(), "agent".into()),
            ("draining".into(), "remediation".into()),
            ("cordoned".into(), "remediation".into()),
            ("active".into(), "agent".into()),
        ]
    );
    let actions: Vec<String> = store
        .audit_log(50)
        .unwrap()
        .into_iter()
        .filter(|a| a.target == id)
        .map(|a| format!("{} {}", a.actor, a.action))
        .collect();
    for want in [
        "remediation node.cordon",
        "remediation node.drain",
        "remediation node.terminate",
        "agent command.succeeded",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want} missing from {actions:?}"
        );
    }
}

#[test]
fn the_full_plan_runs_to_terminated_on_sqlite() {
    let dir = TempDir::new("remediate");
    run_full_plan(Arc::new(sqlite_store(&dir)));
}

#[test]
fn the_full_plan_runs_to_terminated_on_postgres() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("gw_remediate");
    run_full_plan(Arc::new(
        Store::open(&url, &StoreOptions::default()).unwrap(),
    ));
}
