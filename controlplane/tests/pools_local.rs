//! Pools end to end with the `local` provider: a real `gpuwarden serve` runs its pool
//! manager over real `gpuwarden-agent --fake-gpus` processes. A pool comes up to its
//! minimum, scales, replaces a node with a fatal XID (replacement first, then drain and
//! terminate); an instance that never registers is failed and replaced; a control plane
//! killed mid-scale-up leaves neither a duplicate nor an orphan after its restart.
//!
//! The pools are written into the database before the control plane starts (as the API
//! or the config file would), and read back from it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gpuwarden_controlplane::clock::{Clock, SystemClock};
use gpuwarden_controlplane::model::pool::{InstanceState, PoolSpec};
use gpuwarden_controlplane::pool::provider::{build, ListedState, ProviderEnv};
use gpuwarden_controlplane::store::pool_rows::{InstanceRow, PoolRow};
use gpuwarden_controlplane::store::rows::NewAudit;
use gpuwarden_controlplane::store::{InstanceFilter, Store, StoreOptions};
use gpuwarden_testkit::{wait_for, Api, Launch, Proc};
use serde_json::{json, Value};

use crate::provider_local::agent_binary;
use crate::util::TempDir;

const ADMIN: &str = "pools-local-admin-token-0123456789";

/// The binaries under test: `GPUWARDEN_TEST_CP_BIN` / `GPUWARDEN_TEST_AGENT_BIN` when set (a
/// copy taken right after the build, where several checkouts share one target folder), else
/// the ones cargo built.
fn cp_bin() -> String {
    std::env::var("GPUWARDEN_TEST_CP_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_gpuwarden").into())
}

fn agent_bin() -> String {
    std::env::var("GPUWARDEN_TEST_AGENT_BIN")
        .unwrap_or_else(|_| agent_binary().to_string_lossy().into_owned())
}

/// Stops every agent the pools started, whatever the test did (they outlive the control
/// plane by design).
struct Agents(PathBuf);

impl Drop for Agents {
    fn drop(&mut self) {
        let env = ProviderEnv::new("http://127.0.0.1:1", self.0.join("providers"));
        let params = json!({"agent_binary": agent_bin(), "grace": "2s"});
        if let Ok(p) = build("local", params.as_object().unwrap(), &env) {
            for m in p.list().unwrap_or_default() {
                let _ = p.terminate(&m.provider_id);
            }
        }
    }
}

fn store(dir: &Path) -> Store {
    Store::open(
        &format!("sqlite://{}/gw.db", dir.display()),
        &StoreOptions::default(),
    )
    .unwrap()
}

fn local(extra: Value) -> Value {
    json!([{"name": "local", "kind": "local", "params": {
        "gpus": 1,
        "agent_binary": agent_bin(),
        "grace": "3s",
        "env": {
            "GPUWARDEN_COLLECTOR__INTERVAL": "300ms",
            "GPUWARDEN_COMMANDS__DRAIN_POLL": "100ms",
        },
    }}])
    .as_array()
    .map(|a| {
        let mut a = a.clone();
        if let (Some(p), Some(e)) = (a[0]["params"].as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        Value::Array(a)
    })
    .unwrap()
}

fn create_pool(store: &Store, spec: Value) {
    let spec: PoolSpec = serde_json::from_value(spec).unwrap();
    let now = SystemClock.now_ms();
    store
        .create_pool(
            &PoolRow::new(&spec, "api", None, now).unwrap(),
            NewAudit::ok("test", "pool.create", &spec.name, json!({}), now),
        )
        .unwrap();
}

fn control_plane(dir: &Path) -> (Proc, Api) {
    let cfg = std::fs::write(
        dir.join("cp.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\n\n[database]\nurl = \"sqlite://{d}/gw.db\"\nflush_interval = \"1s\"\n\n\
             [scrape]\ninterval = \"1s\"\ntimeout = \"1s\"\n\n[commands]\npoll_interval = \"200ms\"\n\n\
             [pool_manager]\ninterval = \"300ms\"\nreconcile_interval = \"1s\"\ncall_timeout = \"30s\"\n",
            d = dir.display()
        ),
    );
    cfg.unwrap();
    let p = Launch::new(cp_bin())
        .args(["serve", "--config", dir.join("cp.toml").to_str().unwrap()])
        .env_remove("GPUWARDEN_BOOTSTRAP_TOKEN")
        .envs(&[("GPUWARDEN_ADMIN_TOKEN", ADMIN)])
        .current_dir(dir)
        .start();
    let api = Api::new(&p.base, ADMIN);
    (p, api)
}

/// `wait_for`, showing the end of the control plane's log when it times out.
fn wait<T>(cp: &Proc, what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    match gpuwarden_testkit::poll(Duration::from_secs(secs), &mut f) {
        Some(v) => v,
        None => {
            let log = cp.log();
            let tail: String = log
                .chars()
                .rev()
                .take(6000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!("timed out after {secs}s waiting for {what}; control plane log:\n{tail}")
        }
    }
}

fn nodes(api: &Api, pool: &str) -> Vec<Value> {
    // A busy machine may answer 408 now and then: that is "not yet", not a failure.
    let (st, v) = api.call("GET", &format!("/v1/nodes?pool={pool}&limit=100"), None);
    if st != 200 {
        return Vec::new();
    }
    v["nodes"].as_array().cloned().unwrap_or_default()
}

fn serving(api: &Api, pool: &str) -> Vec<Value> {
    nodes(api, pool)
        .into_iter()
        .filter(|n| {
            n["status"] == "active" && n["connectivity"] == "online" && n["health"] != "unhealthy"
        })
        .collect()
}

fn instances(store: &Store, pool: &str) -> Vec<InstanceRow> {
    store
        .list_instances(&InstanceFilter {
            pool: Some(pool.into()),
            limit: 1000,
            ..InstanceFilter::default()
        })
        .unwrap()
        .0
}

fn live_machines(dir: &Path) -> Vec<String> {
    let env = ProviderEnv::new("http://127.0.0.1:1", dir.join("providers"));
    let params = json!({"agent_binary": agent_bin()});
    let p = build("local", params.as_object().unwrap(), &env).unwrap();
    p.list()
        .unwrap()
        .into_iter()
        .filter(|m| m.state != ListedState::Gone)
        .filter_map(|m| m.instance_id)
        .collect()
}

/// Agent processes running for `dir` (found by the state folder in their environment, so an
/// agent no provider lists is counted too); zombies are not.
fn agent_processes(dir: &Path) -> usize {
    let needle = format!("GPUWARDEN_NODE__STATE_DIR={}", dir.display());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            state != Some('Z')
                && env
                    .split(|b| *b == 0)
                    .any(|v| v.starts_with(needle.as_bytes()))
        })
        .count()
}

#[test]
fn a_pool_comes_up_scales_and_replaces_a_node_with_a_fatal_xid() {
    let dir = TempDir::new("pools-local");
    let _agents = Agents(dir.path().to_path_buf());
    let db = store(dir.path());
    create_pool(
        &db,
        json!({"name": "p", "providers": local(json!({})), "min_nodes": 2, "max_nodes": 5, "auto_replace": true,
        "scale_up_cooldown": "1s", "scale_down_cooldown": "1s", "registration_timeout": "60s",
        "budget": {"max_percent": 100, "max_nodes": 2}}),
    );
    let (cp, api) = control_plane(dir.path());
    let t = Instant::now();
    wait(&cp, "two nodes of pool p online", 60, || {
        (serving(&api, "p").len() == 2).then_some(())
    });
    eprintln!("pool of 2 online after {:?}", t.elapsed());
    let now = SystemClock.now_ms();
    db.set_manual_target(
        "p",
        Some(4),
        now,
        NewAudit::ok("test", "pool.scale", "p", json!({"nodes": 4}), now),
    )
    .unwrap();
    let t = Instant::now();
    wait(&cp, "four nodes online", 60, || {
        (serving(&api, "p").len() == 4).then_some(())
    });
    eprintln!("scaled 2 -> 4 in {:?}", t.elapsed());
    wait(&cp, "four instances running", 30, || {
        let running = instances(&db, "p")
            .into_iter()
            .filter(|i| i.state == "running")
            .count();
        (running == 4).then_some(())
    });
    let live = instances(&db, "p")
        .into_iter()
        .filter(|i| i.state != "terminated" && i.state != "failed")
        .count();
    assert_eq!(live, 4, "no instance beyond the target");

    let before: Vec<String> = serving(&api, "p")
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    let bad = serving(&api, "p").remove(0);
    let bad_id = bad["id"].as_str().unwrap().to_string();
    let agent = Api::new(bad["address"].as_str().unwrap(), "");
    let t0 = Instant::now();
    let (st, v) = agent.call(
        "POST",
        "/v1/fake/inject",
        Some(json!({"gpu": 0, "fault": "xid", "code": 79})),
    );
    assert_eq!(st, 200, "{v}");
    let replacement = wait(&cp, "a replacement online", 60, || {
        serving(&api, "p")
            .into_iter()
            .find(|n| !before.contains(&n["id"].as_str().unwrap_or_default().to_string()))
    });
    let t_replacement = t0.elapsed();
    wait(&cp, "the bad node terminated", 60, || {
        (api.get(&format!("/v1/nodes/{bad_id}"))["status"] == "terminated").then_some(())
    });
    let t_terminated = t0.elapsed();
    let cmds = api.get(&format!("/v1/nodes/{bad_id}/commands"))["commands"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let kinds: Vec<&str> = cmds.iter().filter_map(|c| c["kind"].as_str()).collect();
    assert!(
        kinds.contains(&"drain"),
        "drained before it was terminated: {kinds:?}"
    );
    wait_for("back at four healthy nodes", 30, || {
        (serving(&api, "p").len() == 4).then_some(())
    });
    let bad_inst = instances(&db, "p")
        .into_iter()
        .find(|i| i.node_id.as_deref() == Some(bad_id.as_str()))
        .unwrap();
    wait_for("the bad node's instance terminated", 30, || {
        (db.instance(&bad_inst.id).unwrap().state == "terminated").then_some(())
    });
    assert!(
        !live_machines(dir.path()).contains(&bad_inst.id),
        "its agent process is stopped"
    );
    assert_ne!(replacement["id"], bad["id"]);
    // The benchmark's figures (timing: shown with --nocapture, not asserted).
    eprintln!("BENCH fatal XID -> replacement online: {t_replacement:?}; -> bad node terminated: {t_terminated:?}");
}

#[test]
fn an_instance_that_never_registers_is_failed_and_replaced() {
    let dir = TempDir::new("pools-exec");
    let machines = dir.path().join("machines");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/providers/exec-example.sh");
    let script = script.to_str().unwrap();
    let db = store(dir.path());
    create_pool(
        &db,
        json!({"name": "x", "providers": [{"name": "exec", "kind": "exec", "params": {
        "provision": script, "terminate": script, "list": script, "timeout": "10s",
        "env": {"MACHINES_DIR": machines.to_str().unwrap()}}}],
        "min_nodes": 1, "max_nodes": 2, "registration_timeout": "2s", "scale_up_cooldown": "1s"}),
    );
    let (_cp, _api) = control_plane(dir.path());
    let first = wait_for("an instance registering", 30, || {
        instances(&db, "x")
            .into_iter()
            .find(|i| i.state == "registering")
    });
    wait_for("the instance failed and terminated", 30, || {
        (db.instance(&first.id).unwrap().state == InstanceState::Terminated.as_str()).then_some(())
    });
    let row = db.instance(&first.id).unwrap();
    assert!(
        row.error
            .as_deref()
            .unwrap_or_default()
            .contains("did not register"),
        "{row:?}"
    );
    wait_for("a replacement asked for", 30, || {
        instances(&db, "x")
            .into_iter()
            .find(|i| i.id != first.id && i.state == "registering")
    });
    let machine =
        std::fs::read_to_string(machines.join(row.provider_id.as_deref().unwrap())).unwrap();
    assert!(
        machine.contains("state=gone"),
        "the failed instance's machine is terminated: {machine}"
    );
}

#[test]
fn a_control_plane_killed_mid_scale_up_leaves_no_duplicate_and_no_orphan() {
    let dir = TempDir::new("pools-crash");
    let _agents = Agents(dir.path().to_path_buf());
    let db = store(dir.path());
    create_pool(
        &db,
        json!({"name": "c", "providers": local(json!({})), "min_nodes": 3, "max_nodes": 3, "registration_timeout": "60s"}),
    );
    let (mut cp, _api) = control_plane(dir.path());
    // Killed as soon as the first instance is recorded: its provider calls are under way.
    wait_for("an instance recorded", 30, || {
        (!instances(&db, "c").is_empty()).then_some(())
    });
    cp.kill();
    let (cp2, api) = control_plane(dir.path());
    wait(&cp2, "three nodes online after the restart", 90, || {
        (serving(&api, "c").len() == 3).then_some(())
    });
    // Give the reconciler a pass or two, then count.
    std::thread::sleep(Duration::from_secs(3));
    let live: Vec<InstanceRow> = instances(&db, "c")
        .into_iter()
        .filter(|i| i.state != "terminated" && i.state != "failed")
        .collect();
    assert_eq!(live.len(), 3, "no duplicate: {live:?}");
    let mut machines = live_machines(dir.path());
    machines.sort();
    let mut ids: Vec<String> = live.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    assert_eq!(
        machines, ids,
        "every live machine has its live instance: no orphan"
    );
    assert_eq!(
        agent_processes(dir.path()),
        3,
        "no agent process runs that no provider lists"
    );
    if let Ok(f) = std::env::var("GPUWARDEN_TEST_CRASH_LOG") {
        let _ = std::fs::write(f, format!("{}\n=== first\n{}", cp2.log(), cp.log()));
    }
}
