//! Remediation and command delivery over a real store (SQLite file and PostgreSQL), with a
//! fake clock and a scripted agent: the plan walks cordon → drain → terminate one finished
//! step at a time, an unreachable agent gets its command once it is back, a restarted
//! control plane carries on, and commands nobody can take fail with a reason.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gpuwarden_controlplane::act::deliver::{Deliver, Delivery, Dispatcher};
use gpuwarden_controlplane::act::remediate::Remediator;
use gpuwarden_controlplane::clock::{Clock, FakeClock};
use gpuwarden_controlplane::config::{CommandsConfig, Plan, PoolRemediation, RemediationConfig};
use gpuwarden_controlplane::metrics::Metrics;
use gpuwarden_controlplane::model::{CommandState, Health};
use gpuwarden_controlplane::store::{Registration, Store, StoreOptions};
use gpuwarden_wire::command::{CommandRequest, CommandState as AgentState, CommandStatus};

use crate::util::{sqlite_store, Postgres, TempDir};

const T0: i64 = 1_800_000_000_000;

/// An agent that answers from a script per command kind, and counts what it was sent.
#[derive(Default)]
struct ScriptedAgent {
    /// Answers per kind, used in order; the last one repeats.
    script: Mutex<HashMap<String, VecDeque<Delivery>>>,
    /// Every delivery: (address, credential, command id, kind).
    seen: Mutex<Vec<(String, String, String, String)>>,
    /// When set, every delivery fails as unreachable.
    down: Mutex<bool>,
}

fn answer(id: &str, kind: &str, state: AgentState, message: &str) -> Delivery {
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
    fn script(&self, kind: &str, states: &[AgentState]) {
        let mut s = self.script.lock().unwrap();
        s.insert(
            kind.into(),
            states
                .iter()
                .map(|st| answer("", kind, *st, &format!("{kind} {}", st.as_str())))
                .collect(),
        );
    }
    fn kinds_seen(&self) -> Vec<String> {
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

struct Rig {
    clock: FakeClock,
    dispatcher: Dispatcher,
    remediator: Remediator,
}

fn rig(store: Arc<Store>, clock: FakeClock, agent: Arc<ScriptedAgent>, plan: Plan) -> Rig {
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

fn register(s: &Store, name: &str, pool: Option<&str>, now: i64) -> String {
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
fn first_step(r: &Rig, store: &Store, name: &str) -> gpuwarden_controlplane::model::Command {
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

fn status(s: &Store, id: &str) -> String {
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

#[test]
fn an_unreachable_agent_gets_its_command_once_it_is_back_and_a_restart_carries_on() {
    let dir = TempDir::new("remediate-down");
    let store = Arc::new(sqlite_store(&dir));
    let clock = FakeClock::at(T0);
    let agent = Arc::new(ScriptedAgent::default());
    let r = rig(
        store.clone(),
        clock.clone(),
        agent.clone(),
        Plan::CordonDrain,
    );
    let id = register(&store, "gpu-b", None, T0);
    store
        .set_health(
            &id,
            Health::Unhealthy,
            "ecc-double-bit",
            "policy:ecc-double-bit",
            T0,
        )
        .unwrap();
    r.remediator.run_once();
    *agent.down.lock().unwrap() = true;
    // Backoff: each attempt waits longer; nothing is tried before it is due.
    let mut waits = Vec::new();
    for _ in 0..5 {
        assert_eq!(r.dispatcher.run_once(), 1);
        let c = store.commands(&id, 1).unwrap().remove(0);
        assert_eq!(c.state, "pending");
        assert!(c
            .result
            .as_deref()
            .unwrap_or("")
            .contains("connection refused"));
        let wait = c.next_attempt_at - r.clock.now_ms();
        assert_eq!(r.dispatcher.run_once(), 0, "not due yet");
        waits.push(wait);
        r.clock.advance(wait);
    }
    assert!(
        waits.windows(2).all(|w| w[1] > w[0]),
        "backoff grows: {waits:?}"
    );
    assert_eq!(store.commands(&id, 1).unwrap()[0].attempts, 5);

    // The control plane restarts (new dispatcher and remediator over the same database)
    // and the agent comes back: the cordon is delivered, once, and the plan goes on.
    drop(r);
    *agent.down.lock().unwrap() = false;
    let r = rig(
        store.clone(),
        clock.clone(),
        agent.clone(),
        Plan::CordonDrain,
    );
    r.clock.advance(120_000);
    assert_eq!(r.dispatcher.run_once(), 1);
    assert_eq!(
        r.dispatcher.run_once(),
        0,
        "a delivered command is not sent again"
    );
    assert_eq!(r.remediator.run_once(), 1);
    assert_eq!(status(&store, &id), "draining");
    r.dispatcher.run_once();
    assert_eq!(status(&store, &id), "cordoned", "the drain ended");
    assert_eq!(
        r.remediator.run_once(),
        0,
        "cordon_drain stops after the drain: no second drain from cordoned"
    );
    let kinds = agent.kinds_seen();
    assert_eq!(
        kinds.iter().filter(|k| *k == "cordon").count(),
        6,
        "5 failed attempts + 1"
    );
    assert_eq!(kinds.last().map(String::as_str), Some("drain"));
}

#[test]
fn failures_and_operators_stop_the_plan_and_undeliverable_commands_fail_with_a_reason() {
    let dir = TempDir::new("remediate-stop");
    let store = Arc::new(sqlite_store(&dir));
    let clock = FakeClock::at(T0);
    let agent = Arc::new(ScriptedAgent::default());
    let r = rig(
        store.clone(),
        clock.clone(),
        agent.clone(),
        Plan::CordonDrainTerminate,
    );

    // The cordon hook fails: no drain follows.
    agent.script("cordon", &[AgentState::Failed]);
    let c = first_step(&r, &store, "gpu-f");
    assert_eq!(c.state, CommandState::Failed);
    assert_eq!(c.message.as_deref(), Some("cordon failed"));
    assert_eq!(r.remediator.run_once(), 0);
    assert_eq!(r.remediator.run_once(), 0, "a stopped node stays stopped");
    assert_eq!(status(&store, &c.node_id), "cordoned");
    // Fixed, cleared, and unhealthy again later: a new episode, and the plan goes on from
    // where the node is (cordoned: drain next).
    store
        .set_health(
            &c.node_id,
            Health::Healthy,
            "cleared",
            "admin:test",
            T0 + 60_000,
        )
        .unwrap();
    store
        .set_health(&c.node_id, Health::Unhealthy, "x", "policy:x", T0 + 120_000)
        .unwrap();
    r.clock.advance(120_000);
    assert_eq!(r.remediator.run_once(), 1);
    assert_eq!(status(&store, &c.node_id), "draining");

    // The agent refuses a command for good: failed with its reason, not retried.
    let refusing = Arc::new(ScriptedAgent::default());
    refusing.script("cordon", &[AgentState::Succeeded]);
    {
        let mut s = refusing.script.lock().unwrap();
        s.insert(
            "cordon".into(),
            [Delivery::Refused(
                409,
                "command cmd-x was received before as a drain".into(),
            )]
            .into(),
        );
    }
    let r2 = rig(store.clone(), clock.clone(), refusing.clone(), Plan::Cordon);
    let c = first_step(&r2, &store, "gpu-g");
    assert_eq!(c.state, CommandState::Failed);
    assert!(c
        .message
        .unwrap()
        .contains("refused the command (HTTP 409)"));

    // An agent that never comes back: the command expires.
    let down = Arc::new(ScriptedAgent::default());
    *down.down.lock().unwrap() = true;
    let r3 = rig(store.clone(), clock.clone(), down, Plan::Cordon);
    let pending = first_step(&r3, &store, "gpu-h");
    assert_eq!(pending.state, CommandState::Pending);
    r3.clock.advance(25 * 3_600_000);
    r3.dispatcher.run_once();
    let c = store.command(&pending.id).unwrap().to_model().unwrap();
    assert_eq!(c.state, CommandState::Failed);
    let m = c.message.unwrap();
    assert!(m.starts_with("not delivered within 1day"), "{m}");
    assert!(m.contains("connection refused"), "{m}");
}

#[test]
fn a_failed_terminate_or_drain_leaves_the_node_cordoned_where_the_operator_can_act() {
    let dir = TempDir::new("remediate-ends");
    let store = Arc::new(sqlite_store(&dir));
    let clock = FakeClock::at(T0);
    let agent = Arc::new(ScriptedAgent::default());
    let r = rig(store.clone(), clock.clone(), agent.clone(), Plan::Nothing);
    let id = register(&store, "gpu-t", None, T0);
    let step = |s: gpuwarden_controlplane::model::lifecycle::Step, cmd: &str| {
        let c = gpuwarden_controlplane::store::rows::CommandRow::pending(
            cmd.into(),
            &id,
            match s {
                gpuwarden_controlplane::model::lifecycle::Step::Drain => {
                    gpuwarden_controlplane::model::CommandKind::Drain
                }
                _ => gpuwarden_controlplane::model::CommandKind::Terminate,
            },
            &serde_json::json!({}),
            "admin:test",
            clock.now_ms(),
        );
        let entry = gpuwarden_controlplane::store::rows::NewAudit::ok(
            "admin:test",
            "node.step",
            &id,
            serde_json::json!({}),
            clock.now_ms(),
        );
        store
            .apply_step(&id, s, "operator", "admin:test", Some(c), entry)
            .unwrap();
    };
    use gpuwarden_controlplane::model::lifecycle::Step;

    // The agent has no terminate hook: the terminate fails, and the node is cordoned, not
    // stuck in terminating (where uncordon is refused).
    {
        let mut s = agent.script.lock().unwrap();
        s.insert(
            "terminate".into(),
            [answer(
                "",
                "terminate",
                AgentState::Failed,
                "no terminate hook is configured",
            )]
            .into(),
        );
    }
    step(Step::Terminate, "cmd-t1");
    assert_eq!(status(&store, &id), "terminating");
    r.dispatcher.run_once();
    assert_eq!(status(&store, &id), "cordoned");
    let t = store.transitions(&id, 1).unwrap().remove(0);
    assert!(
        t.reason
            .contains("terminate command cmd-t1 failed: no terminate hook"),
        "{}",
        t.reason
    );
    let audit = store.audit_log(1).unwrap().remove(0);
    assert_eq!(audit.action, "command.failed");
    assert!(
        audit.result.starts_with("failed: no terminate hook"),
        "a failed command is not audited as ok: {}",
        audit.result
    );
    for (s, want) in [(Step::Uncordon, "active"), (Step::Cordon, "cordoned")] {
        let entry = gpuwarden_controlplane::store::rows::NewAudit::ok(
            "admin:test",
            "node.step",
            &id,
            serde_json::json!({}),
            T0,
        );
        let (row, _) = store
            .apply_step(&id, s, "operator", "admin:test", None, entry)
            .unwrap();
        assert_eq!(row.status, want);
    }

    // A drain that completes, and one that fails: cordoned both times.
    agent.script("drain", &[AgentState::Succeeded, AgentState::Failed]);
    step(Step::Drain, "cmd-d1");
    assert_eq!(status(&store, &id), "draining");
    r.dispatcher.run_once();
    assert_eq!(status(&store, &id), "cordoned");
    assert_eq!(store.audit_log(1).unwrap()[0].result, "ok");
    r.clock.advance(1_000);
    step(Step::Drain, "cmd-d2");
    r.dispatcher.run_once();
    assert_eq!(status(&store, &id), "cordoned");

    // A drain that ends after the operator asked for something else changes nothing.
    agent.script("drain", &[AgentState::Running, AgentState::Succeeded]);
    r.clock.advance(1_000);
    step(Step::Drain, "cmd-d3");
    r.dispatcher.run_once();
    r.clock.advance(1_000);
    step(Step::Terminate, "cmd-t2");
    r.clock.advance(5_000);
    agent.script("terminate", &[AgentState::Running]);
    r.dispatcher.run_once();
    assert_eq!(store.command("cmd-d3").unwrap().state, "succeeded");
    assert_eq!(status(&store, &id), "terminating");
}
