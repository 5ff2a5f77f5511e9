//! A node joined with the config that `gpuwarden nodes token` prints survives restarts.

use gpuwarden_e2e::{cli, start_bin, wait_for, Proc, Scratch};

use crate::cp::{self, ADMIN};

/// The agent config and systemd unit printed for `name`, with a fresh join token.
fn issue(api_base: &str, name: &str) -> (String, String) {
    let (code, _, err) = cli(
        &["nodes", "create", name, "--pool", "train"],
        api_base,
        ADMIN,
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&["nodes", "token", name, "-o", "json"], api_base, ADMIN);
    assert_eq!(code, 0, "{err}");
    let issued: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The control plane listens on an ephemeral port: the printed URL (its external URL) is
    // replaced by the real one; the rest of the config is used as printed.
    let config = issued["agent_config"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("url = ") {
                format!("url = \"{api_base}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    (config, issued["systemd_unit"].as_str().unwrap().to_string())
}

/// The printed config as it is; the test only moves the state folder into its scratch
/// folder and runs fake GPUs, through the environment (as an operator's drop-in would).
fn start(cfg: &std::path::Path, state: &std::path::Path, dir: &Scratch) -> Proc {
    start_bin(
        "gpuwarden-agent",
        &["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[
            ("GPUWARDEN_NODE__STATE_DIR", state.to_str().unwrap()),
            ("GPUWARDEN_GPU__BACKEND", "fake"),
        ],
        dir.path(),
    )
}

/// Issue: a joined agent could not restart. The printed config kept the node token in
/// memory only, so after the first restart the spent join token was refused for ever.
#[test]
fn an_agent_joined_with_a_join_token_comes_back_after_restarts_as_the_same_node() {
    let dir = Scratch::new("rejoin");
    let (_cp, api) = cp::start(&dir, "");
    let (config, unit) = issue(&api.base, "gpu-21");
    assert!(
        config.contains("state_dir = \"/var/lib/gpuwarden-agent\""),
        "{config}"
    );
    assert!(
        unit.contains("StateDirectory=gpuwarden-agent")
            && unit.contains("RestartPreventExitStatus=78"),
        "{unit}"
    );
    let cfg = dir.write("agent.toml", &config);
    let state = dir.path().join("state");

    let mut agent = start(&cfg, &state, &dir);
    let first = cp::online(&api, "gpu-21");
    let kept = std::fs::read_to_string(state.join("node-token")).unwrap();
    assert!(
        kept.trim().starts_with("gwn_"),
        "the node token is kept in the state folder"
    );

    // SIGKILL (a crash, an OOM kill): no deregistration; the restart rejoins.
    agent.kill();
    let mut agent = start(&cfg, &state, &dir);
    wait_for("registered again after SIGKILL", 30, || {
        agent
            .log()
            .contains("registered with the control plane")
            .then_some(())
    });
    let again = cp::online(&api, "gpu-21");
    assert_eq!(again["id"], first["id"], "the same node after a crash");

    // A graceful restart deregisters and rejoins, still the same node.
    agent.stop();
    let agent = start(&cfg, &state, &dir);
    let back = wait_for("online again after a restart", 30, || {
        let v = api.get("/v1/nodes/gpu-21");
        (v["deregistered"] == false && v["connectivity"] == "online").then_some(v)
    });
    assert_eq!(back["id"], first["id"], "the same node after a restart");
    assert!(
        !agent.log().contains("refused every credential"),
        "{}",
        agent.log()
    );
}

/// A spent join token and no kept node token (the state folder was wiped): the agent says
/// why and exits 78, which the printed unit does not restart, instead of retrying silently.
#[test]
fn a_spent_join_token_without_a_kept_node_token_stops_the_agent_with_a_clear_error() {
    let dir = Scratch::new("spent");
    let (_cp, api) = cp::start(&dir, "");
    let (config, _) = issue(&api.base, "gpu-22");
    let cfg = dir.write("agent.toml", &config);
    let state = dir.path().join("state");
    let mut agent = start(&cfg, &state, &dir);
    cp::online(&api, "gpu-22");
    agent.stop();
    std::fs::remove_dir_all(&state).unwrap();

    let mut agent = start(&cfg, &state, &dir);
    let status = agent
        .wait_exit(30)
        .unwrap_or_else(|| panic!("the agent kept running:\n{}", agent.log()));
    assert_eq!(status.code(), Some(78), "{}", agent.log());
    let log = agent.log();
    assert!(
        log.contains("refused every credential") && log.contains("gpuwarden nodes token"),
        "{log}"
    );
}
