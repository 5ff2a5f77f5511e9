//! Stopping what the demo started: the control plane, then every agent of the demo's
//! folder, whoever started it (found by its state folder in `/proc/PID/environ`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::pool::provider::local::proc;

/// How long a process gets between SIGTERM and SIGKILL. (An agent deregisters on SIGTERM.)
const GRACE: Duration = Duration::from_secs(10);

/// Sets `flag` on the first Ctrl-C (SIGINT), SIGTERM or SIGHUP (a closed terminal: stop
/// as for Ctrl-C, not die and leave the control plane and agents running), from a thread
/// of its own.
pub fn on_ctrl_c(flag: Arc<AtomicBool>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("demo-signals".into())
        .spawn(move || {
            rt.block_on(async {
                let mut term = signal(SignalKind::terminate()).ok();
                let mut hup = signal(SignalKind::hangup()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = recv(term.as_mut()) => {}
                    _ = recv(hup.as_mut()) => {}
                }
                flag.store(true, Ordering::SeqCst);
            })
        })?;
    Ok(())
}

/// The next signal of `s`; never, when it could not be watched.
async fn recv(s: Option<&mut tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Stops the control plane (`cp`, the leader of its process group), then the agents whose
/// state folder lies under `agents_dir`; says what it stopped.
pub fn everything(cp: u32, agents_dir: &Path) -> String {
    let cp_line = match groups(&[cp]) {
        0 => "the control plane had already exited".to_string(),
        _ => format!("stopped the control plane (pid {cp})"),
    };
    let agents = agents_under(agents_dir);
    let n = groups(&agents);
    let left = agents_under(agents_dir).len();
    let left = if left == 0 {
        "nothing left running".to_string()
    } else {
        format!("{left} agent(s) would not stop")
    };
    format!("{cp_line}; stopped {n} agent(s); {left}")
}

/// Whether the process `pid` is alive (not a zombie).
pub fn alive(pid: u32) -> bool {
    matches!(proc::stat(pid), Some((_, false)))
}

/// What a demo in `dir` left running when it was killed (SIGKILL): its control plane (by
/// its command line, which names `dir/controlplane.toml`) and its agents. Says what it did.
pub fn leftovers(dir: &Path) -> String {
    let config = dir.join("controlplane.toml");
    let needle = config.display().to_string();
    let cps: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle.as_str()))
                .unwrap_or(false)
        })
        .collect();
    let cp_line = match groups(&cps) {
        0 => "no control plane of this demo was running".to_string(),
        n => format!("stopped {n} control plane(s)"),
    };
    let agents_dir = dir.join("agents");
    let agents = agents_under(&agents_dir);
    let n = groups(&agents);
    let left = agents_under(&agents_dir).len();
    let left = if left == 0 {
        "nothing left running".to_string()
    } else {
        format!("{left} agent(s) would not stop")
    };
    format!("{cp_line}; stopped {n} agent(s); {left}")
}

/// Agents (not zombies) whose state folder lies under `root`.
fn agents_under(root: &Path) -> Vec<u32> {
    let prefix = format!("GPUWARDEN_NODE__STATE_DIR={}/", root.display());
    proc::with_env(|v| v.starts_with(prefix.as_bytes()))
}

/// SIGTERM to each process's group (each leads its own), SIGKILL to those alive after
/// [`GRACE`]; returns how many were alive at the start.
pub(crate) fn groups(pids: &[u32]) -> usize {
    let live: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    for pid in &live {
        proc::signal(*pid, Signal::TERM);
    }
    let t = Instant::now();
    while live.iter().any(|p| alive(*p)) && t.elapsed() < GRACE {
        reap();
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in &live {
        if alive(*pid) {
            proc::signal(*pid, Signal::KILL);
        }
    }
    reap();
    live.len()
}

/// Collects exited children (the control plane is ours), so they do not linger as zombies.
fn reap() {
    while let Ok(Some(_)) = rustix::process::waitpid(None, rustix::process::WaitOptions::NOHANG) {}
}
