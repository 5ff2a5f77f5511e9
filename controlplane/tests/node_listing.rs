//! `GET /v1/nodes` served through the listing cache: byte for byte the answer without it
//! (order, pages, filters), never older than the last write, whoever wrote (the API, another
//! connection to the file, the scraper's memory), and bounded in bytes.

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{call_service, read_body, TestRequest};
use actix_web::web;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use gpuwarden_controlplane::api::{ListingCache, LISTING_CACHE_BYTES};
use gpuwarden_controlplane::store::rows::NewAudit;
use gpuwarden_controlplane::store::{Store, StoreOptions};
use serde_json::{json, Value};

use crate::api::{app, create_node, env, send, Env, ADMIN, BOOT};

macro_rules! cached_app {
    ($env:expr, $cache:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .app_data($env.data.clone())
                .app_data($cache.clone())
                .configure(gpuwarden_controlplane::api::configure),
        )
        .await
    };
}

async fn raw<S>(app: &S, path: &str) -> (StatusCode, Vec<u8>)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let req = TestRequest::get()
        .uri(path)
        .insert_header(("Authorization", format!("Bearer {ADMIN}")))
        .to_request();
    let resp = call_service(app, req).await;
    let status = resp.status();
    (status, read_body(resp).await.to_vec())
}

async fn names<S>(app: &S, path: &str) -> Vec<String>
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let (st, body) = raw(app, path).await;
    assert_eq!(st, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

fn cache(e: &Env, max_bytes: usize) -> web::Data<ListingCache> {
    web::Data::new(ListingCache::for_database(&e.db_url(), max_bytes))
}

/// 24 created nodes over 3 pools with labels that need escaping, and 3 registered agents
/// with GPUs (active, scraped).
async fn fleet<S>(app: &S)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    for i in 0..24 {
        let body = json!({"name": format!("n-{:02}", 23 - i), "pool": format!("pool-{}", i % 3),
            "labels": {"rack": format!("r\"{i}"), "zone": "z\\é<&>"}});
        let (st, v) = send(app, "POST", "/v1/nodes", Some(ADMIN), Some(body)).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    for i in 0..3 {
        let gpus: Vec<Value> = (0..4)
            .map(|g| json!({"index": g, "uuid": format!("GPU-{i}-{g}"), "model": "H100", "memory_bytes": 80u64 << 30}))
            .collect();
        let body = json!({"name": format!("reg-{i}"), "address": format!("http://127.0.0.1:{}", 9 + i),
            "capabilities": {"gpus": gpus, "driver_version": "550.54"}});
        let (st, v) = send(app, "POST", "/v1/nodes/register", Some(BOOT), Some(body)).await;
        assert!(st.is_success(), "{v}");
    }
}

#[actix_web::test]
async fn cached_pages_are_the_uncached_answers_in_order_pages_and_filters() {
    let e = env(true);
    let plain = app!(e);
    let c = cache(&e, LISTING_CACHE_BYTES);
    let cached = cached_app!(e, c);
    fleet(&plain).await;
    let queries = [
        "/v1/nodes",
        "/v1/nodes?limit=7",
        "/v1/nodes?limit=7&offset=7",
        "/v1/nodes?pool=pool-1",
        "/v1/nodes?status=active",
        "/v1/nodes?status=pending&pool=pool-2&limit=3&offset=2",
        "/v1/nodes?health=unknown&connectivity=offline&limit=5",
        "/v1/nodes?offset=100",
    ];
    for q in queries {
        let want = raw(&plain, q).await;
        assert_eq!(want.0, StatusCode::OK, "{q}");
        assert_eq!(raw(&cached, q).await, want, "{q}: first answer");
        assert_eq!(raw(&cached, q).await, want, "{q}: from the cache");
    }
    assert_eq!(
        c.hits(),
        queries.len() as u64,
        "every second answer came from the cache"
    );
    // One node, by name and by id, the same way.
    let id = e.store.node("reg-1").unwrap().id;
    for q in ["/v1/nodes/n-03".to_string(), format!("/v1/nodes/{id}")] {
        let want = raw(&plain, &q).await;
        assert_eq!(want.0, StatusCode::OK, "{q}");
        assert_eq!(raw(&cached, &q).await, want, "{q}: first answer");
        assert_eq!(raw(&cached, &q).await, want, "{q}: from the cache");
    }
    assert_eq!(c.hits(), queries.len() as u64 + 2);
    let (st, _) = raw(&cached, "/v1/nodes/nope").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Pages run by name, the second after the first.
    let mut all = names(&cached, "/v1/nodes").await;
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert_eq!(all.len(), 27);
    let mut two = names(&cached, "/v1/nodes?limit=7").await;
    two.extend(names(&cached, "/v1/nodes?limit=7&offset=7").await);
    all.truncate(14);
    assert_eq!(two, all);
    // Bad queries are refused before any cache, as before.
    let (st, _) = raw(&cached, "/v1/nodes?status=sick").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = raw(&cached, "/v1/nodes?limit=0").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn a_write_shows_in_the_next_answer_whoever_wrote() {
    let e = env(true);
    let c = cache(&e, LISTING_CACHE_BYTES);
    let app = cached_app!(e, c);
    fleet(&app).await;
    let before = names(&app, "/v1/nodes?limit=1000").await;
    assert_eq!(names(&app, "/v1/nodes?limit=1000").await, before);
    assert_eq!(c.hits(), 1);

    // Through the API.
    let id = create_node(&app, "a-new").await;
    let now = names(&app, "/v1/nodes?limit=1000").await;
    assert_eq!(now.first().map(String::as_str), Some("a-new"));
    assert_eq!(c.hits(), 1, "the page before the create was not served");

    // Through another connection of the same process (the scraper's writes take these).
    let other = Store::open(&e.db_url(), &StoreOptions::default()).unwrap();
    let entry = NewAudit::ok("admin:test", "node.delete", &id, json!({}), 1);
    other.delete_node(&id, entry).unwrap();
    assert_eq!(names(&app, "/v1/nodes?limit=1000").await, before);

    // Through a plain SQLite connection (another process): a health change.
    let (_, v) = send(&app, "GET", "/v1/nodes?pool=pool-0", Some(ADMIN), None).await;
    assert!(v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["health"] == "unknown"));
    let path = e.db_url().trim_start_matches("sqlite://").to_string();
    let mut conn = diesel::sqlite::SqliteConnection::establish(&path).unwrap();
    conn.batch_execute(
        "PRAGMA busy_timeout = 5000; UPDATE nodes SET health = 'unhealthy' WHERE pool = 'pool-0';",
    )
    .unwrap();
    let (_, v) = send(&app, "GET", "/v1/nodes?pool=pool-0", Some(ADMIN), None).await;
    assert!(
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["health"] == "unhealthy"),
        "{v}"
    );
    let (_, v) = send(&app, "GET", "/v1/nodes?health=unhealthy", Some(ADMIN), None).await;
    assert_eq!(v["total"], 8);
    // One node's answer too.
    let (_, v) = send(&app, "GET", "/v1/nodes/n-00", Some(ADMIN), None).await;
    let (_, again) = send(&app, "GET", "/v1/nodes/n-00", Some(ADMIN), None).await;
    assert_eq!((v["health"].as_str(), &again), (Some("unknown"), &v));
    conn.batch_execute("UPDATE nodes SET health = 'degraded' WHERE name = 'n-00';")
        .unwrap();
    let (_, v) = send(&app, "GET", "/v1/nodes/n-00", Some(ADMIN), None).await;
    assert_eq!(v["health"], "degraded");
}

#[actix_web::test]
async fn a_change_in_the_scrapers_memory_shows_in_the_next_answer() {
    let e = env(true);
    let c = cache(&e, LISTING_CACHE_BYTES);
    let app = cached_app!(e, c);
    fleet(&app).await;
    let scraped = |v: &Value| -> Vec<String> {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n.get("scrape").is_some())
            .map(|n| n["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, v) = send(&app, "GET", "/v1/nodes?status=active", Some(ADMIN), None).await;
    assert_eq!(scraped(&v), ["reg-0", "reg-1", "reg-2"]);
    let (_, again) = send(&app, "GET", "/v1/nodes?status=active", Some(ADMIN), None).await;
    assert_eq!((c.hits(), &again), (1, &v));

    // The scraper drops a target and takes it back: no database write either time.
    let row = e.store.node("reg-1").unwrap();
    e.data.fleet.remove(&row.id);
    let (_, v) = send(&app, "GET", "/v1/nodes?status=active", Some(ADMIN), None).await;
    assert_eq!(scraped(&v), ["reg-0", "reg-2"]);
    e.data.fleet.sync(&row, e.data.clock.now_ms());
    let (_, v) = send(&app, "GET", "/v1/nodes?status=active", Some(ADMIN), None).await;
    assert_eq!(scraped(&v), ["reg-0", "reg-1", "reg-2"]);
    assert_eq!(c.hits(), 1);
}

#[actix_web::test]
async fn the_cache_holds_no_more_than_its_bytes() {
    let e = env(true);
    let max = 16 << 10;
    let c = cache(&e, max);
    let app = cached_app!(e, c);
    fleet(&app).await;
    for offset in 0..40 {
        for limit in [1, 2, 3] {
            let (st, _) = raw(&app, &format!("/v1/nodes?limit={limit}&offset={offset}")).await;
            assert_eq!(st, StatusCode::OK);
            assert!(c.bytes() <= max, "{} > {max}", c.bytes());
        }
    }
    assert!(c.bytes() > 0, "small pages are kept");
    // A page bigger than a quarter of the cache is answered, never kept.
    let hits = c.hits();
    let (_, a) = raw(&app, "/v1/nodes?limit=1000").await;
    let (_, b) = raw(&app, "/v1/nodes?limit=1000").await;
    assert_eq!(a, b);
    assert_eq!(c.hits(), hits);
    // `database.listing_cache_bytes = 0`: nothing is kept.
    let off = cache(&e, 0);
    let app = cached_app!(e, off);
    for _ in 0..3 {
        assert_eq!(raw(&app, "/v1/nodes?limit=1").await.0, StatusCode::OK);
    }
    assert_eq!((off.hits(), off.bytes()), (0, 0));
}

#[actix_web::test]
async fn a_kept_answer_still_asks_for_a_valid_token_and_a_revoked_one_is_refused_at_once() {
    let e = env(true);
    let c = cache(&e, LISTING_CACHE_BYTES);
    let app = cached_app!(e, c);
    fleet(&app).await;
    let body = json!({"name": "agent-1", "address": "http://127.0.0.1:19",
        "capabilities": {"gpus": []}});
    let (_, v) = send(
        &app,
        "POST",
        "/v1/nodes/register",
        Some(BOOT),
        Some(body.clone()),
    )
    .await;
    let (old, id) = (
        v["node_token"].as_str().unwrap().to_string(),
        v["node_id"].clone(),
    );
    let own = format!("/v1/nodes/{}", id.as_str().unwrap());
    for _ in 0..2 {
        assert_eq!(raw(&app, "/v1/nodes").await.0, StatusCode::OK);
        assert_eq!(raw(&app, "/v1/nodes/n-05").await.0, StatusCode::OK);
    }
    assert_eq!(c.hits(), 2);
    for token in [None, Some("wrong-token-000000000000"), Some(old.as_str())] {
        let (st, _) = send(&app, "GET", "/v1/nodes", token, None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{token:?}");
    }
    // A node's token reads its own node, never another's, kept or not.
    let (st, v) = send(&app, "GET", &own, Some(&old), None).await;
    assert_eq!((st, &v["name"]), (StatusCode::OK, &json!("agent-1")));
    let (st, _) = send(&app, "GET", "/v1/nodes/n-05", Some(&old), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Registering again rotates the node's token: the old one is refused at once.
    let (st, v) = send(&app, "POST", "/v1/nodes/register", Some(&old), Some(body)).await;
    assert!(st.is_success(), "{v}");
    let new = v["node_token"].as_str().unwrap().to_string();
    let (st, _) = send(&app, "GET", &own, Some(&old), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = send(&app, "GET", &own, Some(&new), None).await;
    assert_eq!(st, StatusCode::OK);
}
