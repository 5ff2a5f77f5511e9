//! A process of ours under test: started, its log kept, stopped on drop.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How a [`Proc`] is started: the binary, its arguments and environment (`RUST_LOG=info`
/// unless set), its working folder, and how long to wait for it to listen (60 s unless set).
pub struct Launch {
    cmd: Command,
    name: String,
    ready_within: Duration,
}

impl Launch {
    /// Starts building the launch of the binary at `bin`.
    pub fn new(bin: impl AsRef<Path>) -> Self {
        let bin = bin.as_ref();
        let mut cmd = Command::new(bin);
        cmd.env("RUST_LOG", "info");
        Self {
            cmd,
            name: bin
                .file_name()
                .map_or_else(|| bin.display().to_string(), |n| n.to_string_lossy().into()),
            ready_within: Duration::from_secs(60),
        }
    }

    /// Adds arguments. A server under test must be told to listen on `127.0.0.1:0` (by an
    /// argument or its configuration file) so that it takes an ephemeral port.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Sets environment variables.
    pub fn envs(mut self, env: &[(&str, &str)]) -> Self {
        for (k, v) in env {
            self.cmd.env(k, v);
        }
        self
    }

    /// Removes an environment variable the test process may have.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// Runs it in `dir`.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// How long [`Launch::start`] waits for the `listening` line.
    pub fn ready_within(mut self, within: Duration) -> Self {
        self.ready_within = within;
        self
    }

    /// Starts the process with stdin and stdout closed and stderr read into [`Proc::logs`],
    /// and waits until it logs a line with ` listening` and `addr=HOST:PORT`; panics with its
    /// log (after killing it) when that line does not come in time.
    pub fn start(mut self) -> Proc {
        let name = self.name;
        let mut child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(" listening") {
                    if let Some(addr) = line
                        .split("addr=")
                        .nth(1)
                        .and_then(|s| s.split_whitespace().next())
                    {
                        let _ = tx.send(addr.to_string());
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let Ok(addr) = rx.recv_timeout(self.ready_within) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} did not start:\n{}", logs.lock().unwrap().join("\n"));
        };
        Proc {
            child: Some(child),
            base: format!("http://{addr}"),
            logs,
        }
    }
}

/// A running process of ours, with its log. Dropping it stops it as [`Proc::stop`] does.
pub struct Proc {
    child: Option<Child>,
    /// `http://{the address it listens on}`.
    pub base: String,
    /// Its stderr, a line per entry, as read so far.
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Its log so far, one string.
    pub fn log(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Its process id; `None` once it was stopped, killed or seen to exit.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits at most `grace` for it to exit: its status, or `None` when it
    /// still runs (it is not killed then; [`Proc::stop`] and drop do that).
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, then waits (at most 15 s) for a graceful exit; SIGKILL after that. Its exit
    /// status; `None` when it was already gone.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(st) = self.terminate(Duration::from_secs(15)) {
            return Some(st);
        }
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// Waits (at most `secs` seconds) for the process to exit by itself; its status, or
    /// `None` while it still runs.
    pub fn wait_exit(&mut self, secs: u64) -> Option<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    return Some(st);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL: no graceful shutdown.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    /// A `/bin/sh` script as the process under test.
    fn sh(script: &str) -> Launch {
        Launch::new("/bin/sh").args(["-c", script])
    }

    #[test]
    fn start_waits_for_the_listening_line_and_terminate_stops_it() {
        let mut p = sh(
            "echo 'INFO starting' >&2; echo 'INFO  listening addr=127.0.0.1:9' >&2; exec sleep 30",
        )
        .start();
        assert_eq!(p.base, "http://127.0.0.1:9");
        assert!(p.log().contains("INFO starting"), "{}", p.log());
        assert!(p.pid().is_some());
        let st = p
            .terminate(Duration::from_secs(10))
            .expect("exits on SIGTERM");
        assert_eq!(st.signal(), Some(15));
        assert_eq!(p.pid(), None);
        assert_eq!(p.stop(), None, "nothing left to stop");
    }

    #[test]
    fn a_process_that_ignores_sigterm_is_left_running_by_terminate_and_killed() {
        let mut p =
            sh("trap '' TERM; echo ' listening addr=127.0.0.1:9' >&2; exec sleep 30").start();
        assert_eq!(p.terminate(Duration::from_millis(300)), None);
        let pid = p.pid().expect("still running");
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        p.kill();
        assert_eq!(p.pid(), None);
    }

    #[test]
    fn wait_exit_reports_the_exit_status() {
        let mut p = sh("echo ' listening addr=127.0.0.1:9' >&2; sleep 0.2; exit 78").start();
        assert_eq!(p.wait_exit(10).and_then(|s| s.code()), Some(78));
    }

    #[test]
    #[should_panic(expected = "sh did not start")]
    fn a_process_that_never_listens_fails_the_test() {
        sh("echo nothing >&2; exec sleep 5")
            .ready_within(Duration::from_millis(300))
            .start();
    }
}
