//! Processes by pid, as Linux shows them in `/proc`: whether the process we started is
//! still the one behind a pid (its start time, so a reused pid is never mistaken for it),
//! and signals to its process group.

use std::path::PathBuf;

/// A process's start time, in clock ticks after boot (`/proc/PID/stat`, field 22), and
/// whether it is a zombie; `None` when there is no such process.
pub fn stat(pid: u32) -> Option<(u64, bool)> {
    let text = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/stat"))).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
    let start = fields.get(19)?.parse().ok()?;
    Some((start, zombie))
}

/// Whether `pid` is alive and started at `start_ticks` (so it is the process we started).
pub fn alive(pid: u32, start_ticks: u64) -> bool {
    matches!(stat(pid), Some((s, false)) if s == start_ticks)
}

/// Sends `signal` to the process group led by `pid`, else to `pid` alone.
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if rustix::process::kill_process_group(p, signal).is_err() {
        let _ = rustix::process::kill_process(p, signal);
    }
}

/// Processes (not zombies) one of whose environment variables (`NAME=value`, as bytes)
/// matches `wanted`.
pub fn with_env(wanted: impl Fn(&[u8]) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| matches!(stat(*pid), Some((_, false))))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(&wanted))
                .unwrap_or(false)
        })
        .collect()
}

/// Processes (not zombies) whose environment names `state_dir` as their agent state folder
/// (`GPUWARDEN_NODE__STATE_DIR`): the agents of one instance, found even when no state file
/// records them (the control plane died between starting one and writing its state).
pub fn agents_of(state_dir: &std::path::Path) -> Vec<u32> {
    let needle = format!("GPUWARDEN_NODE__STATE_DIR={}", state_dir.display());
    with_env(|v| v == needle.as_bytes())
}

/// Processes (not zombies) whose agent state folder is `…/instances/INSTANCE/agent-state`
/// under any root: the agent of one instance, even when the provider's folder changed.
pub fn agents_of_instance(instance: &str) -> Vec<u32> {
    let suffix = format!("/instances/{instance}/agent-state");
    with_env(|v| v.starts_with(b"GPUWARDEN_NODE__STATE_DIR=") && v.ends_with(suffix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id();
        let (start, zombie) = stat(me).unwrap();
        assert!(!zombie);
        assert!(alive(me, start));
        assert!(!alive(me, start + 1), "a reused pid is not our process");
        assert_eq!(stat(u32::MAX), None);
    }
}
