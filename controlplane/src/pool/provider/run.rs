//! Running a program of the operator's: its stdin written, its stdout read up to a bound,
//! the tail of its stderr kept, a deadline that kills its whole process group (a script's
//! `sleep` or `curl` too), and a clean environment (the control plane's tokens are not
//! handed down).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Most stdout read from a program; the rest is drained and dropped.
pub const MAX_STDOUT: usize = 1 << 20;

/// Most stderr kept (its end).
pub const STDERR_TAIL: usize = 2048;

/// How a program run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Its exit status; `None` when it was killed at the deadline or could not be waited for.
    pub status: Option<ExitStatus>,
    /// Its stdout, at most [`MAX_STDOUT`] bytes.
    pub stdout: Vec<u8>,
    /// Whether stdout was longer than [`MAX_STDOUT`].
    pub stdout_truncated: bool,
    /// The last [`STDERR_TAIL`] bytes of its stderr, lossily decoded.
    pub stderr: String,
    /// Whether it was killed at the deadline.
    pub timed_out: bool,
}

/// Runs `argv` with only `PATH`, `HOME`, `LANG` of ours plus `env`, writes `stdin` to it,
/// and waits at most `timeout`; at the deadline its process group is killed.
pub fn run(
    argv: &[String],
    env: &BTreeMap<String, String>,
    stdin: &[u8],
    timeout: Duration,
) -> std::io::Result<Outcome> {
    let Some((program, args)) = argv.split_first() else {
        return Err(std::io::Error::other("empty command"));
    };
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear();
    for k in ["PATH", "HOME", "LANG"] {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
    }
    cmd.envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A group of its own, so that the deadline kills what it started too.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn()?;
    let deadline = Instant::now() + timeout;

    let (tx_out, rx_out) = mpsc::channel();
    if let Some(mut out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let read = (&mut out).take(MAX_STDOUT as u64 + 1).read_to_end(&mut buf);
            let truncated = buf.len() > MAX_STDOUT;
            buf.truncate(MAX_STDOUT);
            // Drain the rest so the program is not blocked on a full pipe.
            let _ = std::io::copy(&mut out, &mut std::io::sink());
            let _ = tx_out.send((read.map(|_| buf).unwrap_or_default(), truncated));
        });
    }
    let (tx_err, rx_err) = mpsc::channel();
    if let Some(mut err) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut tail: Vec<u8> = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > 2 * STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            let start = tail.len().saturating_sub(STDERR_TAIL);
            let _ = tx_err.send(String::from_utf8_lossy(&tail[start..]).into_owned());
        });
    }
    if let Some(mut input) = child.stdin.take() {
        let data = stdin.to_vec();
        // A program that does not read its stdin must not block us: write on a thread.
        std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
    }

    let mut timed_out = false;
    let mut pause = Duration::from_millis(2);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                kill_group(child.id(), rustix::process::Signal::KILL);
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(_) => break None,
        }
    };
    // What it left running in its group still holds the pipes: stop it too.
    if !timed_out {
        kill_group(child.id(), rustix::process::Signal::KILL);
    }
    let grace = Duration::from_secs(2);
    let (stdout, stdout_truncated) = rx_out.recv_timeout(grace).unwrap_or_default();
    let stderr = rx_err.recv_timeout(grace).unwrap_or_default();
    Ok(Outcome {
        status,
        stdout,
        stdout_truncated,
        stderr,
        timed_out,
    })
}

/// Sends `signal` to the process group `pgid` (a no-op when it is gone).
pub fn kill_group(pgid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// The last line-ish part of `stderr`, on one line, for an error message.
pub fn one_line(stderr: &str) -> String {
    let t = stderr.trim();
    let flat: String = t
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.len() > 500 {
        let mut start = flat.len() - 500;
        while !flat.is_char_boundary(start) {
            start += 1;
        }
        format!("…{}", &flat[start..])
    } else {
        flat
    }
}
