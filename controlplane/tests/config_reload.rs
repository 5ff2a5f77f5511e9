//! The config file's `[[pools]]` applied while the control plane runs: on SIGHUP (a real
//! `gpuwarden serve` process, seen through `GET /v1/pools`) and when the file changes
//! (in process), created, updated and removed as at start; an invalid edit changes nothing
//! and is logged, counted and audited; other sections wait for a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gpuwarden_controlplane::clock::FakeClock;
use gpuwarden_controlplane::config::{ControlPlaneConfig, Overrides};
use gpuwarden_controlplane::serve::reload::PoolsReload;
use gpuwarden_controlplane::serve::{self, EnvTokens};
use gpuwarden_testkit::{poll, Api, Launch, Proc};
use serde_json::Value;

use crate::util::TempDir;

const ADMIN: &str = "admin-token-for-config-reload-01";

fn write(dir: &Path, server: &str, pools: &str) -> std::path::PathBuf {
    let file = dir.join("cp.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\n{server}\n\
             [database]\nurl = \"sqlite://{d}/gw.db\"\n\n\
             [pool_manager]\ninterval = \"1h\"\nreconcile_interval = \"1h\"\n\n{pools}",
            d = dir.display()
        ),
    )
    .unwrap();
    file
}

fn pool(name: &str, min: u32, max: u32) -> String {
    format!(
        "[[pools]]\nname = \"{name}\"\nprovider = \"fake\"\nmin_nodes = {min}\nmax_nodes = {max}\n"
    )
}

/// The pools as `GET /v1/pools` lists them: (name, min, max, source).
fn listed(api: &Api) -> Vec<(String, u64, u64, String)> {
    api.get("/v1/pools")["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["min_nodes"].as_u64().unwrap(),
                p["max_nodes"].as_u64().unwrap(),
                p["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn hup(p: &Proc) {
    let pid = p.pid().expect("running").to_string();
    let st = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(st.success());
}

fn wait_listed(p: &Proc, api: &Api, what: &str, want: &[(&str, u64, u64)]) {
    let want: Vec<(String, u64, u64, String)> = want
        .iter()
        .map(|(n, a, b)| (n.to_string(), *a, *b, "config".to_string()))
        .collect();
    let got = poll(Duration::from_secs(15), || {
        let l = listed(api);
        (l == want).then_some(l)
    });
    assert!(got.is_some(), "{what}: {:?}\n{}", listed(api), p.log());
}

fn metric(api: &Api, result: &str) -> f64 {
    let text = gpuwarden_testkit::http::client()
        .get(format!("{}/metrics", api.base))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let series = format!("gpuwarden_cp_pool_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} in\n{text}"))
}

#[test]
fn sighup_applies_the_config_pools_and_an_invalid_edit_keeps_them() {
    let dir = TempDir::new("reload-hup");
    let server = "config_reload_interval = \"0s\"";
    let file = write(
        dir.path(),
        server,
        &format!("{}{}", pool("train", 0, 2), pool("infer", 0, 1)),
    );
    let p = Launch::new(env!("CARGO_BIN_EXE_gpuwarden"))
        .args(["serve", "--config", file.to_str().unwrap()])
        .env_remove("GPUWARDEN_BOOTSTRAP_TOKEN")
        .envs(&[("GPUWARDEN_ADMIN_TOKEN", ADMIN), ("RUST_LOG", "info")])
        .current_dir(dir.path())
        .start();
    let api = Api::new(&p.base, ADMIN);
    wait_listed(&p, &api, "at start", &[("infer", 0, 1), ("train", 0, 2)]);

    // Created, updated and removed in one reload.
    write(
        dir.path(),
        server,
        &format!("{}{}", pool("train", 1, 4), pool("batch", 0, 3)),
    );
    hup(&p);
    wait_listed(
        &p,
        &api,
        "after SIGHUP",
        &[("batch", 0, 3), ("train", 1, 4)],
    );
    assert_eq!(metric(&api, "applied"), 1.0);

    // Invalid: every problem logged, counted and audited; the pools stay as they are.
    write(
        dir.path(),
        server,
        "[[pools]]\nname = \"train\"\nprovider = \"fake\"\nmin_nodes = 5\nmax_nodes = 4\n\
         [[pools]]\nname = \"ops\"\nmin_nodes = 0\nmax_nodes = 1\n\
         [[pools.providers]]\nname = \"e\"\nkind = \"exec\"\n",
    );
    hup(&p);
    let rejected = poll(Duration::from_secs(15), || {
        (metric(&api, "rejected") == 1.0).then_some(())
    });
    assert!(rejected.is_some(), "{}", p.log());
    assert_eq!(
        listed(&api),
        vec![
            ("batch".to_string(), 0, 3, "config".to_string()),
            ("train".to_string(), 1, 4, "config".to_string())
        ],
        "an invalid file changes nothing"
    );
    let log = p.log();
    for want in [
        "pools[0] (train).min_nodes: 5 is more than max_nodes (4)",
        "pools[1] (ops).providers[0].params",
        "the running pools stay",
    ] {
        assert!(log.contains(want), "{want} in\n{log}");
    }
    let audit = api.get("/v1/audit?limit=20");
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "pools.reload")
        .unwrap_or_else(|| panic!("pools.reload in {audit}"))
        .clone();
    assert!(
        entry["result"].as_str().unwrap().starts_with("rejected"),
        "{entry}"
    );

    // Another section changed: not applied, a warning says it needs a restart; the pools
    // of the same file are applied.
    write(
        dir.path(),
        "config_reload_interval = \"0s\"\nworkers = 3",
        &pool("train", 1, 4),
    );
    hup(&p);
    wait_listed(&p, &api, "after the fix", &[("train", 1, 4)]);
    let log = p.log();
    assert!(
        log.contains("take effect at the next start") && log.contains("sections=server"),
        "{log}"
    );
    assert!(
        api.try_call("GET", "/healthz", None).is_ok(),
        "SIGHUP does not end it"
    );
}

#[test]
fn an_edit_of_the_file_is_applied_and_a_lowered_max_clamps_the_manual_target() {
    let dir = TempDir::new("reload-watch");
    let server = "config_reload_interval = \"100ms\"";
    let file = write(dir.path(), server, &pool("train", 0, 6));
    let cfg = ControlPlaneConfig::load(Some(&file), &Overrides::default()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let env = EnvTokens {
        admin: Some(ADMIN.into()),
        bootstrap: None,
    };
    let running = rt
        .block_on(serve::start(
            cfg,
            env,
            Arc::new(FakeClock::at(1_800_000_000_000)),
        ))
        .unwrap();
    let api = Api::new(&format!("http://{}", running.addr), ADMIN);
    let (st, v) = api.call(
        "POST",
        "/v1/pools/train/scale",
        Some(serde_json::json!({"nodes": 5})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(running.reload_pools(), Some(PoolsReload::Unchanged));

    // Edited, not signalled: the watcher applies it.
    write(dir.path(), server, &pool("train", 0, 3));
    let v = poll(Duration::from_secs(10), || {
        let v = api.get("/v1/pools/train");
        (v["max_nodes"] == 3).then_some(v)
    })
    .expect("the edit applied");
    assert_eq!(
        (v["manual_target"].as_u64(), v["target"].as_u64()),
        (Some(3), Some(3)),
        "{v}"
    );
    let why: Vec<&Value> = v["decisions"].as_array().unwrap().iter().collect();
    assert!(
        why.iter().any(|d| d["reasons"][0]
            .as_str()
            .unwrap_or("")
            .contains("manual target 5 clamped to 3")),
        "{v}"
    );

    // Removed from the file: no longer a config pool. The pool manager has given it
    // machines by now (manual target 3), so it is handed back to the API, not deleted with
    // its machines orphaned; without machines it would be removed.
    write(dir.path(), server, "");
    match running.reload_pools() {
        Some(PoolsReload::Applied(done)) => assert!(
            done.handed_back == ["train"] || done.removed == ["train"],
            "{done:?}"
        ),
        // The watcher may have been first.
        Some(PoolsReload::Unchanged) => {}
        other => panic!("{other:?}"),
    }
    let pools = api.get("/v1/pools");
    assert!(
        pools["pools"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["source"] == "api"),
        "{pools}"
    );
    // Unreadable TOML: rejected with the file named, nothing changes.
    std::fs::write(&file, "[[pools]\nname = ").unwrap();
    match running.reload_pools() {
        Some(PoolsReload::Rejected(p)) => assert!(!p.is_empty()),
        other => panic!("{other:?}"),
    }
    rt.block_on(running.stop());
}
