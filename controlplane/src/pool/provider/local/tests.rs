//! The local provider's bookkeeping with a stand-in agent (a shell script that logs the
//! agent's `listening addr=` line): state across restarts, reused pids, signals, start-up
//! failures. `tests/provider_local.rs` runs the real agent against a real control plane.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::clock::FakeClock;

const TOKEN: &str = "gwj_local_token_0123456789";

struct Rig {
    dir: gpuwarden_testkit::Scratch,
}

impl Rig {
    fn new(tag: &str) -> Self {
        let dir = gpuwarden_testkit::Scratch::new(tag);
        let agent = dir.write(
            "fake-agent.sh",
            r#"#!/bin/sh
echo "$@" > "$GPUWARDEN_NODE__STATE_DIR/args"
env > "$GPUWARDEN_NODE__STATE_DIR/env"
case "${FAKE_MODE:-}" in
exit78) echo "the control plane refused the join token" >&2; exit 78 ;;
crash) echo "panicked at nothing" >&2; exit 3 ;;
silent) exec sleep 300 ;;
stubborn) trap '' TERM ;;
esac
echo "2026-11-30T10:00:00Z  INFO gpuwarden_agent: listening addr=127.0.0.1:$((20000 + $$ % 20000)) interval=1s" >&2
exec sleep 300
"#,
        );
        std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    fn provider(&self, mode: &str, extra: serde_json::Value) -> LocalProvider {
        let mut env = ProviderEnv::new("http://127.0.0.1:1", self.dir.path().join("providers"));
        env.agent_binary = Some(self.dir.path().join("fake-agent.sh"));
        env.clock = Arc::new(FakeClock::at(1_000));
        let mut params =
            json!({"gpus": 2, "grace": "5s", "start_timeout": "5s", "env": {"FAKE_MODE": mode}});
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        LocalProvider::from_params(params.as_object().unwrap(), &env).unwrap()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Stop whatever a failed test left running.
        let p = self.provider("", json!({"grace": "0s"}));
        for l in p.list().unwrap_or_default() {
            let _ = p.terminate(&l.provider_id);
        }
    }
}

fn req(instance: &str) -> ProvisionRequest {
    ProvisionRequest {
        instance_id: instance.into(),
        pool: "demo".into(),
        node_name: format!("demo-{instance}"),
        instance_type: String::new(),
        region: String::new(),
        zone: None,
        labels: BTreeMap::new(),
        join_token: TOKEN.into(),
        control_plane_url: "http://127.0.0.1:8410".into(),
    }
}

fn listed(p: &LocalProvider) -> Vec<(String, ListedState)> {
    p.list()
        .unwrap()
        .into_iter()
        .map(|l| (l.instance_id.unwrap(), l.state))
        .collect()
}

#[test]
fn an_agent_started_by_one_run_is_listed_and_stopped_by_the_next() {
    let rig = Rig::new("local-restart");
    let first = rig.provider("", json!({}));
    let m = first.provision(&req("i-1")).unwrap();
    assert_eq!(m.provider_id, "local-i-1");
    assert!(m
        .address
        .as_deref()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    // The same instance again: the same agent.
    assert_eq!(first.provision(&req("i-1")).unwrap(), m);
    let k = state::load(first.state_dir(), "i-1").unwrap().unwrap();
    assert_eq!((k.node_name.as_str(), k.started_ms), ("demo-i-1", 1_000));

    // The join token reaches the agent in its environment, not on its command line.
    let agent_state = state::dir(first.state_dir(), "i-1").join("agent-state");
    let args = std::fs::read_to_string(agent_state.join("args")).unwrap();
    assert_eq!(
        args.trim(),
        "--fake-gpus 2 --listen 127.0.0.1:0 --control-plane http://127.0.0.1:8410"
    );
    let env = std::fs::read_to_string(agent_state.join("env")).unwrap();
    for want in [
        format!("GPUWARDEN_CONTROL_PLANE__TOKEN={TOKEN}"),
        "GPUWARDEN_NODE__ID=demo-i-1".into(),
        "GPUWARDEN_CONTROL_PLANE__POOL=demo".into(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing: {env}");
    }

    // The control plane restarts: a new provider over the same folder.
    drop(first);
    let second = rig.provider("", json!({}));
    assert_eq!(listed(&second), vec![("i-1".into(), ListedState::Running)]);
    assert_eq!(second.provision(&req("i-1")).unwrap(), m, "no second agent");
    second.terminate("local-i-1").unwrap();
    assert!(!proc::alive(k.pid, k.start_ticks));
    assert!(listed(&second).is_empty());
    assert!(k.log.exists(), "the log stays");
    // Already gone: fine.
    second.terminate("local-i-1").unwrap();
    second.terminate("local-never").unwrap();
    assert_eq!(
        second.terminate("../etc").unwrap_err().kind,
        ErrorKind::InvalidRequest
    );
}

#[test]
fn a_dead_agent_is_gone_and_a_reused_pid_is_not_ours() {
    let rig = Rig::new("local-dead");
    let p = rig.provider("", json!({}));
    p.provision(&req("i-1")).unwrap();
    p.provision(&req("i-2")).unwrap();
    let k1 = state::load(p.state_dir(), "i-1").unwrap().unwrap();
    proc::signal(k1.pid, Signal::KILL);
    gpuwarden_testkit::wait_for("i-1 gone", 5, || {
        (listed(&p)[0].1 == ListedState::Gone).then_some(())
    });
    assert_eq!(listed(&p)[1], ("i-2".into(), ListedState::Running));

    // i-2's state names another start time: the process behind that pid is not ours, so
    // it is listed as gone and terminate leaves it alone.
    let mut k2 = state::load(p.state_dir(), "i-2").unwrap().unwrap();
    let real = k2.clone();
    k2.start_ticks += 1;
    state::save(p.state_dir(), &k2).unwrap();
    assert_eq!(listed(&p)[1].1, ListedState::Gone);
    p.terminate("local-i-2").unwrap();
    assert!(
        proc::alive(real.pid, real.start_ticks),
        "a stranger was killed"
    );
    proc::signal(real.pid, Signal::KILL);
}

#[test]
fn an_agent_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let rig = Rig::new("local-stubborn");
    let p = rig.provider("stubborn", json!({"grace": "300ms"}));
    p.provision(&req("i-1")).unwrap();
    let k = state::load(p.state_dir(), "i-1").unwrap().unwrap();
    let t = Instant::now();
    p.terminate("local-i-1").unwrap();
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(!proc::alive(k.pid, k.start_ticks));
}

#[test]
fn agents_that_fail_to_start_say_why_and_leave_nothing_running() {
    let rig = Rig::new("local-fail");
    let e = rig
        .provider("exit78", json!({}))
        .provision(&req("i-1"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.message.contains("refused the join token"), "{e}");
    let e = rig
        .provider("crash", json!({}))
        .provision(&req("i-2"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Other, "{e}");
    assert!(
        e.message
            .contains("exited (exit status: 3) before listening: panicked at nothing"),
        "{e}"
    );

    let p = rig.provider("silent", json!({"start_timeout": "1s"}));
    let e = p.provision(&req("i-3")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.message.contains("did not listen within 1s"), "{e}");
    assert!(
        listed(&p).is_empty(),
        "no state kept for agents that never listened"
    );
    let e = p.provision(&req("bad/id")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
}

#[test]
fn invalid_params_are_all_reported_at_once() {
    let env = ProviderEnv::new("http://127.0.0.1:1", "/nonexistent");
    let e = LocalProvider::from_params(
        json!({"gpus": 0, "agent_binary": "/nonexistent/agent", "grace": "-1s", "port": 1})
            .as_object()
            .unwrap(),
        &env,
    )
    .unwrap_err();
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(e[0].contains("\"gpus\": must be a whole number from 1 to 64"));
    assert!(e[1].contains("\"agent_binary\": /nonexistent/agent is not an executable file"));
    assert!(e[2].contains("\"grace\""));
    assert!(e[3].contains("\"port\": unknown"));
}

/// A newcomer's find: with `server.data_dir = "."` (the default) the state folder was
/// relative, and every agent refused it (`node.state_dir … is not an absolute path`).
#[test]
fn a_relative_state_folder_is_made_absolute_for_the_agents() {
    let agent = std::env::current_exe().unwrap(); // any executable file
    let env = ProviderEnv::new("http://127.0.0.1:1", "./providers");
    let p = LocalProvider::from_params(json!({"agent_binary": agent}).as_object().unwrap(), &env)
        .unwrap();
    assert!(p.state_dir().is_absolute(), "{}", p.state_dir().display());
    assert!(p.state_dir().ends_with("providers/local"));
    let given = LocalProvider::from_params(
        json!({"agent_binary": agent, "state_dir": "rel/dir"})
            .as_object()
            .unwrap(),
        &env,
    )
    .unwrap();
    assert!(given.state_dir().is_absolute());
}

/// A breaker's find: a pool's `state_dir` changed while its agents ran; terminating an
/// instance then found no state and left the agent running. It is found by its instance.
#[test]
fn an_agent_started_under_another_state_folder_is_still_stopped() {
    let rig = Rig::new("local-moved");
    let before = rig.provider("", json!({"state_dir": rig.dir.path().join("old")}));
    before.provision(&req("i-moved")).unwrap();
    let k = state::load(before.state_dir(), "i-moved").unwrap().unwrap();
    assert!(proc::alive(k.pid, k.start_ticks));
    let after = rig.provider("", json!({"state_dir": rig.dir.path().join("new")}));
    after.terminate("local-i-moved").unwrap();
    assert!(!proc::alive(k.pid, k.start_ticks), "the agent is stopped");
}
