//! What only the end-to-end tests need: the two binaries built once through cargo
//! ([`bins`]), started as real processes on 127.0.0.1 ephemeral ports ([`start_bin`]), the
//! `gpuwarden` CLI ([`cli`]) and a webhook receiver ([`Capture`]). The process handle,
//! scratch folders, `wait_for` and the API client are `gpuwarden-testkit`'s, re-exported.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub use gpuwarden_testkit::{bins, repo, wait_for, Api, Launch, Proc, Scratch};

/// Starts `bin` (one of the two binaries [`bins`] built) with `args` and `env` in `dir`,
/// without the `GPUWARDEN_ADMIN_TOKEN`, `GPUWARDEN_BOOTSTRAP_TOKEN` and `GPUWARDEN_SERVER`
/// the test process may have; waits (at most 60 s) for its `listening addr=` line.
pub fn start_bin(bin: &str, args: &[&str], env: &[(&str, &str)], dir: &Path) -> Proc {
    let mut launch = Launch::new(bins().join(bin)).args(args).current_dir(dir);
    for k in [
        "GPUWARDEN_ADMIN_TOKEN",
        "GPUWARDEN_BOOTSTRAP_TOKEN",
        "GPUWARDEN_SERVER",
    ] {
        launch = launch.env_remove(k);
    }
    launch.envs(env).start()
}

/// Runs the `gpuwarden` CLI; returns (exit code, stdout, stderr).
pub fn cli(args: &[&str], server: &str, token: &str) -> (i32, String, String) {
    let out = Command::new(bins().join("gpuwarden"))
        .args(args)
        .args(["--server", server, "--token", token])
        .env("GPUWARDEN_CLI_CONFIG", "/nonexistent")
        .output()
        .expect("run gpuwarden");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One HTTP request a [`Capture`] received.
#[derive(Debug, Clone)]
pub struct Captured {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP server on 127.0.0.1 that answers `status` to every request and keeps them (a
/// webhook receiver); it stops when dropped.
pub struct Capture {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Captured>>>,
    pub status: Arc<Mutex<u16>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Capture {
    pub fn start() -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(Mutex::new(200u16));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, st, stp) = (seen.clone(), status.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stp.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, length) = loop {
                    let Ok(n) = conn.read(&mut chunk) else {
                        break (0, 0);
                    };
                    if n == 0 {
                        break (0, 0);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0usize);
                        break (p + 4, len);
                    }
                };
                if head_end == 0 {
                    continue;
                }
                while buf.len() < head_end + length {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut lines = head.lines();
                let path = lines
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("")
                    .to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                s.lock().unwrap().push(Captured {
                    path,
                    headers,
                    body,
                });
                let code = *st.lock().unwrap();
                let _ = conn.write_all(
                    format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        Self {
            url,
            seen,
            status,
            stop,
        }
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|c| serde_json::from_str(&c.body).ok())
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Stops a program started as `timeout SECS PROGRAM …` (bounded even if the test process is
/// killed): SIGTERM to `timeout`, which passes it on to the program and exits when it has;
/// SIGKILL after 5 s. (A SIGKILL to `timeout` itself would leave the program running, adopted
/// by init.)
pub fn stop_timeout_wrapped(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
