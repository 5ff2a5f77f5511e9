//! `[[pools]]` in the control plane's config: applied to the database at start (created,
//! updated, taken over from the API, removed when no longer declared), their remediation
//! winning over the older `[remediation.pools.NAME]` with a warning, and every problem of
//! a bad pool reported by `--check-config` with its key and the file.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use gpuwarden_controlplane::clock::FakeClock;
use gpuwarden_controlplane::config::{ControlPlaneConfig, Overrides, Plan};
use gpuwarden_controlplane::model::pool::PoolSpec;
use gpuwarden_controlplane::serve::{self, EnvTokens};
use gpuwarden_controlplane::store::pool_rows::{PoolRow, SOURCE_API};
use gpuwarden_controlplane::store::rows::NewAudit;
use gpuwarden_controlplane::store::{Store, StoreOptions};

use crate::util::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_gpuwarden");

fn write_config(dir: &Path, pools: &str) -> std::path::PathBuf {
    let file = dir.join("cp.toml");
    let db = dir.join("gw.db");
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"sqlite://{}\"\n\
             [remediation]\naction = \"cordon\"\n\
             [remediation.pools.train]\naction = \"nothing\"\n{pools}",
            db.display()
        ),
    )
    .unwrap();
    file
}

/// Starts the control plane with `file` and stops it again: what it applied at start stays.
fn start_and_stop(file: &Path) {
    start_and_stop_with(ControlPlaneConfig::load(Some(file), &Overrides::default()).unwrap());
}

/// Starts the control plane with `cfg` and stops it again.
fn start_and_stop_with(cfg: ControlPlaneConfig) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let env = EnvTokens {
        admin: Some("admin-token-for-config-pools-01".into()),
        bootstrap: None,
    };
    let running = rt
        .block_on(serve::start(
            cfg,
            env,
            Arc::new(FakeClock::at(1_800_000_000_000)),
        ))
        .unwrap();
    rt.block_on(running.stop());
}

const TWO_POOLS: &str =
    "[[pools]]\nname = \"train\"\nprovider = \"local\"\nmin_nodes = 1\nmax_nodes = 3\n\
    [pools.remediation]\naction = \"cordon_drain\"\ndrain_timeout = \"2h\"\n\
    [[pools]]\nname = \"infer\"\nprovider = \"fake\"\nmin_nodes = 0\nmax_nodes = 2\n";

#[test]
fn config_pools_are_applied_at_start_and_removed_when_no_longer_declared() {
    crate::util::logs();
    let dir = TempDir::new("cfgpools");
    let file = write_config(dir.path(), TWO_POOLS);
    let cfg = ControlPlaneConfig::load(Some(&file), &Overrides::default()).unwrap();
    // The pool's remediation wins over [remediation.pools.train], and a warning says so.
    assert_eq!(
        cfg.remediation.for_pool("train"),
        (Plan::CordonDrain, std::time::Duration::from_secs(7200))
    );
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(
        cfg.warnings[0].starts_with("remediation.pools.train: overridden"),
        "{:?}",
        cfg.warnings
    );
    // A pool without a plan of its own inherits: the global `cordon` here, never more.
    assert_eq!(cfg.remediation.for_pool("infer").0, Plan::Cordon);
    // ...and the older `[remediation.pools.NAME]` when there is one, without a warning.
    let bare = write_config(
        dir.path(),
        "[[pools]]\nname = \"train\"\nprovider = \"fake\"\nmin_nodes = 0\nmax_nodes = 2\n",
    );
    let inherited = ControlPlaneConfig::load(Some(&bare), &Overrides::default()).unwrap();
    assert_eq!(inherited.remediation.for_pool("train").0, Plan::Nothing);
    assert!(inherited.warnings.is_empty(), "{:?}", inherited.warnings);
    let file = write_config(dir.path(), TWO_POOLS);

    // An API pool of a name the config declares later: the config takes it over.
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let store = Store::open(&url, &StoreOptions::default()).unwrap();
    let api = PoolSpec::new("infer", "local", 0, 9);
    store
        .create_pool(
            &PoolRow::new(&api, SOURCE_API, None, 1).unwrap(),
            NewAudit::ok("t", "pool.create", "infer", serde_json::json!({}), 1),
        )
        .unwrap();
    drop(store);

    start_and_stop(&file);
    let store = Store::open(&url, &StoreOptions::default()).unwrap();
    let abs = std::path::absolute(&file).unwrap().display().to_string();
    let rows = store.pools().unwrap();
    let names: Vec<(&str, &str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.name.as_str(), r.source.as_str(), r.source_file.as_deref()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("infer", "config", Some(abs.as_str())),
            ("train", "config", Some(abs.as_str()))
        ]
    );
    assert_eq!(
        store.pool("infer").unwrap().spec().unwrap().max_nodes,
        2,
        "the file's spec wins"
    );
    drop(store);

    // Declared no more: removed at the next start; the other stays with its new spec.
    let file = write_config(
        dir.path(),
        "[[pools]]\nname = \"train\"\nprovider = \"local\"\nmin_nodes = 2\nmax_nodes = 4\n",
    );
    start_and_stop(&file);
    let store = Store::open(&url, &StoreOptions::default()).unwrap();
    let rows = store.pools().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].spec().unwrap().min_nodes, 2);
    drop(store);

    // Started without a config file (`gpuwarden serve` with flags and environment only):
    // nothing declares pools, so the file's pool is left as it is, not removed.
    let mut cfg = ControlPlaneConfig::load(Some(&file), &Overrides::default()).unwrap();
    cfg.file = None;
    cfg.pools.clear();
    start_and_stop_with(cfg);
    let store = Store::open(&url, &StoreOptions::default()).unwrap();
    let rows = store.pools().unwrap();
    assert_eq!(rows.len(), 1, "kept without a config file");
    assert_eq!(rows[0].source, "config");
}

#[test]
fn check_config_lists_every_problem_of_every_pool_with_its_key_and_file() {
    let dir = TempDir::new("cfgpools-bad");
    let bad = "[[pools]]\nname = \"a\"\nprovider = \"aws\"\nmin_nodes = 5\nmax_nodes = 4\n\
        scale_up_cooldown = \"soon\"\n\
        [pools.autoscaler]\ntype = \"reactive\"\nstep = 0\n\
        [[pools]]\nname = \"a\"\nprovider = \"local\"\nmin_nodes = 0\nmax_nodes = 1\n\
        [[pools]]\nname = \"c\"\nprovider = \"local\"\nmin_nodes = 0\nmax_nodes = 1\ncolour = \"red\"\n";
    let file = write_config(dir.path(), bad);
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--check-config", file.to_str().unwrap()]);
    for (k, _) in std::env::vars() {
        if k.starts_with("GPUWARDEN_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let abs = std::path::absolute(&file).unwrap().display().to_string();
    for want in [
        "pools[0] (a).provider: unknown provider kind \"aws\"",
        "pools[0] (a).min_nodes: 5 is more than max_nodes (4)",
        "pools[0] (a).scale_up_cooldown",
        "pools[0] (a).autoscaler.step",
        "pools[1] (a).name: \"a\" appears twice",
        "colour",
    ] {
        let line = err.lines().find(|l| l.contains(want));
        assert!(
            line.is_some_and(|l| l.contains(&abs)),
            "{want} with the file in:\n{err}"
        );
    }

    // A valid file with the old and new remediation of one pool: valid, with a warning.
    let file = write_config(dir.path(), TWO_POOLS);
    let out = Command::new(BIN)
        .args(["serve", "--check-config", file.to_str().unwrap()])
        .env("GPUWARDEN_ADMIN_TOKEN", "admin-token-for-config-pools-01")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: remediation.pools.train: overridden"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args([
            "-o",
            "json",
            "serve",
            "--check-config",
            file.to_str().unwrap(),
        ])
        .env("GPUWARDEN_ADMIN_TOKEN", "admin-token-for-config-pools-01")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["valid"], true);
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("remediation.pools.train"),
        "{v}"
    );
}

/// A config pool's providers are checked as the API checks them (`providers[I].params`):
/// `--check-config` and `serve` list those problems with the spec's own, each naming the
/// file, the pool and the field, and refuse to start.
#[test]
fn config_pools_provider_params_are_checked_by_check_config_and_serve() {
    let dir = TempDir::new("cfgpools-params");
    let bad = "[[pools]]\nname = \"batch\"\nmin_nodes = 0\nmax_nodes = 2\n\
        [[pools.providers]]\nname = \"ops\"\nkind = \"exec\"\n\
        [[pools.providers]]\nname = \"here\"\nkind = \"local\"\ngpus = 0\nzzz = 1\n\
        [[pools]]\nname = \"infer\"\nprovider = \"local\"\nmin_nodes = 3\nmax_nodes = 2\n\
        [[pools]]\nname = \"mixed\"\nprovider = \"fake\"\nmin_nodes = 0\nmax_nodes = 2\n\
        [pools.autoscaler]\ntype = \"composite\"\n\
        [[pools.autoscaler.autoscalers]]\ntype = \"queue\"\n\
        [[pools.autoscaler.autoscalers]]\ntype = \"composite\"\nmode = \"median\"\n\
        [[pools.autoscaler.autoscalers.autoscalers]]\ntype = \"queue\"\n";
    let file = write_config(dir.path(), bad);
    let abs = std::path::absolute(&file).unwrap().display().to_string();
    let clean = |cmd: &mut Command| {
        for (k, _) in std::env::vars() {
            if k.starts_with("GPUWARDEN_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("GPUWARDEN_ADMIN_TOKEN", "admin-token-for-config-pools-01");
    };
    let want = [
        "pools[0] (batch).providers[0].params: provider exec: param \"provision\"",
        "pools[0] (batch).providers[0].params: provider exec: param \"terminate\"",
        "pools[0] (batch).providers[0].params: provider exec: param \"list\"",
        "pools[0] (batch).providers[1].params: provider local: param \"gpus\"",
        "pools[0] (batch).providers[1].params: provider local: param \"zzz\"",
        "pools[1] (infer).min_nodes: 3 is more than max_nodes (2)",
        // A composite's bad mode, with the path to it (not `pools.2.autoscaler`).
        "pools.2.autoscaler.autoscalers[1].mode: unknown",
    ];
    for args in [
        vec!["serve", "--check-config", file.to_str().unwrap()],
        vec!["serve", "--config", file.to_str().unwrap()],
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(&args).current_dir(dir.path());
        clean(&mut cmd);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        for w in want {
            assert!(
                err.lines().any(|l| l.contains(w) && l.contains(&abs)),
                "{args:?}: {w} with the file in:\n{err}"
            );
        }
    }
    assert!(
        !dir.path().join("gw.db").exists(),
        "serve refused before opening the database"
    );

    // A configuration loaded without the check (a library caller) is refused by start.
    let cfg = ControlPlaneConfig::load(Some(&file), &Overrides::default());
    assert!(cfg.is_err(), "the spec's own rules still apply");
    let ok = write_config(
        dir.path(),
        "[[pools]]\nname = \"batch\"\nmin_nodes = 0\nmax_nodes = 2\n\
         [[pools.providers]]\nname = \"ops\"\nkind = \"exec\"\n",
    );
    let cfg = ControlPlaneConfig::load(Some(&ok), &Overrides::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = EnvTokens {
        admin: Some("admin-token-for-config-pools-01".into()),
        bootstrap: None,
    };
    let err = rt
        .block_on(serve::start(cfg, env, Arc::new(FakeClock::at(1))))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pools[0] (batch).providers[0].params: provider exec"),
        "{err}"
    );
}

/// A `[[pools]]` entry's `plugins` are the pool's assignments: applied at start (a digest
/// not pushed yet is kept, for agents to report missing until it is), each problem named by
/// its key, and the API refuses to change them (409: the file owns them).
#[test]
fn config_pools_declare_their_plugins() {
    let dir = TempDir::new("config-pool-plugins");
    let d = format!("sha256:{}", "ab".repeat(32));
    let file = write_config(
        dir.path(),
        &format!(
            "[[pools]]\nname = \"train\"\nprovider = \"fake\"\nmin_nodes = 0\nmax_nodes = 2\n\
             [[pools.plugins]]\nname = \"xid\"\ndigest = \"{d}\"\ninterval = \"30s\"\n\
             config = {{ window_seconds = 600 }}\n"
        ),
    );
    start_and_stop(&file);
    let store = Store::open(
        &format!("sqlite://{}", dir.path().join("gw.db").display()),
        &StoreOptions::default(),
    )
    .unwrap();
    let rows = store.plugin_assignments(Some("train")).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0].digest.as_str(),
            rows[0].interval_ms,
            rows[0].config.as_str()
        ),
        (d.as_str(), Some(30_000), "{\"window_seconds\":\"600\"}")
    );
    assert_eq!(rows[0].assigned_by, "config");

    // Every problem of a bad entry, by key.
    let bad = write_config(
        dir.path(),
        "[[pools]]\nname = \"train\"\nprovider = \"fake\"\nmin_nodes = 0\nmax_nodes = 2\n\
         [[pools.plugins]]\nname = \"x y\"\ninterval = \"0s\"\n",
    );
    let out = Command::new(BIN)
        .args(["serve", "--check-config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for key in [
        "pools[0] (train).plugins[0].name",
        "pools[0] (train).plugins[0].digest: is required",
        "pools[0] (train).plugins[0].interval",
    ] {
        assert!(err.contains(key), "{key}: {err}");
    }
}
