use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use gpuwarden_wire::command::{CommandParams, CommandRequest, CommandState, CommandStatus};

use super::*;
use crate::backend::fake::{FakeBackend, Fault};
use crate::backend::GpuBackend;
use crate::collector::Snapshot;
use crate::config::DrainUntil;
use sha2::{Digest, Sha256};

struct Dir(PathBuf);
impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "gw-cmd-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A snapshot of `fake`'s GPUs as they are now.
fn publish(fake: &Arc<FakeBackend>, snap: &SharedSnapshot) {
    let inv = fake.inventory().unwrap();
    let gpus = inv
        .gpus
        .iter()
        .map(|g| (g.clone(), fake.sample(g.index).ok()))
        .collect();
    *snap.write().unwrap() = Arc::new(Snapshot {
        gpus,
        ..Snapshot::default()
    });
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

fn cfg() -> CommandsConfig {
    CommandsConfig {
        drain_poll: Duration::from_millis(20),
        hook_timeout: Duration::from_secs(10),
        ..CommandsConfig::default()
    }
}

fn req(id: &str, kind: &str, reason: &str) -> CommandRequest {
    CommandRequest {
        id: id.into(),
        kind: kind.into(),
        params: CommandParams {
            reason: Some(reason.into()),
            ..CommandParams::default()
        },
    }
}

fn wait_final(c: &Commands, id: &str) -> CommandStatus {
    let start = Instant::now();
    loop {
        let s = c.status(id).expect("known command");
        if s.state.is_final() {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{id} never ended: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the state file at `path` itself records command `id` as ended. The worker
/// sets the end in memory before it writes the file, so [`wait_final`] can return while that
/// write is still under way; a test that then stands in for a crash by replacing the file
/// must wait for the write first, or the write lands on the replacement.
fn wait_final_on_disk(path: &std::path::Path, id: &str) {
    let start = Instant::now();
    loop {
        let ended = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<CommandStatus>>(&b).ok())
            .is_some_and(|all| all.iter().any(|s| s.id == id && s.state.is_final()));
        if ended {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{id}'s end was never written to {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn runner(
    cfg: CommandsConfig,
    state: Option<PathBuf>,
) -> (Commands, Arc<FakeBackend>, SharedSnapshot) {
    runner_busy(cfg, state, 0)
}

/// [`runner`] whose GPU 0 runs `processes` compute processes from the start, before the
/// runner resumes anything it finds in `state`.
fn runner_busy(
    cfg: CommandsConfig,
    state: Option<PathBuf>,
    processes: u32,
) -> (Commands, Arc<FakeBackend>, SharedSnapshot) {
    let fake = Arc::new(FakeBackend::new(2, "Fake H100", 7));
    if processes > 0 {
        fake.inject(0, Fault::Processes(processes))
            .expect("GPU 0 exists");
    }
    let snap: SharedSnapshot = Arc::new(RwLock::new(Arc::default()));
    publish(&fake, &snap);
    (
        Commands::new(cfg, "gpu-node-1".into(), snap.clone(), None, state),
        fake,
        snap,
    )
}

#[test]
fn a_cordon_runs_its_hook_once_however_often_it_is_delivered() {
    let dir = Dir::new("once");
    let log = dir.0.join("hook.log");
    let mut c = cfg();
    c.cordon = vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("echo \"$1 $2\" >> {}", log.display()),
        "hook".into(),
        "{node}".into(),
        "{reason}".into(),
    ];
    let (cmds, _, _) = runner(c, None);
    let first = cmds
        .submit(req("cmd-a1", "cordon", "xid 79 on gpu 0"))
        .unwrap();
    assert_eq!(first.kind, "cordon");
    let done = wait_final(&cmds, "cmd-a1");
    assert_eq!(done.state, CommandState::Succeeded, "{done:?}");
    for _ in 0..3 {
        let again = cmds.submit(req("cmd-a1", "cordon", "other")).unwrap();
        assert_eq!(again, done);
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "gpu-node-1 xid 79 on gpu 0\n"
    );
    // The same id for another kind is a conflict, not a second command.
    let e = cmds.submit(req("cmd-a1", "drain", "")).unwrap_err();
    assert!(e.to_string().contains("received before as a cordon"), "{e}");
}

#[test]
fn bad_requests_are_refused_with_the_reason() {
    let (cmds, _, _) = runner(cfg(), None);
    let e = cmds.submit(req("cmd-1", "reboot", "")).unwrap_err();
    assert!(
        e.to_string().contains("unknown command kind \"reboot\""),
        "{e}"
    );
    let e = cmds.submit(req("cmd 1;", "cordon", "")).unwrap_err();
    assert!(e.to_string().contains("[A-Za-z0-9_-]"), "{e}");
    let mut r = req("cmd-2", "drain", "");
    r.params.timeout = Some("soon".into());
    assert!(cmds
        .submit(r)
        .unwrap_err()
        .to_string()
        .contains("params.timeout"));
    assert!(cmds.list().is_empty(), "nothing was recorded");
}

#[test]
fn a_failing_hook_fails_the_command_and_terminate_needs_a_hook() {
    let mut c = cfg();
    c.uncordon = sh("echo 'scontrol: node unknown' >&2; exit 1");
    let (cmds, _, _) = runner(c, None);
    cmds.submit(req("cmd-u", "uncordon", "")).unwrap();
    let s = wait_final(&cmds, "cmd-u");
    assert_eq!(s.state, CommandState::Failed);
    assert!(
        s.message.contains("exited 1: scontrol: node unknown"),
        "{}",
        s.message
    );
    assert_eq!(s.result["hook"]["exit"], 1);

    cmds.submit(req("cmd-t", "terminate", "")).unwrap();
    let s = wait_final(&cmds, "cmd-t");
    assert_eq!(s.state, CommandState::Failed);
    assert!(
        s.message.contains("no commands.terminate hook"),
        "{}",
        s.message
    );
}

#[test]
fn a_drain_without_a_hook_waits_for_the_gpus_to_empty() {
    let (cmds, fake, snap) = runner(cfg(), None);
    fake.inject(1, Fault::Processes(2)).unwrap();
    publish(&fake, &snap);
    cmds.submit(req("cmd-d", "drain", "unhealthy")).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(cmds.status("cmd-d").unwrap().state, CommandState::Running);
    fake.inject(1, Fault::Processes(0)).unwrap();
    publish(&fake, &snap);
    let s = wait_final(&cmds, "cmd-d");
    assert_eq!(s.state, CommandState::Succeeded);
    assert_eq!(s.result["completed_by"], "idle");
}

#[test]
fn a_drain_ends_at_its_timeout_and_says_what_was_left() {
    let (cmds, fake, snap) = runner(cfg(), None);
    fake.inject(0, Fault::Processes(3)).unwrap();
    publish(&fake, &snap);
    let mut r = req("cmd-d", "drain", "");
    r.params.timeout = Some("200ms".into());
    cmds.submit(r).unwrap();
    let s = wait_final(&cmds, "cmd-d");
    assert_eq!(s.state, CommandState::Succeeded);
    assert_eq!(s.result["completed_by"], "timeout");
    assert!(
        s.message.contains("3 compute processes left"),
        "{}",
        s.message
    );
}

#[test]
fn a_drain_hook_completes_the_drain_or_fails_it() {
    let mut c = cfg();
    c.drain = sh("sleep 0.1");
    c.drain_until = DrainUntil::Hook;
    let (cmds, fake, snap) = runner(c.clone(), None);
    fake.inject(0, Fault::Processes(1)).unwrap();
    publish(&fake, &snap);
    cmds.submit(req("cmd-h", "drain", "")).unwrap();
    let s = wait_final(&cmds, "cmd-h");
    assert_eq!(s.result["completed_by"], "hook", "{s:?}");

    // `idle`: the hook exiting 0 is not enough while processes run.
    c.drain_until = DrainUntil::Idle;
    let (cmds, fake, snap) = runner(c.clone(), None);
    fake.inject(0, Fault::Processes(1)).unwrap();
    publish(&fake, &snap);
    cmds.submit(req("cmd-i", "drain", "")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cmds.status("cmd-i").unwrap().state, CommandState::Running);
    fake.clear(None).unwrap();
    publish(&fake, &snap);
    assert_eq!(wait_final(&cmds, "cmd-i").result["completed_by"], "idle");

    c.drain = sh("echo 'kubectl: cannot evict' >&2; exit 1");
    let (cmds, fake, snap) = runner(c, None);
    fake.inject(0, Fault::Processes(1)).unwrap();
    publish(&fake, &snap);
    cmds.submit(req("cmd-f", "drain", "")).unwrap();
    let s = wait_final(&cmds, "cmd-f");
    assert_eq!(s.state, CommandState::Failed);
    assert!(s.message.contains("cannot evict"), "{}", s.message);
}

#[test]
fn an_uncordon_cancels_a_running_drain() {
    let (cmds, fake, snap) = runner(cfg(), None);
    fake.inject(0, Fault::Processes(1)).unwrap();
    publish(&fake, &snap);
    cmds.submit(req("cmd-d", "drain", "")).unwrap();
    cmds.submit(req("cmd-u", "uncordon", "")).unwrap();
    let s = wait_final(&cmds, "cmd-d");
    assert_eq!(s.state, CommandState::Failed);
    assert!(s.message.contains("cancelled by an uncordon"));
}

#[test]
fn only_the_digest_of_the_current_node_token_authenticates() {
    let auth = CommandAuth::default();
    assert_eq!(auth.check("anything"), None, "no token yet");
    auth.set_token("gwn_secret\n");
    let digest: String = Sha256::digest(b"gwn_secret")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(auth.check(&digest), Some(true));
    assert_eq!(
        auth.check("gwn_secret"),
        Some(false),
        "the token itself is not the credential"
    );
    assert_eq!(auth.check(&digest[..63]), Some(false));
    auth.set_token("gwn_other");
    assert_eq!(
        auth.check(&digest),
        Some(false),
        "a replaced token no longer works"
    );
}

#[test]
fn a_quick_command_is_answered_with_its_result_and_a_long_one_while_it_runs() {
    let mut c = cfg();
    c.cordon = sh("exit 0");
    let (cmds, fake, snap) = runner(c, None);
    cmds.submit(req("cmd-q", "cordon", "")).unwrap();
    let s = cmds.status_within("cmd-q", Duration::from_secs(5)).unwrap();
    assert_eq!(
        s.state,
        CommandState::Succeeded,
        "answered once done, not after the wait"
    );
    fake.inject(0, Fault::Processes(1)).unwrap();
    publish(&fake, &snap);
    cmds.submit(req("cmd-d", "drain", "")).unwrap();
    let start = Instant::now();
    let s = cmds
        .status_within("cmd-d", Duration::from_millis(200))
        .unwrap();
    assert_eq!(s.state, CommandState::Running);
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(cmds.status_within("cmd-unknown", Duration::ZERO).is_none());
}

mod restart;
