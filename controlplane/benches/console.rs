//! What the web console costs at fleet scale, in-process over a real SQLite file:
//!
//! - the charts' ring (`scrape::recent`): heap bytes held for `CONSOLE_NODES` nodes of 8 GPUs
//!   over an hour at 30 s (counted by a counting allocator, beside what the ring accounts),
//!   and the time a scrape spends recording (a point taken, and one skipped within the step);
//! - pages: the time to answer `/ui/nodes` (a page of 100 of every node, filtered and sorted
//!   in memory), the same sorted by last scrape, `/ui/` (the fleet), and, as the peer, the
//!   REST API's `GET /v1/nodes?limit=100` (one page read from the database) in the same run.
//!
//! `cargo bench -p gpuwarden-controlplane --bench console`. Env: `CONSOLE_NODES` (10000),
//! `CONSOLE_REQUESTS` (30) per page.

// A benchmark over data it makes itself, like the tests: a failure is a bug to see at once.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::test::{call_service, init_service, read_body, TestRequest};
use actix_web::{web, App};
use gpuwarden_controlplane::api::{auth_digest, ApiSettings, AppState, Auth};
use gpuwarden_controlplane::clock::SystemClock;
use gpuwarden_controlplane::console::{self, Console, Sessions};
use gpuwarden_controlplane::metrics::Metrics;
use gpuwarden_controlplane::model::observation::{GpuObservation, NodeObservation, Values};
use gpuwarden_controlplane::model::{Source, Status};
use gpuwarden_controlplane::scrape::fleet::{Fleet, FleetSettings};
use gpuwarden_controlplane::scrape::recent::{Recent, RecentSettings};
use gpuwarden_controlplane::store::rows::{NewAudit, NodeRow};
use gpuwarden_controlplane::store::{Store, StoreOptions};

/// The system allocator, counting the bytes handed out and not given back.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to `System` unchanged; only a counter is kept beside. (A
// global allocator cannot be written without `unsafe`; this one is in a benchmark only.)
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const ADMIN: &str = "bench-admin-token-0001";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn observation(seed: u64) -> NodeObservation {
    let mut o = NodeObservation::default();
    for i in 0..8u32 {
        let x = (seed + u64::from(i)) % 40;
        o.gpus.insert(
            i,
            GpuObservation {
                index: i,
                values: Values::from_pairs(vec![
                    ("temperature_celsius", 40.0 + x as f64),
                    ("power_watts", 300.0 + x as f64),
                    ("utilization_ratio", x as f64 / 40.0),
                    ("memory_used_bytes", 3.0e10 + x as f64),
                ]),
                ..Default::default()
            },
        );
    }
    o
}

fn ring(nodes: usize) {
    let before = LIVE.load(Relaxed);
    let r = Recent::new(RecentSettings {
        window: Duration::from_secs(3600),
        step: Duration::from_secs(30),
        max_bytes: usize::MAX,
    });
    let obs = observation(7);
    let ids: Vec<String> = (0..nodes).map(|i| format!("node-{i:016x}")).collect();
    let t = Instant::now();
    for k in 0..120i64 {
        for id in &ids {
            r.record(id, &obs, k * 30_000);
        }
    }
    let per_point = t.elapsed().as_nanos() as f64 / (120 * nodes) as f64;
    let t = Instant::now();
    for id in &ids {
        r.record(id, &obs, 119 * 30_000 + 5_000);
    }
    let per_skip = t.elapsed().as_nanos() as f64 / nodes as f64;
    let held = LIVE.load(Relaxed) - before;
    println!(
        "ring: {nodes} nodes x 8 GPUs x 120 points (1 h at 30 s): heap {:.1} MiB ({:.1} KiB a node; the ring accounts {:.1} MiB against console.history_max_bytes)",
        held as f64 / 1048576.0,
        held as f64 / 1024.0 / nodes as f64,
        r.bytes() as f64 / 1048576.0
    );
    println!(
        "ring: a scrape that adds a point {per_point:.0} ns, one within the step {per_skip:.0} ns"
    );
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn pages(nodes: usize, requests: usize) {
    let dir = std::env::temp_dir().join(format!("gw-bench-console-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("gw.db").display());
    let store = Arc::new(Store::open(&url, &StoreOptions::default()).unwrap());
    let now = gpuwarden_controlplane::clock::Clock::now_ms(&SystemClock);
    let t = Instant::now();
    let mut labels = BTreeMap::new();
    for i in 0..nodes {
        labels.insert("rack".to_string(), format!("r{}", i / 40));
        let row = NodeRow::fresh(
            format!("node-{i:016x}"),
            &format!("gpu-{i:05}"),
            ["train", "infer", "batch"][i % 3],
            &labels,
            Some(format!("http://10.0.{}.{}:9410", i / 250, i % 250)),
            Status::Active,
            Source::Created,
            now,
        );
        store
            .create_node(
                &row,
                NewAudit::ok("bench", "node.create", &row.id, serde_json::json!({}), now),
            )
            .unwrap();
    }
    println!(
        "pages: {nodes} nodes stored in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let data = web::Data::new(AppState {
        store: store.clone(),
        fleet: Arc::new(Fleet::new(FleetSettings {
            interval: Duration::from_secs(15),
            offline_after: 3,
            replica: "bench".into(),
            health: Default::default(),
        })),
        clock: Arc::new(SystemClock),
        metrics: Metrics::new(),
        auth: Auth::new(vec![auth_digest(ADMIN)], vec![]),
        policy: Arc::new(std::sync::RwLock::new(Arc::new(
            gpuwarden_controlplane::judge::policy::Policy::default_policy(),
        ))),
        policy_file: std::path::PathBuf::new(),
        settings: ApiSettings {
            external_url: "http://127.0.0.1:8410".into(),
            scrape_interval: Duration::from_secs(15),
            join_token_ttl: Duration::from_secs(86_400),
            node_token_ttl: Duration::ZERO,
        },
        links: Default::default(),
    });
    for r in store.all_nodes().unwrap() {
        data.fleet.sync(&r, now);
    }
    let app = init_service(
        App::new()
            .app_data(data.clone())
            .app_data(web::Data::new(Console {
                sessions: Sessions::new(Duration::from_secs(3600), 10),
                prometheus_url: None,
            }))
            .configure(console::configure)
            .configure(gpuwarden_controlplane::api::configure),
    )
    .await;
    let page = call_service(&app, TestRequest::get().uri("/ui/login").to_request()).await;
    let login_cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    let form = login_cookie.trim_start_matches("gw_login=").to_string();
    let resp = call_service(
        &app,
        TestRequest::post()
            .uri("/ui/login")
            .insert_header(("Cookie", login_cookie))
            .set_form([("token", ADMIN), ("form", form.as_str())])
            .to_request(),
    )
    .await;
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    for (what, path, bearer) in [
        (
            "console /ui/nodes (page 1 of all, by name)",
            "/ui/nodes",
            false,
        ),
        (
            "console /ui/nodes?pool=train&sort=seen&dir=desc",
            "/ui/nodes?pool=train&sort=seen&dir=desc",
            false,
        ),
        ("console /ui/ (fleet)", "/ui/", false),
        (
            "REST GET /v1/nodes?limit=100 (peer)",
            "/v1/nodes?limit=100",
            true,
        ),
    ] {
        let mut ms = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let mut req = TestRequest::get().uri(path);
            req = if bearer {
                req.insert_header(("Authorization", format!("Bearer {ADMIN}")))
            } else {
                req.insert_header(("Cookie", cookie.clone()))
            };
            let t = Instant::now();
            let resp = call_service(&app, req.to_request()).await;
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            bytes = read_body(resp).await.len();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "pages: {what}: p50 {:.1} ms, p95 {:.1} ms, {:.0} KiB",
            percentile(&mut ms, 0.5),
            percentile(&mut ms, 0.95),
            bytes as f64 / 1024.0
        );
    }
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let nodes = env_or("CONSOLE_NODES", 10_000);
    let requests = env_or("CONSOLE_REQUESTS", 30);
    ring(nodes);
    actix_web::rt::System::new().block_on(pages(nodes, requests));
}
