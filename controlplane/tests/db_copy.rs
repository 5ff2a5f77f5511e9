//! `gpuwarden db copy`: a control plane that ran on SQLite (nodes that joined, a fatal XID
//! with its events, transitions and commands, a pool with its instances and decisions, the
//! audit log) moved to a real PostgreSQL server, and a control plane started on it shows the
//! same fleet and goes on writing.

use std::process::Command;
use std::time::Duration;

use gpuwarden_testkit::{wait_for, Api, Launch, Proc};
use serde_json::{json, Value};

use crate::provider_local::agent_binary;
use crate::util::{Postgres, TempDir};

const ADMIN: &str = "db-copy-admin-token-0123456789";
const BOOT: &str = "db-copy-bootstrap-token-0123456";

fn control_plane(dir: &TempDir, db: &str) -> (Proc, Api) {
    let cfg = dir.write(
        "cp.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[database]\nurl = \"{db}\"\nflush_interval = \"1s\"\n\n\
             [scrape]\ninterval = \"1s\"\ntimeout = \"1s\"\n\n[commands]\npoll_interval = \"200ms\"\n\n\
             [pool_manager]\ninterval = \"300ms\"\n",
            dir.path().display()
        ),
    );
    let p = Launch::new(env!("CARGO_BIN_EXE_gpuwarden"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .envs(&[
            ("GPUWARDEN_ADMIN_TOKEN", ADMIN),
            ("GPUWARDEN_BOOTSTRAP_TOKEN", BOOT),
        ])
        .current_dir(dir.path())
        .start();
    let api = Api::new(&p.base, ADMIN);
    (p, api)
}

fn agent(cp: &str, name: &str, dir: &TempDir) -> Proc {
    Launch::new(agent_binary())
        .args([
            "--fake-gpus",
            "2",
            "--listen",
            "127.0.0.1:0",
            "--control-plane",
            cp,
        ])
        .envs(&[
            ("GPUWARDEN_BOOTSTRAP_TOKEN", BOOT),
            ("GPUWARDEN_NODE__ID", name),
            ("GPUWARDEN_COLLECTOR__INTERVAL", "300ms"),
        ])
        .current_dir(dir.path())
        .start()
}

/// What the operator sees of the fleet: each node's name, lifecycle, health and GPUs; the
/// XID events of `bad`; the pool; how many audit entries.
fn view(api: &Api, bad: &str) -> Value {
    let (st, nodes) = api.call("GET", "/v1/nodes?limit=100", None);
    assert_eq!(st, 200, "{nodes}");
    let mut n: Vec<Value> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            json!([
                n["name"],
                n["status"],
                n["health"],
                n["gpus"].as_array().map(Vec::len)
            ])
        })
        .collect();
    n.sort_by_key(|v| v.to_string());
    let (_, events) = api.call("GET", &format!("/v1/nodes/{bad}/events"), None);
    let xids: Vec<Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!([e["kind"], e["code"], e["severity"]]))
        .collect();
    let (_, pool) = api.call("GET", "/v1/pools/spare", None);
    let (_, audit) = api.call("GET", "/v1/audit?limit=1000", None);
    json!({"nodes": n, "xids": xids, "pool": [pool["name"], pool["min_nodes"]],
           "audit": audit["entries"].as_array().map(Vec::len)})
}

#[test]
fn a_sqlite_control_plane_moves_to_postgresql_with_db_copy() {
    let Some(pg) = Postgres::start() else { return };
    let dir = TempDir::new("db-copy");
    let sqlite = format!("sqlite://{}", dir.path().join("gw.db").display());
    let (mut cp, api) = control_plane(&dir, &sqlite);
    let a = agent(&api.base, "gpu-a", &dir);
    let _b = agent(&api.base, "gpu-b", &dir);
    for n in ["gpu-a", "gpu-b"] {
        wait_for(&format!("{n} online"), 30, || {
            let (st, v) = api.call("GET", &format!("/v1/nodes/{n}"), None);
            (st == 200 && v["connectivity"] == "online").then_some(())
        });
    }
    let (st, _) = Api::new(&a.base, "").call(
        "POST",
        "/v1/fake/inject",
        Some(json!({"gpu": 1, "fault": "xid", "code": 79})),
    );
    assert_eq!(st, 200);
    wait_for("gpu-a condemned and cordoned", 30, || {
        let (_, v) = api.call("GET", "/v1/nodes/gpu-a", None);
        (v["health"] == "unhealthy" && v["status"] != "active").then_some(())
    });
    let (st, v) = api.call(
        "POST",
        "/v1/pools",
        Some(json!({"name": "spare", "provider": "fake", "min_nodes": 1, "max_nodes": 2})),
    );
    assert_eq!(st, 201, "{v}");
    wait_for("the pool's instance", 30, || {
        let (_, v) = api.call("GET", "/v1/instances?pool=spare", None);
        (!v["instances"].as_array()?.is_empty()).then_some(())
    });
    // A plugin component: bytes of every value, which JSON cannot carry as they are.
    let component = crate::plugins_api::component_with(&(0..=255u8).collect::<Vec<_>>());
    let digest = crate::plugins_api::push_raw(&api, "every-byte", &component);
    std::thread::sleep(Duration::from_millis(1500)); // a flush of the observations
    let before = view(&api, "gpu-a");
    drop(_b);
    drop(a);
    cp.stop();

    let pg_url = pg.database("moved");
    let db_file = dir.path().join("gw.db");
    let source_before = std::fs::read(&db_file).unwrap();
    let copy = |to: &str| {
        Command::new(env!("CARGO_BIN_EXE_gpuwarden"))
            .args(["db", "copy", "--from", &sqlite, "--to", to])
            .output()
            .unwrap()
    };
    let out = copy(&pg_url);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("copied "), "{stdout}");
    for table in [
        "nodes",
        "events",
        "transitions",
        "commands",
        "audit",
        "pools",
        "instances",
    ] {
        assert!(
            stderr.contains(&format!("  {table}: ")),
            "progress for {table}: {stderr}"
        );
    }
    assert!(
        std::fs::read(&db_file).unwrap() == source_before,
        "the source is read, never written"
    );
    // A file that is no gpuwarden database (a breaker's find: it was migrated into one)
    // is refused and left as it is.
    let empty = dir.write("empty.db", "");
    let out = Command::new(env!("CARGO_BIN_EXE_gpuwarden"))
        .args(["db", "copy", "--from"])
        .arg(format!("sqlite://{}", empty.display()))
        .args(["--to", &pg.database("other")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a gpuwarden database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    // Again into the same (now full) database: refused, nothing changed.
    let again = copy(&pg_url);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    // Wrong directions and missing files are usage errors.
    let bad = copy("sqlite:///tmp/x.db");
    assert_eq!(bad.status.code(), Some(2));

    // The control plane on PostgreSQL shows the same fleet, and goes on writing.
    let pg_dir = TempDir::new("db-copy-pg");
    let (_cp2, api2) = control_plane(&pg_dir, &pg_url);
    let after = view(&api2, "gpu-a");
    assert_eq!(before["nodes"], after["nodes"]);
    assert_eq!(before["xids"], after["xids"]);
    assert_eq!(before["pool"], after["pool"]);
    assert!(
        after["audit"].as_u64() >= before["audit"].as_u64(),
        "{before} {after}"
    );
    assert_eq!(
        crate::plugins_api::blob(&api2, &digest),
        component,
        "the component's bytes moved as they were"
    );
    let (st, v) = api2.call("POST", "/v1/nodes", Some(json!({"name": "gpu-new"})));
    assert_eq!(
        st, 201,
        "new rows take fresh ids after the copied ones: {v}"
    );
    let (_, audit) = api2.call("GET", "/v1/audit?limit=1", None);
    assert_eq!(audit["entries"][0]["details"]["name"], "gpu-new", "{audit}");
}
