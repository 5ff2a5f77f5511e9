//! The REST API and a pool manager together (in-process, real SQLite file, the `fake`
//! provider): a change through the API is acted on at once, not at the next interval; an
//! operator releases a held node and raises the budget, audited, and the CLI shows holds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use gpuwarden_controlplane::act::managed::ManagedPools;
use gpuwarden_controlplane::clock::{Clock, SharedClock};
use gpuwarden_controlplane::model::lifecycle::Step;
use gpuwarden_controlplane::model::pool::BudgetSpec;
use gpuwarden_controlplane::model::{Connectivity, Health, Status};
use gpuwarden_controlplane::pool::manager::{AlwaysLeader, Ctx, ManagerSettings, PoolManager};
use gpuwarden_controlplane::pool::provider::fake::{Call, FakeProvider};
use gpuwarden_controlplane::pool::provider::ProviderEnv;
use gpuwarden_controlplane::store::rows::NewAudit;
use gpuwarden_controlplane::store::InstanceFilter;
use gpuwarden_testkit::wait_for;
use serde_json::json;

use crate::api::{app, env, error_code, send, Env, ADMIN};
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
    // The evaluation is over once it stored its scale-up (the clock may move then).
    wait_for("the first scale-up stored", 10, || {
        e.store.pool("w").unwrap().last_scale_up.map(|_| ())
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

/// Registers, scrapes and passes as healthy every pre-created node of the pool's booting
/// instances, as their agents would; their ids, sorted.
fn join_all(e: &Env) -> Vec<String> {
    let now = e.clock.now_ms();
    let (rows, _) = e
        .store
        .list_instances(&InstanceFilter {
            limit: 100,
            ..InstanceFilter::default()
        })
        .unwrap();
    let mut ids = Vec::new();
    for i in rows {
        let node = i.node_id.unwrap();
        let entry = NewAudit::ok("agent", "node.register", &node, json!({}), now);
        e.store
            .apply_step(&node, Step::Register, "registered", "agent", None, entry)
            .unwrap();
        e.store
            .set_connectivity(&node, Connectivity::Online, "scraped", now)
            .unwrap();
        e.store
            .set_health(&node, Health::Healthy, "ok", "test", now)
            .unwrap();
        ids.push(node);
    }
    ids.sort();
    ids
}

fn tick(mgr: &PoolManager) {
    mgr.tick().unwrap();
    assert!(mgr.ctx.in_flight.wait_idle(Duration::from_secs(10)));
}

#[actix_web::test]
async fn an_operator_releases_a_held_node_and_raises_the_budget_audited_and_shown_by_the_cli() {
    let e = env(false);
    let app = app!(e);
    let dir = TempDir::new("hand");
    let mut mgr = manager(&e, &dir, Duration::from_secs(3600));
    mgr.ctx.settings.fleet_budget = BudgetSpec {
        max_percent: 100.0,
        max_nodes: 100,
    };
    mgr.ctx
        .providers
        .preset("b", "fake", Arc::new(FakeProvider::new()));
    let body = json!({"name": "b", "provider": "fake", "min_nodes": 4, "max_nodes": 4,
        "budget": {"max_percent": 100, "max_nodes": 1}});
    let (st, v) = send(&app, "POST", "/v1/pools", Some(ADMIN), Some(body)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    tick(&mgr);
    let n = join_all(&e);
    e.clock.advance(120_000);
    tick(&mgr);
    let now = e.clock.now_ms();
    for id in &n[..3] {
        e.store
            .set_health(id, Health::Unhealthy, "fatal-xid: XID 79", "policy", now)
            .unwrap();
    }
    tick(&mgr);
    let status = |id: &str| e.store.node(id).unwrap().status().unwrap();
    assert_eq!(status(&n[0]), Status::Cordoned);

    // The listing and the node show the holds, and so does the CLI's table.
    let (_, list) = send(&app, "GET", "/v1/nodes?pool=b", Some(ADMIN), None).await;
    let mut held: Vec<&str> = list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["held"].is_string())
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    held.sort();
    assert_eq!(held, [&n[1], &n[2]], "{list}");
    let table = gpuwarden_controlplane::cli::nodes_table(&list);
    assert!(table.contains("unhealthy (held)"), "{table}");
    assert!(table.contains("2 held in service"), "{table}");
    let (_, one) = send(
        &app,
        "GET",
        &format!("/v1/nodes/{}", n[2]),
        Some(ADMIN),
        None,
    )
    .await;
    let view = gpuwarden_controlplane::cli::node_view(&one);
    assert!(
        view.contains("held") && view.contains("pool remediation budget full"),
        "{view}"
    );

    // Releasing a node that is not held is refused, and the refusal audited.
    let path = format!("/v1/nodes/{}/release", n[3]);
    let (st, v) = send(&app, "POST", &path, Some(ADMIN), None).await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::CONFLICT, "not_held"),
        "{v}"
    );
    // Releasing the last held node remediates exactly it.
    let path = format!("/v1/nodes/{}/release", n[2]);
    let (st, v) = send(&app, "POST", &path, Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["pool"], "b");
    tick(&mgr);
    assert_eq!(status(&n[2]), Status::Cordoned);
    assert_eq!(status(&n[1]), Status::Active, "still held");

    // Raising the pool's budget lets the last one through; it is stored and shown.
    let raise = json!({"pool": "b", "max_nodes": 3});
    let (st, v) = send(
        &app,
        "PUT",
        "/v1/remediation/budget",
        Some(ADMIN),
        Some(raise),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["scope"].as_str(), v["max_percent"].as_f64()),
        (Some("pool"), Some(100.0))
    );
    tick(&mgr);
    assert_eq!(status(&n[1]), Status::Cordoned);
    let (_, pool) = send(&app, "GET", "/v1/pools/b", Some(ADMIN), None).await;
    assert_eq!(pool["budget_status"]["limit"], 3, "{pool}");
    assert_eq!(pool["budget_status"]["operator"]["max_nodes"], 3, "{pool}");
    let (_, b) = send(&app, "GET", "/v1/remediation/budget", Some(ADMIN), None).await;
    assert_eq!(b["overrides"][0]["max_nodes"], 3, "{b}");
    assert_eq!(b["held"], json!([]), "{b}");

    // Bad input changes nothing; clearing twice: the second finds nothing.
    for bad in [
        json!({"max_nodes": 2, "max_percent": 0}),
        json!({"pool": "nope", "max_nodes": 2}),
        json!({"pool": "../x", "max_nodes": 2}),
        json!({"max_nodes": 2, "extra": 1}),
    ] {
        let (st, v) = send(
            &app,
            "PUT",
            "/v1/remediation/budget",
            Some(ADMIN),
            Some(bad),
        )
        .await;
        assert!(st.is_client_error(), "{st} {v}");
    }
    assert_eq!(e.store.budgets().unwrap().len(), 1);
    let (st, _) = send(
        &app,
        "DELETE",
        "/v1/remediation/budget?pool=b",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = send(
        &app,
        "DELETE",
        "/v1/remediation/budget?pool=b",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The audit log has each, with the caller.
    let audit = e.store.audit_log(100).unwrap();
    let by = |action: &str, result: &str| {
        audit
            .iter()
            .filter(|a| a.action == action && a.result.starts_with(result))
            .map(|a| (a.actor.clone(), a.target.clone()))
            .collect::<Vec<_>>()
    };
    let actor = by("pool.create", "ok")[0].0.clone();
    assert_eq!(by("node.release", "ok"), [(actor.clone(), n[2].clone())]);
    assert_eq!(by("node.release", "refused").len(), 1);
    assert_eq!(
        by("budget.set", "ok"),
        [(actor.clone(), "pool:b".to_string())]
    );
    assert_eq!(
        by("budget.set", "refused").len(),
        3,
        "the fourth is a malformed body"
    );
    assert_eq!(by("budget.clear", "ok").len(), 1);
}
