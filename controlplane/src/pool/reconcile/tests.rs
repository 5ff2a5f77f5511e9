//! The reconciler against the `fake` provider: a crash between the record and the call, or
//! between the call and its answer, leaves neither an orphan nor a duplicate.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::clock::Clock;
use crate::pool::manager::tests::{harness, H};
use crate::pool::provider::fake::Call;
use crate::pool::provider::{Provider, ProvisionRequest};
use crate::store::pool_rows::{InstanceNode, NewInstance};

fn pool() -> serde_json::Value {
    json!({"name": "p", "provider": "fake", "min_nodes": 1, "max_nodes": 3, "auto_replace": true})
}

fn reconciler(h: &H) -> Reconciler {
    Reconciler {
        ctx: h.mgr.ctx.clone(),
    }
}

fn run(h: &H) -> ReconcileReport {
    let r = reconciler(h).run_once().unwrap();
    assert!(h.mgr.ctx.in_flight.wait_idle(Duration::from_secs(10)));
    r
}

/// What the manager records before it calls the provider (a crash right after).
fn recorded(h: &H, id: &str) -> InstanceRow {
    let now = h.clock.now_ms();
    let new = NewInstance {
        id: id.into(),
        pool: "p".into(),
        provider: "fake".into(),
        node: Some(InstanceNode {
            id: format!("node-{id}"),
            name: id.into(),
            labels: Default::default(),
            token_digest: format!("digest-{id}"),
            token_expires: None,
        }),
        now,
    };
    h.store.create_instance(&new).unwrap().0
}

fn machine_for(h: &H, id: &str) -> String {
    let req = ProvisionRequest {
        instance_id: id.into(),
        pool: "p".into(),
        node_name: id.into(),
        instance_type: String::new(),
        region: String::new(),
        zone: None,
        labels: Default::default(),
        join_token: "gwn_secret_secret".into(),
        control_plane_url: "http://127.0.0.1:1".into(),
    };
    h.fake.provision(&req).unwrap().provider_id
}

#[test]
fn a_crash_between_the_record_and_the_call_asks_again_once() {
    let h = harness(pool());
    recorded(&h, "p-1");
    // Not while a call could still be under way.
    assert_eq!(run(&h), ReconcileReport::default());
    h.clock.advance(10 * 60_000);
    let r = run(&h);
    assert_eq!(r.reprovisioned, 1, "{r:?}");
    assert_eq!(h.fake.count(Call::Provision), 1);
    let i = h.store.instance("p-1").unwrap();
    assert_eq!(i.state().unwrap(), InstanceState::Registering);
    assert_ne!(
        i.token_digest.as_deref(),
        Some("digest-p-1"),
        "a fresh join token"
    );
    h.clock.advance(10 * 60_000);
    assert_eq!(run(&h), ReconcileReport::default());
    assert_eq!(h.fake.count(Call::Provision), 1, "no duplicate");
}

#[test]
fn a_crash_after_the_call_adopts_the_machine_instead_of_a_second_one() {
    let h = harness(pool());
    recorded(&h, "p-2");
    let pid = machine_for(&h, "p-2");
    h.clock.advance(10 * 60_000);
    let r = run(&h);
    assert_eq!(r.adopted, 1, "{r:?}");
    let i = h.store.instance("p-2").unwrap();
    assert_eq!(
        (i.state().unwrap(), i.provider_id.as_deref()),
        (InstanceState::Registering, Some(pid.as_str()))
    );
    assert_eq!(h.fake.count(Call::Provision), 1);
}

#[test]
fn orphans_are_terminated_and_another_pools_machines_left_alone() {
    let h = harness(pool());
    let orphan = machine_for(&h, "p-unknown");
    // A machine of pool q on the same provider: known, not ours to stop.
    let now = h.clock.now_ms();
    let spec: crate::model::pool::PoolSpec = serde_json::from_value(
        json!({"name": "q", "provider": "fake", "min_nodes": 0, "max_nodes": 1}),
    )
    .unwrap();
    h.store
        .create_pool(
            &crate::store::pool_rows::PoolRow::new(&spec, "api", None, now).unwrap(),
            crate::store::rows::NewAudit::ok("t", "pool.create", "q", json!({}), now),
        )
        .unwrap();
    h.store
        .create_instance(&NewInstance {
            id: "q-1".into(),
            pool: "q".into(),
            provider: "fake".into(),
            node: None,
            now,
        })
        .unwrap();
    let theirs = machine_for(&h, "q-1");
    let r = run(&h);
    assert_eq!(r.orphans, 1, "{r:?}");
    let machines = h.fake.machines();
    assert_eq!(machines[&orphan].state, ListedState::Gone);
    assert_ne!(machines[&theirs].state, ListedState::Gone);
}

#[test]
fn a_machine_of_a_terminated_instance_is_an_orphan() {
    let h = harness(pool());
    h.tick();
    let i = h.in_state(InstanceState::Registering).remove(0);
    let now = h.clock.now_ms();
    for s in [InstanceState::Terminating, InstanceState::Terminated] {
        h.store
            .update_instance(
                &i.id,
                &InstanceUpdate {
                    state: Some(s),
                    ..InstanceUpdate::default()
                },
                now,
            )
            .unwrap();
    }
    assert_eq!(run(&h).orphans, 1);
}

#[test]
fn a_machine_gone_fails_its_instance_and_the_manager_replaces_it() {
    let h = harness(pool());
    h.tick();
    let i = h.in_state(InstanceState::Registering).remove(0);
    let node = h.join(&i);
    h.clock.advance(1000);
    h.tick();
    assert!(h
        .fake
        .set_state(i.provider_id.as_deref().unwrap(), ListedState::Gone));
    let r = run(&h);
    assert_eq!(r.gone, 1, "{r:?}");
    assert_eq!(
        h.store.instance(&i.id).unwrap().state().unwrap(),
        InstanceState::Failed
    );
    h.clock.advance(120_000);
    h.tick();
    h.clock.advance(1000);
    h.tick();
    assert_eq!(
        h.store.instance(&i.id).unwrap().state().unwrap(),
        InstanceState::Terminated
    );
    assert_eq!(
        h.store.node(&node).unwrap().status().unwrap(),
        crate::model::Status::Terminated
    );
    assert_eq!(h.fake.count(Call::Provision), 2, "replaced");
}

#[test]
fn terminated_records_are_kept_for_the_retention_then_deleted() {
    let h = harness(pool());
    recorded(&h, "p-old");
    let now = h.clock.now_ms();
    for s in [InstanceState::Terminating, InstanceState::Terminated] {
        h.store
            .update_instance(
                "p-old",
                &InstanceUpdate {
                    state: Some(s),
                    ..InstanceUpdate::default()
                },
                now,
            )
            .unwrap();
    }
    assert_eq!(run(&h).purged, 0);
    h.clock.advance(8 * 24 * 3600 * 1000);
    assert_eq!(run(&h).purged, 1);
}
