//! Command delivery while the agent is away: attempts back off, nothing is tried before it
//! is due, and once the agent is back a restarted control plane delivers the command once
//! and the plan carries on.

use std::sync::Arc;

use gpuwarden_controlplane::clock::{Clock, FakeClock};
use gpuwarden_controlplane::config::Plan;
use gpuwarden_controlplane::model::Health;

use crate::remediate::{register, rig, status, ScriptedAgent, T0};
use crate::util::{sqlite_store, TempDir};

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
