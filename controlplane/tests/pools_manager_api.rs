//! The REST API and a running pool manager together (in-process, real SQLite file, the
//! `fake` provider): a change through the API is acted on at once, not at the next interval.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use gpuwarden_controlplane::act::managed::ManagedPools;
use gpuwarden_controlplane::clock::SharedClock;
use gpuwarden_controlplane::pool::manager::{AlwaysLeader, Ctx, ManagerSettings, PoolManager};
use gpuwarden_controlplane::pool::provider::fake::{Call, FakeProvider};
use gpuwarden_controlplane::pool::provider::ProviderEnv;
use gpuwarden_testkit::wait_for;
use serde_json::json;

use crate::api::{app, env, send, Env, ADMIN};
use crate::util::TempDir;

/// A pool manager over the API environment's store and clock, woken by the API's link.
pub(crate) fn manager(e: &Env, dir: &TempDir, interval: Duration) -> PoolManager {
    let clock: SharedClock = Arc::new(e.clock.clone());
    let mut env = ProviderEnv::new("http://127.0.0.1:1", dir.path().join("providers"));
    env.clock = clock.clone();
    PoolManager::new(Ctx {
        store: e.store.clone(),
        clock,
        env,
        leader: Arc::new(AlwaysLeader),
        observations: Arc::new(Mutex::new(Default::default())),
        settings: ManagerSettings {
            interval,
            call_timeout: Duration::from_secs(5),
            ..ManagerSettings::default()
        },
        providers: Default::default(),
        in_flight: Arc::default(),
        select: Arc::default(),
        errors: Arc::default(),
        managed: ManagedPools::default(),
        held: e.data.links.held.clone(),
        notifier: Default::default(),
        dispatch: Arc::default(),
        wake: e.data.links.pools.clone(),
    })
}

#[actix_web::test]
async fn a_pool_created_and_scaled_through_the_api_is_acted_on_at_once_not_at_the_next_interval() {
    let e = env(false);
    let app = app!(e);
    let dir = TempDir::new("wake");
    let interval = Duration::from_secs(3600);
    let mgr = manager(&e, &dir, interval);
    let fake = Arc::new(FakeProvider::new());
    mgr.ctx.providers.preset("w", "fake", fake.clone());
    let handle = mgr.spawn().expect("the loop starts");
    let started = Instant::now();
    let body = json!({"name": "w", "provider": "fake", "min_nodes": 1, "max_nodes": 4});
    let (st, v) = send(&app, "POST", "/v1/pools", Some(ADMIN), Some(body)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    wait_for("the created pool's first instance", 10, || {
        (fake.count(Call::Provision) == 1).then_some(())
    });
    // Past the scale-up cooldown (1m) on the manager's clock, not on the wall's.
    e.clock.advance(61_000);
    let (st, v) = send(
        &app,
        "POST",
        "/v1/pools/w/scale",
        Some(ADMIN),
        Some(json!({"nodes": 3})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    wait_for("the scale's two more instances", 10, || {
        (fake.count(Call::Provision) == 3).then_some(())
    });
    let took = started.elapsed();
    handle.stop();
    assert!(
        took < Duration::from_secs(20),
        "acted on after {took:?}; the interval is {interval:?}"
    );
}
