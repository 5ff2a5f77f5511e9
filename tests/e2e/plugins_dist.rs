//! Plugins distributed from the control plane, with real processes: push a component, assign
//! it to a pool of two agents and both run it; assign a new version and both switch; corrupt
//! uploads are refused and change nothing; a version that fails its first run is refused and
//! the previous one keeps running; an agent that was down when the assignment changed
//! catches up when it returns; a plugin configured on the node runs beside the assigned ones.

use gpuwarden_e2e::{cli, wait_for, Api, Scratch};
use serde_json::{json, Value};

use crate::cp::{self, ADMIN};

fn sha256_hex(f: &std::path::Path) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(std::fs::read(f).unwrap());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn component(name: &str) -> std::path::PathBuf {
    gpuwarden_testkit::plugins().join(format!("{name}.wasm"))
}

/// `push FILE --name NAME` through the CLI; the digest it printed.
fn push(api: &Api, file: &std::path::Path, name: &str) -> String {
    let (code, out, err) = cli(
        &[
            "-o",
            "json",
            "plugins",
            "push",
            file.to_str().unwrap(),
            "--name",
            name,
        ],
        &api.base,
        ADMIN,
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["digest"].as_str().unwrap().to_string()
}

/// The pool's drift view once every node in it runs `digest` of plugin `name`.
fn all_run(api: &Api, pool: &str, name: &str, digest: &str, nodes: usize) -> Value {
    wait_for(
        &format!("{nodes} nodes of {pool} running {name}@{digest}"),
        60,
        || {
            let v = api.get(&format!("/v1/pools/{pool}/plugins"));
            let ok = v["nodes"].as_array().is_some_and(|n| {
                n.len() == nodes
                    && n.iter().all(|n| {
                        n["plugins"].as_array().is_some_and(|p| {
                            p.iter().any(|p| {
                                p["name"] == name
                                    && p["running"] == digest
                                    && p["state"] == "in_sync"
                            })
                        })
                    })
            });
            ok.then_some(v)
        },
    )
}

/// What agent `base` says it runs of plugin `name`: (sha256 hex, loaded).
fn agent_runs(base: &str, name: &str) -> Option<(String, bool)> {
    let v = Api::new(base, "").get("/v1/plugins");
    v["plugins"].as_array()?.iter().find_map(|p| {
        (p["name"] == name).then(|| {
            (
                p["sha256"].as_str().unwrap_or_default().to_string(),
                p["loaded"] == true,
            )
        })
    })
}

#[test]
fn plugins_pushed_and_assigned_to_a_pool_run_on_its_agents_and_follow_new_versions() {
    let dir = Scratch::new("plugins-dist");
    let (_cp, api) = cp::start(&dir, "");
    // gpu-01 also has a plugin of its own (thermal, from its config file).
    let thermal = component("thermal");
    let local = format!(
        "pool = \"a\"\n[[plugins]]\nname = \"own-thermal\"\npath = \"{}\"\nsha256 = \"{}\"\n",
        thermal.display(),
        sha256_hex(&thermal)
    );
    let a1 = cp::agent_with(&api.base, "gpu-01", &dir, &local);
    let mut a2 = cp::agent_with(&api.base, "gpu-02", &dir, "pool = \"a\"\n");
    cp::online(&api, "gpu-01");
    cp::online(&api, "gpu-02");

    // Corrupt uploads are refused, nothing stored.
    let xid = component("xid");
    let bytes = std::fs::read(&xid).unwrap();
    let http = gpuwarden_testkit::http::client();
    let zero = format!("sha256:{}", "0".repeat(64));
    let r = http
        .post(&format!("{}/v1/plugins?name=check&digest={zero}", api.base))
        .header("Authorization", &format!("Bearer {ADMIN}"))
        .send(&bytes[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 422, "a digest mismatch");
    let mut cut = bytes.clone();
    cut.truncate(bytes.len() / 2);
    let mut r = http
        .post(&format!("{}/v1/plugins?name=check", api.base))
        .header("Authorization", &format!("Bearer {ADMIN}"))
        .send(&cut[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 422, "a truncated component");
    let body = r.body_mut().read_to_string().unwrap();
    assert!(body.contains("not a valid component"), "{body}");
    assert_eq!(api.get("/v1/plugins")["plugins"], json!([]));

    // v1 (the xid check) to pool a: both agents run it, beside gpu-01's own plugin.
    let v1 = push(&api, &xid, "check");
    assert_eq!(
        push(&api, &xid, "check"),
        v1,
        "the same bytes again: the same digest"
    );
    let (code, out, err) = cli(
        &[
            "plugins",
            "assign",
            "check",
            "--pool",
            "a",
            "--config",
            "window_seconds=600",
            "--interval",
            "1s",
        ],
        &api.base,
        ADMIN,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("assigned to pool a"), "{out}");
    let view = all_run(&api, "a", "check", &v1, 2);
    let n1 = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "gpu-01")
        .unwrap();
    assert!(
        n1["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "own-thermal" && p["state"] == "local"),
        "the node's own plugin runs beside: {n1}"
    );
    assert_eq!(n1["in_sync"], true);
    let hex1 = v1.trim_start_matches("sha256:").to_string();
    assert_eq!(agent_runs(&a1.base, "check"), Some((hex1.clone(), true)));
    assert_eq!(agent_runs(&a2.base, "check"), Some((hex1.clone(), true)));
    // The assigned check runs and its results reach the agent's metrics.
    wait_for("the assigned check's runs", 30, || {
        let m = http
            .get(&format!("{}/metrics", a1.base))
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()?;
        m.lines()
            .any(|l| {
                l.starts_with("gpuwarden_health_check_status{") && l.contains("check=\"check\"")
            })
            .then_some(())
    });

    // gpu-02 goes down; v2 (thermal's component) is assigned; gpu-01 switches.
    a2.stop();
    let v2 = push(&api, &thermal, "check");
    assert_ne!(v1, v2);
    let (code, _, err) = cli(
        &["plugins", "assign", "check", "--pool", "a", "--digest", &v2],
        &api.base,
        ADMIN,
    );
    assert_eq!(code, 0, "{err}");
    let hex2 = v2.trim_start_matches("sha256:").to_string();
    wait_for("gpu-01 on v2", 60, || {
        (agent_runs(&a1.base, "check") == Some((hex2.clone(), true))).then_some(())
    });
    let (code, out, err) = cli(&["plugins", "status", "--pool", "a"], &api.base, ADMIN);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("gpu-02 ") && l.contains("pending")),
        "gpu-02 is behind: {out}"
    );
    assert!(out.contains("1 node(s) in sync, 1 drifted"), "{out}");

    // gpu-02 returns and catches up.
    let a2 = cp::agent_with(&api.base, "gpu-02", &dir, "pool = \"a\"\n");
    all_run(&api, "a", "check", &v2, 2);
    assert_eq!(agent_runs(&a2.base, "check"), Some((hex2.clone(), true)));

    // Both up: back to v1 by its digest, and both switch.
    let (code, _, err) = cli(
        &["plugins", "assign", "check", "--pool", "a", "--digest", &v1],
        &api.base,
        ADMIN,
    );
    assert_eq!(code, 0, "{err}");
    all_run(&api, "a", "check", &v1, 2);
    let (v2, hex2) = (v1.clone(), hex1.clone()); // what runs from here on

    // A version whose first run fails (it traps) is refused; the running one stays.
    let bad = push(&api, &component("trap"), "check");
    let (code, _, err) = cli(
        &[
            "plugins", "assign", "check", "--pool", "a", "--digest", &bad,
        ],
        &api.base,
        ADMIN,
    );
    assert_eq!(code, 0, "{err}");
    let v = wait_for("the trapping version refused on both", 60, || {
        let v = api.get("/v1/pools/a/plugins");
        let refused = v["nodes"].as_array()?.iter().all(|n| {
            n["plugins"].as_array().is_some_and(|p| {
                p.iter()
                    .any(|p| p["name"] == "check" && p["state"] == "refused" && p["running"] == v2)
            })
        });
        refused.then_some(v)
    });
    let err = v["nodes"][0]["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "check")
        .unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("first run failed"), "{err}");
    assert_eq!(agent_runs(&a1.base, "check"), Some((hex2.clone(), true)));
    assert_eq!(v["drifted"], 2);

    // An assigned component cannot be deleted; unassigned, the agents stop it.
    let (st, _) = api.call("DELETE", &format!("/v1/plugins/{bad}"), None);
    assert_eq!(st, 409);
    let (code, _, err) = cli(
        &["plugins", "unassign", "check", "--pool", "a"],
        &api.base,
        ADMIN,
    );
    assert_eq!(code, 0, "{err}");
    wait_for("check stopped on both agents", 60, || {
        (agent_runs(&a1.base, "check").is_none() && agent_runs(&a2.base, "check").is_none())
            .then_some(())
    });
    assert!(agent_runs(&a1.base, "own-thermal").is_some_and(|r| r.1));
    let (st, _) = api.call("DELETE", &format!("/v1/plugins/{bad}"), None);
    assert_eq!(st, 204);
    let audit = api.get("/v1/audit?limit=50");
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "plugin.push",
        "plugins.assign",
        "plugins.unassign",
        "plugin.delete",
    ] {
        assert!(actions.contains(&a), "{a} audited: {actions:?}");
    }
}
