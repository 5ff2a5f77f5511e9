//! An idle agent has no thread waking up with nothing to do: not the HTTP server (actix-web
//! woke its worker 4 times a second for its Date header, most of an idle agent's CPU), not
//! the plugin runtime, not the file watcher. Between collections the whole process sleeps.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use crate::util::{Agent, Scratch};

/// Per thread (`TID`): its name and context switches (voluntary and involuntary) so far.
fn switches(pid: u32) -> BTreeMap<String, (String, u64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let status = std::fs::read_to_string(t.path().join("status")).ok()?;
            let n = status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
            Some((
                t.file_name().to_string_lossy().into_owned(),
                (comm.trim().to_string(), n),
            ))
        })
        .collect()
}

/// One request on a connection of its own, closed by the client when the answer is read
/// (a pooled connection would be closed by the server later, inside the window).
fn get_once(base: &str, path: &str, gzip: bool) -> String {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let enc = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{enc}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let head = String::from_utf8_lossy(&out);
    head.lines().next().unwrap_or("").to_string()
}

#[test]
fn an_idle_agent_has_no_thread_waking_up() {
    let dir = Scratch::new("idle");
    // No collection inside the window: what wakes then wakes for nothing.
    let cfg = dir.write(
        "agent.toml",
        "[gpu]\nbackend = \"fake\"\nfake_count = 2\n[collector]\ninterval = \"1h\"\n",
    );
    let agent = Agent::start(&["--config", cfg.to_str().unwrap()], &[]);
    // The server has served (both bodies, a JSON endpoint) before the window.
    assert!(get_once(&agent.base, "/metrics", true).contains("200"));
    assert!(get_once(&agent.base, "/metrics", false).contains("200"));
    assert!(get_once(&agent.base, "/healthz", false).contains("200"));
    // Past the start-up's own work (slow on a loaded machine running a debug build).
    std::thread::sleep(Duration::from_millis(1500));
    let before = switches(agent.pid());
    std::thread::sleep(Duration::from_secs(4));
    let after = switches(agent.pid());
    let woke: Vec<(String, u64)> = after
        .iter()
        .filter_map(|(tid, (comm, n))| {
            let (_, b) = before.get(tid)?;
            (n > b).then(|| (comm.clone(), n - b))
        })
        .collect();
    let total: u64 = woke.iter().map(|w| w.1).sum();
    // actix-web's worker alone woke 16 times in 4 s.
    assert!(
        total <= 3,
        "the idle agent's threads woke {total} times in 4 s: {woke:?}"
    );
    assert!(
        before.len() >= 3,
        "the agent's threads were not found: {before:?}"
    );
}
