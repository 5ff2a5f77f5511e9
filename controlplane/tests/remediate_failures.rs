//! Where remediation stops: a failed step or an operator stops the plan, commands the agent
//! refuses or nobody can take fail with a reason, and a failed terminate or drain leaves the
//! node cordoned, where the operator can act.

use std::sync::Arc;

use gpuwarden_controlplane::act::deliver::Delivery;
use gpuwarden_controlplane::clock::{Clock, FakeClock};
use gpuwarden_controlplane::config::Plan;
use gpuwarden_controlplane::model::{CommandState, Health};
use gpuwarden_wire::command::CommandState as AgentState;

use crate::remediate::{answer, first_step, register, rig, status, ScriptedAgent, T0};
use crate::util::{sqlite_store, TempDir};

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
