//! Commands across agent restarts and crashes: a hook runs at most once per command id.

use super::*;

#[test]
fn commands_survive_an_agent_restart_and_are_not_run_again() {
    let dir = Dir::new("restart");
    let state = dir.0.join("commands.json");
    let log = dir.0.join("hook.log");
    let mut c = cfg();
    c.cordon = sh(&format!("echo ran >> {}", log.display()));
    {
        let (cmds, _, _) = runner(c.clone(), Some(state.clone()));
        cmds.submit(req("cmd-c", "cordon", "")).unwrap();
        wait_final(&cmds, "cmd-c");
        wait_final_on_disk(&state, "cmd-c");
    }
    // A drain that was running when the agent stopped, and a terminate.
    let mut kept: Vec<CommandStatus> =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let mut running = kept[0].clone();
    running.id = "cmd-d".into();
    running.kind = "drain".into();
    running.state = CommandState::Running;
    running.result = serde_json::json!({"params": {"timeout": "100ms"}});
    let mut term = running.clone();
    term.id = "cmd-t".into();
    term.kind = "terminate".into();
    term.result = serde_json::json!({"params": {}, "hook_started_at": "2026-11-30T05:00:00Z"});
    kept.push(running);
    kept.push(term);
    std::fs::write(&state, serde_json::to_vec(&kept).unwrap()).unwrap();

    let (cmds, _, _) = runner(c, Some(state.clone()));
    let again = cmds.submit(req("cmd-c", "cordon", "")).unwrap();
    assert_eq!(again.state, CommandState::Succeeded);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "ran\n",
        "the hook ran once"
    );
    // The drain was taken up again with its parameters, and ended: the fake GPUs run nothing.
    let d = wait_final(&cmds, "cmd-d");
    assert_eq!(d.state, CommandState::Succeeded, "{d:?}");
    assert_eq!(d.result["completed_by"], "idle", "{d:?}");
    let t = cmds.status("cmd-t").unwrap();
    assert_eq!(t.state, CommandState::Failed);
    assert!(
        t.message.contains("outcome unknown") && t.message.contains("not run again"),
        "{}",
        t.message
    );
}

/// Issue: after an agent SIGKILL and restart, the drain hook of a command that had already
/// finished ran a second time. The crash is reproduced exactly: each hook copies the state
/// file as it is while the hook runs (what a SIGKILL between the hook's exit and the record
/// of its end leaves behind), and the next agent starts from that copy.
#[test]
fn a_hook_that_started_before_a_crash_never_runs_a_second_time() {
    let dir = Dir::new("crash");
    let state = dir.0.join("commands.json");
    let at_crash = dir.0.join("at-crash.json");
    let log = dir.0.join("hook.log");
    let hook = |kind: &str| {
        sh(&format!(
            "echo {kind} >> {log}; cp {state} {at_crash}",
            log = log.display(),
            state = state.display(),
            at_crash = at_crash.display()
        ))
    };
    let mut c = cfg();
    c.cordon = hook("cordon");
    c.uncordon = hook("uncordon");
    c.terminate = hook("terminate");
    c.drain = hook("drain");
    c.drain_until = DrainUntil::Either;
    for kind in ["cordon", "uncordon", "terminate", "drain"] {
        let _ = std::fs::remove_file(&log);
        let id = format!("cmd-{kind}");
        {
            let (cmds, fake, snap) = runner(c.clone(), Some(state.clone()));
            // Work on the GPUs: the drain completes by its hook, which runs to its end.
            fake.inject(0, Fault::Processes(1)).unwrap();
            publish(&fake, &snap);
            cmds.submit(req(&id, kind, "xid 79")).unwrap();
            let s = wait_final(&cmds, &id);
            assert_eq!(s.state, CommandState::Succeeded, "{s:?}");
            // This agent's last write must be on disk before the stand-in crash replaces it.
            wait_final_on_disk(&state, &id);
        }
        // The agent dies right after the hook exits, before the end is recorded.
        std::fs::copy(&at_crash, &state).unwrap();
        // The GPUs are still busy when the agent comes back (set before it resumes anything).
        let (cmds, fake, snap) = runner_busy(c.clone(), Some(state.clone()), 1);
        if kind == "drain" {
            // The drain's wait for idle GPUs resumes; the hook does not run again.
            std::thread::sleep(Duration::from_millis(150));
            assert_eq!(cmds.status(&id).unwrap().state, CommandState::Running);
            fake.clear(None).unwrap();
            publish(&fake, &snap);
            let s = wait_final(&cmds, &id);
            assert_eq!(s.state, CommandState::Succeeded, "{s:?}");
            assert_eq!(s.result["completed_by"], "idle", "{s:?}");
            assert_eq!(s.result["resumed_after_restart"], true, "{s:?}");
            assert!(s.message.contains("not run again"), "{}", s.message);
        } else {
            let s = cmds.status(&id).unwrap();
            assert_eq!(s.state, CommandState::Failed, "{s:?}");
            assert!(s.message.contains("outcome unknown"), "{}", s.message);
        }
        // Delivered again after the restart: still the same one run.
        let again = cmds.submit(req(&id, kind, "xid 79")).unwrap();
        assert_eq!(again.id, id);
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            format!("{kind}\n"),
            "the {kind} hook ran once"
        );
    }
}

/// A command received just before a crash whose hook had not started yet runs after the
/// restart: the record says the hook never started, so running it is the first run.
#[test]
fn a_command_whose_hook_never_started_runs_after_a_restart() {
    let dir = Dir::new("notstarted");
    let state = dir.0.join("commands.json");
    let log = dir.0.join("hook.log");
    let mut c = cfg();
    c.terminate = sh(&format!("echo terminate >> {}", log.display()));
    let received = CommandStatus {
        id: "cmd-t".into(),
        kind: "terminate".into(),
        state: CommandState::Running,
        message: "running".into(),
        result: serde_json::json!({"params": {"reason": "unhealthy"}}),
        received_at: "2026-11-30T05:00:00Z".into(),
        finished_at: None,
    };
    std::fs::write(&state, serde_json::to_vec(&[received]).unwrap()).unwrap();
    let (cmds, _, _) = runner(c, Some(state.clone()));
    let s = wait_final(&cmds, "cmd-t");
    assert_eq!(s.state, CommandState::Succeeded, "{s:?}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "terminate\n");
}

/// When the start of a hook cannot be recorded, the hook does not start.
#[test]
fn a_hook_does_not_start_when_its_start_cannot_be_recorded() {
    let dir = Dir::new("unrecordable");
    let log = dir.0.join("hook.log");
    let mut c = cfg();
    c.cordon = sh(&format!("echo cordon >> {}", log.display()));
    // The state file's folder does not exist: nothing can be written there.
    let (cmds, _, _) = runner(c, Some(dir.0.join("missing").join("commands.json")));
    cmds.submit(req("cmd-c", "cordon", "")).unwrap();
    let s = wait_final(&cmds, "cmd-c");
    assert_eq!(s.state, CommandState::Failed, "{s:?}");
    assert!(
        s.message.contains("the hook was not started"),
        "{}",
        s.message
    );
    assert!(!log.exists(), "the hook ran");
}
