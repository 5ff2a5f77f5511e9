//! Commands across a real SIGKILL of the agent: a hook runs at most once per command id.

use sha2::Digest;

use crate::util::{Agent, Scratch};

/// Issue: after an agent SIGKILL and restart, the hook of a command ran a second time. The
/// agent is killed while the cordon hook runs; the restarted agent reports the command with
/// an unknown outcome and never runs the hook again, however often it is delivered.
#[test]
fn a_hook_running_when_the_agent_is_killed_does_not_run_again() {
    let dir = Scratch::new("cmd-sigkill");
    let log = dir.0.join("hook.log");
    dir.write_secret("node-token", "gwn_sigkill_token\n");
    let cfg = dir.write(
        "agent.toml",
        &format!(
            "[gpu]\nbackend = \"fake\"\nfake_count = 1\n\
             [control_plane]\ntoken_file = \"{tok}\"\n\
             [commands]\ncordon = [\"/bin/sh\", \"-c\", \"echo ran >> {log}; sleep 2\"]\n\
             state_file = \"{state}\"\n",
            tok = dir.0.join("node-token").display(),
            log = log.display(),
            state = dir.0.join("commands.json").display(),
        ),
    );
    let digest: String = sha2::Sha256::digest(b"gwn_sigkill_token")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let body = r#"{"id":"cmd-k1","kind":"cordon","params":{"reason":"xid 79"}}"#;
    let agent = Agent::start(&["--config", cfg.to_str().unwrap()], &[]);
    let (st, b) = agent.post_as("/v1/commands", &digest, body);
    assert_eq!(st, 200, "{b}");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&log).unwrap_or_default().is_empty() {
        assert!(start.elapsed().as_secs() < 10, "the hook never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SIGKILL while the hook runs (a SIGTERM would let the agent record the outcome when the
    // machine is slow enough for the hook to end first).
    agent.kill();

    let agent = Agent::start(&["--config", cfg.to_str().unwrap()], &[]);
    for _ in 0..3 {
        let (st, b) = agent.post_as("/v1/commands", &digest, body);
        assert_eq!(st, 200, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["state"], "failed", "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("outcome unknown"),
            "{v}"
        );
    }
    // Long enough for a second run to show, and for the first hook (orphaned by the kill,
    // in a process group of its own) to end before the test does.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "ran\n",
        "the hook ran twice"
    );
}
