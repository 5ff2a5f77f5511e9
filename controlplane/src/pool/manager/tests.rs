//! The loop's logic with the `fake` provider, a fake clock and a real SQLite database: each
//! Navarch fault that is about the loop has a test here (booting instances counted, provider
//! calls outside any lock, replacement before the drain, nothing lost in a restart).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::act::managed::{Held, ManagedPools};
use crate::clock::{Clock, FakeClock};
use crate::model::lifecycle::Step;
use crate::model::pool::{InstanceState, PoolSpec};
use crate::model::{Connectivity, Health, Status};
use crate::pool::provider::fake::{Call, FakeProvider};
use crate::pool::provider::ProviderEnv;
use crate::store::pool_rows::{InstanceRow, PoolRow};
use crate::store::rows::NewAudit;
use crate::store::{InstanceFilter, Store, StoreOptions};

pub(crate) struct H {
    pub mgr: PoolManager,
    pub clock: FakeClock,
    pub store: Arc<Store>,
    pub fake: Arc<FakeProvider>,
    pub _dir: TempDir,
}

pub(crate) struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn temp_dir(tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!(
        "gw-pm-{tag}-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

pub(crate) fn ctx_for(store: Arc<Store>, clock: &FakeClock, dir: &std::path::Path) -> Ctx {
    let shared: crate::clock::SharedClock = Arc::new(clock.clone());
    let mut env = ProviderEnv::new("http://127.0.0.1:1", dir.join("providers"));
    env.clock = shared.clone();
    Ctx {
        store,
        clock: shared,
        env,
        leader: Arc::new(AlwaysLeader),
        observations: Arc::new(Mutex::new(HashMap::new())),
        settings: ManagerSettings {
            call_timeout: Duration::from_secs(5),
            ..ManagerSettings::default()
        },
        providers: ProviderCache::default(),
        in_flight: Arc::default(),
        select: Arc::default(),
        errors: Arc::default(),
        managed: ManagedPools::default(),
        held: Held::new(None),
        notifier: Default::default(),
        dispatch: Arc::default(),
        wake: Arc::default(),
    }
}

pub(crate) fn harness(spec: serde_json::Value) -> H {
    let dir = temp_dir("m");
    let store = Arc::new(
        Store::open(
            &format!("sqlite://{}/db.sqlite", dir.0.display()),
            &StoreOptions::default(),
        )
        .unwrap(),
    );
    let clock = FakeClock::at(1_800_000_000_000);
    let spec: PoolSpec = serde_json::from_value(spec).unwrap();
    let now = clock.now_ms();
    store
        .create_pool(
            &PoolRow::new(&spec, "api", None, now).unwrap(),
            NewAudit::ok("test", "pool.create", &spec.name, json!({}), now),
        )
        .unwrap();
    let ctx = ctx_for(store.clone(), &clock, &dir.0);
    let fake = Arc::new(FakeProvider::new());
    for p in spec.provider_list() {
        ctx.providers.preset(&spec.name, &p.name, fake.clone());
    }
    H {
        mgr: PoolManager::new(ctx),
        clock,
        store,
        fake,
        _dir: dir,
    }
}

impl H {
    pub fn tick(&self) -> TickReport {
        let r = self.mgr.tick().unwrap();
        assert!(
            self.mgr.ctx.in_flight.wait_idle(Duration::from_secs(10)),
            "provider calls did not end"
        );
        r
    }

    pub fn instances(&self) -> Vec<InstanceRow> {
        self.store
            .list_instances(&InstanceFilter {
                limit: 1000,
                ..InstanceFilter::default()
            })
            .unwrap()
            .0
    }

    pub fn in_state(&self, s: InstanceState) -> Vec<InstanceRow> {
        self.instances()
            .into_iter()
            .filter(|i| i.state().unwrap() == s)
            .collect()
    }

    /// The instance's agent registers with its join token and is scraped: active, online,
    /// healthy.
    pub fn join(&self, i: &InstanceRow) -> String {
        let node = self.register(i);
        let now = self.clock.now_ms();
        self.store
            .set_connectivity(&node, Connectivity::Online, "scraped", now)
            .unwrap();
        self.store
            .set_health(&node, Health::Healthy, "ok", "test", now)
            .unwrap();
        node
    }

    /// The instance's agent registers with its join token (active; not scraped yet).
    pub fn register(&self, i: &InstanceRow) -> String {
        let node = i.node_id.clone().unwrap();
        let now = self.clock.now_ms();
        self.store
            .apply_step(
                &node,
                Step::Register,
                "agent registered",
                "agent",
                None,
                NewAudit::ok("agent", "node.register", &node, json!({}), now),
            )
            .unwrap();
        node
    }

    pub fn join_all(&self) -> Vec<String> {
        self.in_state(InstanceState::Registering)
            .iter()
            .map(|i| self.join(i))
            .collect()
    }

    pub fn pool(&self) -> PoolRow {
        self.store.pool("p").unwrap()
    }
}

pub(crate) fn small(extra: serde_json::Value) -> serde_json::Value {
    let mut v = json!({"name": "p", "provider": "fake", "min_nodes": 2, "max_nodes": 4, "auto_replace": true, "scale_up_cooldown": "1m"});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

#[test]
fn min_is_provisioned_once_and_booting_instances_are_counted() {
    // Navarch: instances still booting were not counted, so it provisioned again after
    // every cooldown.
    let h = harness(small(json!({})));
    h.tick();
    assert_eq!(h.fake.count(Call::Provision), 2);
    let booting = h.in_state(InstanceState::Registering);
    assert_eq!(booting.len(), 2, "{:?}", h.instances());
    assert!(booting
        .iter()
        .all(|i| i.provider_id.is_some() && i.node_id.is_some()));
    for _ in 0..5 {
        h.clock.advance(100_000);
        h.tick();
    }
    assert_eq!(
        h.fake.count(Call::Provision),
        2,
        "provisioned again while booting"
    );
    // The pre-created nodes carry the pool and their instance.
    let node = h
        .store
        .node(booting[0].node_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(
        (node.pool.as_str(), node.instance_id.as_deref()),
        ("p", Some(booting[0].id.as_str()))
    );
    assert_eq!(node.status().unwrap(), Status::Pending);
}

#[test]
fn an_agent_that_registers_makes_its_instance_running_and_the_decision_is_stored() {
    let h = harness(small(json!({})));
    h.tick();
    h.join_all();
    h.clock.advance(1000);
    h.tick();
    assert_eq!(h.in_state(InstanceState::Running).len(), 2);
    let row = h.pool();
    assert_eq!((row.last_target, row.status.as_str()), (Some(2), "ok"));
    assert!(row.last_scale_up.is_some());
    let d = h.store.decisions("p", 10).unwrap();
    assert!(d.len() >= 2 && d.iter().all(|d| d.target == 2), "{d:?}");
}

#[test]
fn a_manual_target_scales_up_within_max() {
    let h = harness(small(json!({})));
    h.tick();
    h.join_all();
    let now = h.clock.now_ms();
    h.store
        .set_manual_target(
            "p",
            Some(9),
            now,
            NewAudit::ok("t", "pool.scale", "p", json!({}), now),
        )
        .unwrap();
    h.clock.advance(61_000);
    h.tick();
    assert_eq!(h.fake.count(Call::Provision), 4, "max_nodes 4 holds");
}

#[test]
fn an_idle_pool_writes_nothing_tick_after_tick() {
    let h = harness(small(json!({})));
    h.tick();
    h.join_all();
    h.clock.advance(1000);
    h.tick();
    h.clock.advance(1000);
    h.tick();
    let (row, decisions) = (h.pool(), h.store.decisions("p", 100).unwrap().len());
    for _ in 0..5 {
        h.clock.advance(10_000);
        h.tick();
    }
    assert_eq!(
        h.store.decisions("p", 100).unwrap().len(),
        decisions,
        "an unchanged decision is not stored again"
    );
    assert_eq!(
        h.pool().updated_at,
        row.updated_at,
        "an unchanged runtime is not written again"
    );
    // A change is recorded at once.
    let now = h.clock.now_ms();
    h.store
        .set_manual_target(
            "p",
            Some(3),
            now,
            NewAudit::ok("t", "pool.scale", "p", json!({}), now),
        )
        .unwrap();
    h.clock.advance(61_000);
    h.tick();
    assert_eq!(h.store.decisions("p", 100).unwrap().len(), decisions + 1);
}

#[test]
fn a_registered_node_not_yet_scraped_is_still_booting_not_provisioned_again() {
    // Registered (active) but offline until its first scrape: not capacity yet, and its
    // instance must keep counting, or the pool provisions a second machine for it.
    let h = harness(small(json!({})));
    h.tick();
    for i in h.in_state(InstanceState::Registering) {
        h.register(&i);
    }
    h.clock.advance(120_000);
    h.tick();
    assert_eq!(
        h.fake.count(Call::Provision),
        2,
        "provisioned again for registered nodes"
    );
    assert_eq!(h.in_state(InstanceState::Registering).len(), 2);
}
