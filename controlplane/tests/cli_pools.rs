//! `gpuwarden pools …` and `gpuwarden instances …` against a real control plane process:
//! create from flags and from a TOML file, every problem of an invalid pool printed, scale
//! within bounds, demand, update keeping what is not given, instances listed; tables and
//! `-o json`.

use std::process::Command;

use gpuwarden_controlplane::store::pool_rows::NewInstance;
use gpuwarden_controlplane::store::{Store, StoreOptions};
use serde_json::Value;

use crate::cli::Server;
use crate::util::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_gpuwarden");

#[test]
fn pools_and_instances_through_the_cli_in_tables_and_json() {
    let token = "cli-pools-token-0123456789";
    let server = Server::start(token);
    let dir = TempDir::new("clipools");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["--server", server.url.as_str(), "--token", token])
            .args(args)
            .env_remove("GPUWARDEN_ADMIN_TOKEN")
            .env_remove("GPUWARDEN_SERVER")
            .env("GPUWARDEN_CLI_CONFIG", "/nonexistent")
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let json = |args: &[&str]| -> (Option<i32>, Value) {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let (code, out, err) = run(&all);
        (
            code,
            serde_json::from_str(&out).unwrap_or_else(|_| panic!("JSON: {out} {err}")),
        )
    };

    let (code, out, err) = run(&[
        "pools",
        "create",
        "train",
        "--provider",
        "fake",
        "--min",
        "2",
        "--max",
        "4",
        "--auto-replace",
        "true",
        "--label",
        "team=ml",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "created pool train\n");
    let file = dir.path().join("infer.toml");
    std::fs::write(
        &file,
        "name = \"infer\"\nprovider = \"fake\"\nmin_nodes = 0\nmax_nodes = 3\n\
         [autoscaler]\ntype = \"queue\"\njobs_per_node = 4\n",
    )
    .unwrap();
    let (code, out, err) = run(&["pools", "create", "--file", file.to_str().unwrap()]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "created pool infer\n"),
        "{err}"
    );

    let (code, out, _) = run(&["pools", "list"]);
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("TARGET"),
        "{out}"
    );
    let train: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("train"))
        .unwrap()
        .split_whitespace()
        .collect();
    // NODES: 0, or 2 once the pool manager acted (creating a pool wakes it at once; the
    // `fake` provider's machines never register, so nothing runs).
    assert!(matches!(train[2], "0" | "2"), "{out}");
    assert_eq!(
        [&train[..2], &train[3..7]].concat(),
        ["train", "api", "2", "2", "4", "fake"],
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("infer") && l.contains("queue")),
        "{out}"
    );
    assert!(out.ends_with("2 pools\n"), "{out}");
    let (code, v) = json(&["pools", "list"]);
    assert_eq!((code, v["total"].as_u64()), (Some(0), Some(2)));

    // Every problem of an invalid pool, one line each; the API's document with -o json.
    let (code, _, err) = run(&[
        "pools",
        "create",
        "bad",
        "--provider",
        "aws",
        "--min",
        "5",
        "--max",
        "4",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("error: the pool is invalid:"), "{err}");
    assert!(
        err.contains("\n  provider: unknown provider kind \"aws\""),
        "{err}"
    );
    assert!(
        err.contains("\n  min_nodes: 5 is more than max_nodes (4)"),
        "{err}"
    );
    let (code, v) = json(&[
        "pools",
        "create",
        "bad",
        "--provider",
        "aws",
        "--min",
        "5",
        "--max",
        "4",
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(v["error"]["code"], "invalid_pool");
    assert_eq!(
        v["error"]["details"].as_array().map(Vec::len),
        Some(2),
        "{v}"
    );
    let (code, _, err) = run(&["pools", "create", "--provider", "local"]);
    assert_eq!(code, Some(2), "no name is a usage error: {err}");

    // Scale within the bounds; outside is refused; --auto hands back.
    let (code, out, _) = run(&["pools", "scale", "train", "3"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "pool train: target 3 (manual)\n")
    );
    let (code, _, err) = run(&["pools", "scale", "train", "9"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("outside the pool's bounds 2..4"), "{err}");
    // No stale target is shown (it is the last decision's until the manager decides again).
    let (code, out, _) = run(&["pools", "scale", "train", "--auto"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "pool train: handed back to its autoscaler (min_nodes without one); the next evaluation sets its target\n"
    );

    let (code, out, _) = run(&["pools", "demand", "infer", "7"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "pool infer: 7 pending jobs\n")
    );
    // Update changes what is given and keeps the rest.
    let (code, out, err) = run(&["pools", "update", "train", "--max", "6"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "updated pool train\n"),
        "{err}"
    );
    let (_, v) = json(&["pools", "get", "train"]);
    assert_eq!(
        (v["min_nodes"].as_u64(), v["max_nodes"].as_u64()),
        (Some(2), Some(6))
    );
    assert_eq!(v["labels"]["team"], "ml");
    assert_eq!(v["auto_replace"], true);
    let (code, out, _) = run(&["pools", "get", "infer"]);
    assert_eq!(code, Some(0));
    assert!(
        out.lines()
            .any(|l| l.starts_with("pending_jobs") && l.ends_with(" 7")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("budget")), "{out}");

    // Instances: what the pool manager records, listed and shown.
    let db = format!(
        "sqlite://{}",
        server._dir.path().join("gpuwarden.db").display()
    );
    let store = Store::open(&db, &StoreOptions::default()).unwrap();
    store
        .create_instance(&NewInstance {
            id: "infer-0001".into(),
            pool: "infer".into(),
            provider: "fake".into(),
            node: None,
            now: 1_800_000_000_000,
        })
        .unwrap();
    let (code, out, _) = run(&["instances", "list", "--pool", "infer"]);
    assert_eq!(code, Some(0));
    assert!(out.lines().next().unwrap().starts_with("ID"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("infer-0001") && l.contains("provisioning")),
        "{out}"
    );
    // Besides those the pool manager asked for the pushed demand (7 jobs, 4 per node).
    assert!(out.ends_with(" instances\n"), "{out}");
    let (_, v) = json(&["instances", "list", "--state", "running"]);
    assert_eq!(v["total"], 0);
    let (code, out, _) = run(&["instances", "get", "infer-0001"]);
    assert_eq!(code, Some(0));
    assert!(
        out.lines()
            .any(|l| l.starts_with("state") && l.ends_with("provisioning")),
        "{out}"
    );
    let (code, v) = json(&["instances", "get", "nope"]);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (Some(1), Some("not_found"))
    );

    // A pool with an instance in flight goes only with --force.
    let (code, _, err) = run(&["pools", "delete", "infer"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("force"), "{err}");
    let (code, out, _) = run(&["pools", "delete", "infer", "--force"]);
    assert_eq!((code, out.as_str()), (Some(0), "deleted pool infer\n"));
}
