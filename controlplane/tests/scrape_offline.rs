//! The fleet on a fake clock: nodes go offline after the grace period and online when a
//! scrape succeeds, a restarted control plane gives every node a full grace period, and
//! targets keep their phase and are never scraped twice at once.

use std::time::Duration;

use gpuwarden_controlplane::model::Connectivity;
use gpuwarden_controlplane::scrape::fleet::{Fleet, FleetSettings};

use crate::scrape::{rig, row, T0};
use crate::util::{agent_body, Reply, Stub};

#[test]
fn nodes_go_offline_after_the_grace_period_and_online_when_scrapes_succeed() {
    let r = rig(Duration::from_millis(500), 1 << 20, 10_000);
    let agent = Stub::start(Reply::text(&agent_body(2, 0)));
    r.add("n", &agent.url());
    // Never answered yet, and the grace period is not over: nothing changes.
    assert!(r.fleet.sweep(T0 + 40_000).is_empty());
    r.scrape("n");
    assert_eq!(r.store.node("n").unwrap().connectivity, "online");
    *agent.reply.lock().unwrap() = Reply::Full(503, vec![], vec![]);
    r.clock.advance(15_000);
    r.scrape("n");
    r.clock.advance(15_000);
    r.scrape("n");
    assert!(
        r.fleet.sweep(T0 + 45_000).is_empty(),
        "3 intervals are not over yet"
    );
    let changes = r.fleet.sweep(T0 + 45_001);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].to, Connectivity::Offline);
    assert!(
        changes[0].reason.contains("3 missed intervals")
            && changes[0].reason.contains("HTTP status 503"),
        "{}",
        changes[0].reason
    );
    assert!(
        r.fleet.sweep(T0 + 60_000).is_empty(),
        "a transition is reported once"
    );
    for c in &changes {
        // As the scheduler does.
        r.store
            .set_connectivity(&c.node_id, c.to, &c.reason, T0 + 45_001)
            .unwrap();
    }

    // Recovery: the next good scrape brings it online, stored with the reason.
    *agent.reply.lock().unwrap() = Reply::text(&agent_body(2, 0));
    r.clock.advance(30_000);
    r.scrape("n");
    let hist: Vec<(String, String)> = r
        .store
        .transitions("n", 10)
        .unwrap()
        .into_iter()
        .filter(|t| t.field == "connectivity")
        .map(|t| (t.to_state, t.reason))
        .collect();
    assert_eq!(hist.len(), 3, "online, offline, online: {hist:?}");
    assert_eq!(
        hist[0],
        ("online".to_string(), "scrape succeeded".to_string())
    );
}

#[test]
fn a_restarted_control_plane_gives_every_node_a_full_grace_period() {
    let fleet = Fleet::new(FleetSettings {
        interval: Duration::from_secs(15),
        offline_after: 3,
        replica: "r".into(),
        health: Default::default(),
    });
    let mut r = row("n", "http://127.0.0.1:1");
    r.connectivity = "online".into();
    r.last_seen = Some(T0 - 3_600_000);
    fleet.sync(&r, T0);
    assert!(fleet.sweep(T0 + 45_000).is_empty());
    assert_eq!(fleet.sweep(T0 + 45_001).len(), 1);
}

#[test]
fn targets_keep_their_phase_and_are_never_scraped_twice_at_once() {
    let fleet = Fleet::new(FleetSettings {
        interval: Duration::from_secs(15),
        offline_after: 3,
        replica: "r".into(),
        health: Default::default(),
    });
    for i in 0..50 {
        fleet.sync(
            &row(&format!("n{i}"), &format!("http://10.0.0.{i}:9410")),
            T0,
        );
    }
    // Over one interval every target is due exactly once, at its own phase.
    let mut seen = std::collections::HashMap::new();
    for ms in (0..15_000).step_by(100) {
        for j in fleet.due(T0 + ms) {
            assert!(
                seen.insert(j.node_id.clone(), ms).is_none(),
                "{} twice in one interval",
                j.node_id
            );
        }
    }
    assert_eq!(seen.len(), 50);
    let distinct: std::collections::HashSet<_> = seen.values().collect();
    assert!(
        distinct.len() > 20,
        "targets are spread over the interval: {} phases",
        distinct.len()
    );
    // Still in flight: not handed out again even when due.
    assert!(fleet.due(T0 + 40_000).is_empty());
    // A second control plane with the same replica name computes the same phases.
    let again = Fleet::new(FleetSettings {
        interval: Duration::from_secs(15),
        offline_after: 3,
        replica: "r".into(),
        health: Default::default(),
    });
    again.sync(&row("n7", "http://10.0.0.7:9410"), T0);
    let ms = (0..15_000)
        .step_by(100)
        .find(|ms| !again.due(T0 + ms).is_empty())
        .unwrap();
    assert_eq!(ms, seen["n7"]);
}
