//! `gpuwarden demo` as CI and an operator run it: `--ci` ends once the faulty node has been
//! replaced, and Ctrl-C stops everything the demo started, with nothing left running.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use gpuwarden_e2e::{bins, repo, Scratch};

/// Processes (not zombies) whose environment names a state folder under `dir`: the
/// demo's agents.
fn agents_under(dir: &Path) -> Vec<u32> {
    let prefix = format!("GPUWARDEN_NODE__STATE_DIR={}/", dir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            !matches!(state, Some("Z" | "X") | None)
        })
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| {
                    env.split(|b| *b == 0)
                        .any(|v| v.starts_with(prefix.as_bytes()))
                })
                .unwrap_or(false)
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next();
    !matches!(state, Some("Z" | "X") | None)
}

fn demo(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bins().join("gpuwarden"));
    c.arg("demo")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .current_dir(repo())
        .env_remove("GPUWARDEN_ADMIN_TOKEN")
        .env_remove("GPUWARDEN_SERVER")
        // Under cargo (CARGO set, as `cargo test` sets it) the demo runs `cargo build -p
        // gpuwarden-agent` first. That build unifies features for the agent alone, not for
        // the workspace, so on a fresh machine it rebuilds the dependencies (minutes) and
        // swaps target/debug/gpuwarden-agent under the other tests. The harness has built
        // both programs (bins()): the demo uses them, as it does outside cargo.
        .env_remove("CARGO")
        .stdin(Stdio::null());
    c
}

#[test]
fn demo_ci_ends_once_the_faulty_node_is_replaced_and_leaves_nothing_running() {
    let scratch = Scratch::new("demo-ci");
    let dir = scratch.path().join("run");
    // A caller's GPUWARDEN_* variables (a production database, say) never reach the demo.
    let other = scratch.path().join("production.db");
    let out = demo(
        &dir,
        &["--ci", "--fault-after", "2s", "--time-limit", "150s"],
    )
    .env(
        "GPUWARDEN_DATABASE__URL",
        format!("sqlite://{}", other.display()),
    )
    .env("GPUWARDEN_SERVER__LISTEN", "127.0.0.1:1")
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("pool up: 4 nodes"), "{stdout}");
    assert!(
        !stdout.contains("building gpuwarden-agent"),
        "outside cargo the demo runs the agent beside it: {stdout}"
    );
    assert!(stdout.contains("injected XID 79"), "{stdout}");
    let done = stdout
        .lines()
        .find(|l| l.contains("] done: "))
        .unwrap_or_else(|| panic!("no done line:\n{stdout}"));
    assert!(
        done.contains("was replaced, drained and terminated"),
        "{done}"
    );
    assert!(stdout.contains("nothing left running"), "{stdout}");
    assert!(agents_under(&dir.join("agents")).is_empty());
    assert!(!other.exists(), "the caller's database was not touched");
    assert!(dir.join("gpuwarden.db").is_file());
    // What it tells the operator to use is there: the token (0600) and the logs.
    let token = dir.join("admin-token");
    assert!(stdout.contains(&token.display().to_string()), "{stdout}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&token).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(dir.join("controlplane.log").is_file());
    // A second demo in the same (now full) folder is refused, naming --dir.
    let again = demo(&dir, &["--ci"]).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--dir"));
}

#[test]
fn ctrl_c_stops_the_control_plane_and_every_agent() {
    let scratch = Scratch::new("demo-int");
    let dir = scratch.path().join("run");
    let mut child = demo(
        &dir,
        &["--ci", "--fault-after", "1h", "--time-limit", "10m"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let up = loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) => {
                let up = l.contains("pool up");
                seen.push(l);
                if up {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    if !up {
        let _ = child.kill();
        panic!("the pool did not come up:\n{}", seen.join("\n"));
    }
    let agents = agents_under(&dir.join("agents"));
    assert_eq!(agents.len(), 4, "four agents run before Ctrl-C");
    let cp_pid = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains("serve") && c.contains(&dir.display().to_string())
                })
                .unwrap_or(false)
        })
        .expect("the demo's control plane runs");
    // Ctrl-C: SIGINT to the demo (the terminal sends it to the foreground group; the demo
    // keeps the control plane and agents in groups of their own).
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status =
        gpuwarden_testkit::poll(Duration::from_secs(60), || child.try_wait().ok().flatten())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("the demo did not stop within 60 s of Ctrl-C")
            });
    // A --ci run stopped before the node was replaced has not passed.
    assert_eq!(status.code(), Some(130), "{status}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("nothing left running")),
        "{}",
        rest.join("\n")
    );
    assert!(!alive(cp_pid), "the control plane is stopped");
    assert!(
        agents.iter().all(|p| !alive(*p)) && agents_under(&dir.join("agents")).is_empty(),
        "every agent is stopped"
    );
}

/// A demo killed outright (SIGKILL) cannot stop anything; `demo --stop --dir` stops what it
/// left running.
#[test]
fn demo_stop_cleans_up_after_a_killed_demo() {
    let scratch = Scratch::new("demo-kill");
    let dir = scratch.path().join("run");
    let mut child = demo(&dir, &["--ci", "--fault-after", "1h", "--nodes", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let up = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("pool up"));
    assert!(up, "the pool came up");
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let left = agents_under(&dir.join("agents"));
    assert_eq!(left.len(), 2, "a killed demo leaves its agents");
    let out = Command::new(bins().join("gpuwarden"))
        .args(["demo", "--stop", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("stopped 1 control plane(s)"), "{text}");
    assert!(text.contains("nothing left running"), "{text}");
    assert!(left.iter().all(|p| !alive(*p)));
}
