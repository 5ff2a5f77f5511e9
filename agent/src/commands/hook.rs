//! Running an operator's hook: a program and its arguments, no shell, with a deadline, a
//! way to cancel it, and the tail of what it printed.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Most bytes of a hook's output kept (the tail).
const OUTPUT_TAIL: usize = 4096;

/// The values a hook's arguments may name.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    /// `{node}`: the node id.
    pub node: &'a str,
    /// `{reason}`: why.
    pub reason: &'a str,
    /// `{command}`: the command id.
    pub command: &'a str,
}

/// The hook's arguments with the placeholders replaced. Each argument stays one argument,
/// whatever the values contain: nothing is handed to a shell.
pub fn expand(template: &[String], v: &Vars<'_>) -> Vec<String> {
    template
        .iter()
        .map(|a| {
            a.replace("{node}", v.node)
                .replace("{reason}", v.reason)
                .replace("{command}", v.command)
        })
        .collect()
}

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookOutcome {
    /// The program and its arguments as run.
    pub argv: Vec<String>,
    /// Exit status; `None` when it was killed or never started.
    pub exit: Option<i32>,
    /// The tail of stdout and stderr.
    pub output: String,
    /// Why it did not finish by itself (`timed out after 5m`, `cancelled`, the spawn error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl HookOutcome {
    /// True when it exited 0.
    pub fn ok(&self) -> bool {
        self.exit == Some(0)
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        let prog = self.argv.first().map_or("", String::as_str);
        match (&self.error, self.exit) {
            (Some(e), _) => format!("hook {prog}: {e}"),
            (None, Some(0)) => format!("hook {prog} exited 0"),
            (None, Some(c)) => format!(
                "hook {prog} exited {c}: {}",
                self.output.lines().last().unwrap_or("").trim()
            ),
            (None, None) => format!("hook {prog} was killed by a signal"),
        }
    }
}

/// A hook that is running.
#[derive(Debug)]
pub struct Running {
    argv: Vec<String>,
    child: Option<Child>,
    output: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    spawn_error: Option<String>,
}

fn tail_into(mut r: impl Read, out: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
        o.extend_from_slice(&buf[..n]);
        if o.len() > 2 * OUTPUT_TAIL {
            let cut = o.len() - OUTPUT_TAIL;
            o.drain(..cut);
        }
    }
}

impl Running {
    /// Starts `argv` (never empty).
    pub fn start(argv: Vec<String>) -> Running {
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut cmd = Command::new(&argv[0]);
        // A group of its own: a deadline kills what the hook started too (a script's
        // `sleep`, a `kubectl` child), not only the hook.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match cmd.spawn() {
            Ok(mut child) => {
                let mut readers = Vec::new();
                if let Some(o) = child.stdout.take() {
                    let out = output.clone();
                    readers.push(std::thread::spawn(move || tail_into(o, out)));
                }
                if let Some(e) = child.stderr.take() {
                    let out = output.clone();
                    readers.push(std::thread::spawn(move || tail_into(e, out)));
                }
                Running {
                    argv,
                    child: Some(child),
                    output,
                    readers,
                    spawn_error: None,
                }
            }
            Err(e) => Running {
                spawn_error: Some(format!("cannot start {}: {e}", argv[0])),
                argv,
                child: None,
                output,
                readers: Vec::new(),
            },
        }
    }

    /// The outcome, once it has ended; `None` while it runs.
    pub fn poll(&mut self) -> Option<HookOutcome> {
        if let Some(e) = &self.spawn_error {
            return Some(self.outcome(None, Some(e.clone())));
        }
        let status = match self.child.as_mut()?.try_wait() {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(e) => return Some(self.stop(format!("cannot wait for it: {e}"))),
        };
        self.child = None;
        Some(self.outcome(status.code(), None))
    }

    /// Kills it (when still running) and says why.
    pub fn stop(&mut self, why: String) -> HookOutcome {
        if let Some(c) = self.child.take() {
            kill_group(c);
        }
        self.outcome(None, Some(why))
    }

    fn outcome(&mut self, exit: Option<i32>, error: Option<String>) -> HookOutcome {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let o = self.output.lock().unwrap_or_else(|p| p.into_inner());
        let start = o.len().saturating_sub(OUTPUT_TAIL);
        HookOutcome {
            argv: self.argv.clone(),
            exit,
            output: String::from_utf8_lossy(&o[start..]).into_owned(),
            error,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            kill_group(c);
        }
    }
}

/// Kills the hook's whole process group and reaps the hook.
fn kill_group(mut c: Child) {
    let group = i32::try_from(c.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    match group {
        Some(pid) => {
            if rustix::process::kill_process_group(pid, rustix::process::Signal::KILL).is_err() {
                let _ = c.kill();
            }
        }
        None => {
            let _ = c.kill();
        }
    }
    let _ = c.wait();
}

/// Runs `argv` to its end, its deadline, or until `cancel` is set.
pub fn run(argv: Vec<String>, timeout: Duration, cancel: &AtomicBool) -> HookOutcome {
    let deadline = Instant::now() + timeout;
    let mut r = Running::start(argv);
    loop {
        if let Some(o) = r.poll() {
            return o;
        }
        if cancel.load(Ordering::SeqCst) {
            return r.stop("cancelled".into());
        }
        if Instant::now() >= deadline {
            return r.stop(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn placeholders_become_single_arguments_with_no_shell_interpretation() {
        let v = Vars {
            node: "gpu-1",
            reason: "xid 79; rm -rf / $(reboot)",
            command: "cmd-1",
        };
        let argv = expand(
            &[
                "scontrol".into(),
                "nodename={node}".into(),
                "reason={reason}".into(),
            ],
            &v,
        );
        assert_eq!(
            argv,
            [
                "scontrol",
                "nodename=gpu-1",
                "reason=xid 79; rm -rf / $(reboot)"
            ]
        );
        // Run through a real program: the value arrives as one argument, unexpanded.
        let out = run(
            vec![
                "/usr/bin/printf".into(),
                "%s|".into(),
                argv[2].clone(),
                "x".into(),
            ],
            Duration::from_secs(5),
            &AtomicBool::new(false),
        );
        assert!(out.ok(), "{out:?}");
        assert_eq!(out.output, "reason=xid 79; rm -rf / $(reboot)|x|");
    }

    #[test]
    fn exit_status_output_timeout_and_missing_programs_are_reported() {
        let no = AtomicBool::new(false);
        let failed = run(sh("echo nope >&2; exit 3"), Duration::from_secs(5), &no);
        assert_eq!(failed.exit, Some(3));
        assert!(failed.summary().contains("exited 3: nope"), "{failed:?}");

        let start = Instant::now();
        let slow = run(sh("sleep 30"), Duration::from_millis(200), &no);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(slow.exit, None);
        assert_eq!(slow.error.as_deref(), Some("timed out after 200ms"));

        let missing = run(
            vec!["/nonexistent/hook".into()],
            Duration::from_secs(1),
            &no,
        );
        assert!(!missing.ok());
        assert!(missing.summary().contains("cannot start /nonexistent/hook"));

        let cancelled = run(
            sh("sleep 30"),
            Duration::from_secs(30),
            &AtomicBool::new(true),
        );
        assert_eq!(cancelled.error.as_deref(), Some("cancelled"));
    }

    #[test]
    fn only_the_tail_of_a_chatty_hook_is_kept() {
        let out = run(
            sh("i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done"),
            Duration::from_secs(10),
            &AtomicBool::new(false),
        );
        assert!(out.output.len() <= OUTPUT_TAIL);
        assert!(out.output.ends_with("line-1999\n"), "{}", out.output);
    }
}
