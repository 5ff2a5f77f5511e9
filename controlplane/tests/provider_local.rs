//! The `local` provider with the real `gpuwarden-agent` and a real `gpuwarden serve`: an
//! agent it starts joins with its instance's join token and comes online; a provider
//! built anew (a control-plane restart) finds it and stops it, and the node deregisters.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gpuwarden_controlplane::pool::provider::{
    build, ListedState, Provider, ProviderEnv, ProvisionRequest,
};
use gpuwarden_testkit::{wait_for, Api, Launch, Proc};
use serde_json::json;

use crate::util::TempDir;

const ADMIN: &str = "provider-admin-token-0123456789";

/// `gpuwarden-agent`, built as the end-to-end tests build it (one binary for both).
pub(crate) fn agent_binary() -> PathBuf {
    gpuwarden_testkit::bins().join("gpuwarden-agent")
}

/// A control plane on an ephemeral port with a SQLite file in `dir`, scraping every second.
fn control_plane(dir: &TempDir) -> (Proc, Api) {
    let cfg = dir.write(
        "cp.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\n\n[database]\nurl = \"sqlite://{d}/gw.db\"\nflush_interval = \"1s\"\n\n[scrape]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
            d = dir.path().display()
        ),
    );
    let p = Launch::new(env!("CARGO_BIN_EXE_gpuwarden"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .env_remove("GPUWARDEN_BOOTSTRAP_TOKEN")
        .envs(&[("GPUWARDEN_ADMIN_TOKEN", ADMIN)])
        .current_dir(dir.path())
        .start();
    let api = Api::new(&p.base, ADMIN);
    (p, api)
}

/// Creates the node `name` in `pool` and issues its join token, as the pool manager does.
fn join_token(api: &Api, name: &str, pool: &str) -> String {
    let (st, node) = api.call(
        "POST",
        "/v1/nodes",
        Some(json!({"name": name, "pool": pool})),
    );
    assert_eq!(st, 201, "{node}");
    let id = node["id"].as_str().unwrap();
    let (st, t) = api.call("POST", &format!("/v1/nodes/{id}/token"), None);
    assert!(st == 200 || st == 201, "{t}");
    t["token"].as_str().unwrap().to_string()
}

fn provider(dir: &TempDir) -> std::sync::Arc<dyn Provider> {
    let env = ProviderEnv::new("http://127.0.0.1:1", dir.path().join("providers"));
    let params = json!({
        "gpus": 2,
        "agent_binary": agent_binary().to_str().unwrap(),
        "grace": "10s",
        "env": {"GPUWARDEN_COLLECTOR__INTERVAL": "500ms"},
    });
    build("local", params.as_object().unwrap(), &env).unwrap()
}

#[test]
fn a_local_agent_joins_with_its_token_and_survives_a_control_plane_restart() {
    let dir = TempDir::new("provider-local");
    let (_cp, api) = control_plane(&dir);
    let token = join_token(&api, "demo-1", "demo");
    let req = ProvisionRequest {
        instance_id: "inst-1".into(),
        pool: "demo".into(),
        node_name: "demo-1".into(),
        instance_type: String::new(),
        region: String::new(),
        zone: None,
        labels: BTreeMap::new(),
        join_token: token.clone(),
        control_plane_url: api.base.clone(),
    };
    let first = provider(&dir);
    let t = std::time::Instant::now();
    let m = first.provision(&req).unwrap();
    let provisioned = t.elapsed();
    let node = wait_for("demo-1 online", 30, || {
        let (st, v) = api.call("GET", "/v1/nodes/demo-1", None);
        (st == 200 && v["connectivity"] == "online" && v["scrape"]["up"] == true).then_some(v)
    });
    // Not asserted (timing): shown with --nocapture.
    eprintln!(
        "local provision: agent listening after {provisioned:?}, node online after {:?}",
        t.elapsed()
    );
    assert_eq!(node["status"], "active");
    assert_eq!(node["pool"], "demo");
    assert_eq!(node["address"].as_str(), m.address.as_deref());
    assert_eq!(node["gpus"].as_array().map(Vec::len), Some(2), "{node}");
    let log = std::fs::read_to_string(
        dir.path()
            .join("providers/local/instances/inst-1/agent.log"),
    )
    .unwrap();
    assert!(log.contains("listening"), "{log}");
    assert!(!log.contains(&token), "the join token is not logged");

    // The control plane restarts: a provider built anew finds the agent and stops it.
    drop(first);
    let second = provider(&dir);
    let listed = second.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].provider_id, m.provider_id);
    assert_eq!(listed[0].instance_id.as_deref(), Some("inst-1"));
    assert_eq!(listed[0].state, ListedState::Running);
    second.terminate(&m.provider_id).unwrap();
    assert!(second.list().unwrap().is_empty());
    // SIGTERM is a graceful stop: the agent deregistered its node on the way out.
    wait_for("demo-1 deregistered", 10, || {
        (api.get("/v1/nodes/demo-1")["deregistered"] == true).then_some(())
    });
}
