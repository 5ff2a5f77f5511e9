//! `gpuwarden simulate`: every shipped scenario runs against a real control plane and a
//! simulated fleet (`gpuwarden-agent fleet`) and passes; an interrupted run leaves nothing
//! running; a bad scenario is refused with every problem.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use gpuwarden_e2e::{bins, repo, Scratch};

fn simulate(args: &[&str]) -> Command {
    let mut c = Command::new(bins().join("gpuwarden"));
    c.arg("simulate")
        .args(args)
        .current_dir(repo())
        // Without CARGO the simulator runs the agent the harness built (bins()) instead of
        // `cargo build -p gpuwarden-agent`, whose agent-only feature set would rebuild the
        // dependencies and swap target/debug/gpuwarden-agent under the other tests.
        .env_remove("CARGO")
        .stdin(Stdio::null());
    c
}

/// Live processes whose command line names something under `dir`.
fn running_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let state = stat.rsplit(')').next()?.split_whitespace().next()?;
            if matches!(state, "Z" | "X") {
                return None;
            }
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(&needle).then(|| format!("{pid}: {cmd}"))
        })
        .collect()
}

/// Runs one scenario file to its end: its report, and what it printed.
fn run_one(file: &Path) -> (serde_json::Value, String) {
    let scratch = Scratch::new("simulate");
    let report = scratch.path().join("report.json");
    let run = scratch.path().join("run");
    let out = simulate(&[
        file.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--dir",
        run.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let fleet_log = std::fs::read_to_string(run.join("fleet.log")).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: {text}\nfleet: {fleet_log}",
        file.display()
    );
    assert!(running_under(&run).is_empty(), "{:?}", running_under(&run));
    let r = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    (r, text)
}

/// Each scenario in `config/scenarios/` passes as shipped (two at a time: they mostly
/// wait), with no false positive; the report carries each kind's latencies: the fatal XID
/// detected and cordoned, the pool's bad node replaced and terminated, the dead agent seen
/// offline, chaos's faults drawn and every one found.
#[test]
fn every_shipped_scenario_passes_and_reports_its_latencies() {
    let dir = repo().join("config/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 19, "{files:?}");
    let total = files.len();
    let queue = std::sync::Mutex::new(files);
    let reports = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(file) = queue.lock().unwrap().pop() else {
                    return;
                };
                let (r, text) = run_one(&file);
                reports.lock().unwrap().push((file, r, text));
            });
        }
    });
    let reports = reports.into_inner().unwrap();
    assert_eq!(reports.len(), total, "a lane failed");
    for (file, r, text) in reports {
        let name = file.file_stem().unwrap().to_str().unwrap().to_string();
        assert_eq!(r["passed"], true, "{name}: {r:#}");
        assert_eq!(r["false_positives"], serde_json::json!([]), "{name}: {r:#}");
        let nodes = r["nodes"].as_u64().unwrap() + r["pool_nodes"].as_u64().unwrap();
        assert!(nodes >= 4, "{name}: {r:#}");
        let first = &r["faults"][0]["outcomes"][0];
        match name.as_str() {
            "fatal-xid" => {
                assert_eq!(first["node"], "sim-00003");
                assert_eq!(first["verdict"], "unhealthy");
                assert!(
                    first["detected_s"].as_f64().expect("detected") < 10.0,
                    "{r:#}"
                );
                assert!(first["cordoned_s"].as_f64().is_some(), "{r:#}");
            }
            "pool-replacement" => {
                assert_eq!(first["verdict"], "unhealthy", "{r:#}");
                assert!(first["replaced_s"].as_f64().is_some(), "replaced: {r:#}");
                assert!(
                    first["terminated_s"].as_f64().is_some(),
                    "terminated: {r:#}"
                );
                assert!(
                    r["pool_nodes"].as_u64().unwrap() >= 5,
                    "4 and a replacement: {r:#}"
                );
            }
            "agent-down" => {
                assert_eq!(first["verdict"], "offline", "{r:#}");
                assert!(text.contains("up again"), "{text}");
            }
            "autoscaling-day" => {
                assert!(r["pool_nodes"].as_u64().unwrap() >= 8, "grew to 8: {r:#}");
            }
            "chaos" => {
                let faults = r["faults"].as_array().unwrap();
                assert!(
                    !faults.is_empty() && faults.iter().all(|f| f["chaos"] == true),
                    "{r:#}"
                );
                assert!(
                    faults
                        .iter()
                        .flat_map(|f| f["outcomes"].as_array().unwrap())
                        .all(|o| o["verdict"] == "unhealthy"),
                    "{r:#}"
                );
            }
            _ => {}
        }
    }
}

/// SIGTERM (as Ctrl-C) stops the control plane and the fleet, and the run exits 130.
#[test]
fn an_interrupted_simulation_leaves_nothing_running() {
    a_simulation_stopped_by_signal_leaves_nothing_running("-TERM", Some(130));
}

/// SIGKILL, which the simulator cannot catch: its control plane and fleet end with it
/// (`GPUWARDEN_EXIT_WITH_PARENT`, the kernel's parent-death signal).
#[test]
fn a_killed_simulation_leaves_nothing_running() {
    a_simulation_stopped_by_signal_leaves_nothing_running("-KILL", None);
}

fn a_simulation_stopped_by_signal_leaves_nothing_running(signal: &str, code: Option<i32>) {
    let scratch = Scratch::new("simulate-stop");
    let run = scratch.path().join("run");
    let mut child = simulate(&[
        "config/scenarios/fatal-xid.toml",
        "--dir",
        run.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let online = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("nodes online"));
    assert!(online, "the fleet never came online");
    assert!(
        !running_under(&run).is_empty(),
        "the fleet and control plane run"
    );
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), code);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !running_under(&run).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(running_under(&run).is_empty(), "{:?}", running_under(&run));
}

/// A scenario with bad entries is refused with exit status 2 and every problem named;
/// `--check` accepts a good one.
#[test]
fn a_bad_scenario_is_refused_with_every_problem() {
    let scratch = Scratch::new("simulate-bad");
    let bad = scratch.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"bad\"\nduration = \"5s\"\n[[fleet]]\ncount = 2\n[[faults]]\nat = \"9s\"\nnode = \"sim-00007\"\nfault = \"xid\"\n",
    )
    .unwrap();
    let out = simulate(&[bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "faults[0].at: after the scenario's duration",
        "faults[0].node: no node \"sim-00007\" in the fleet",
        "faults[0]: xid needs code",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    let out = simulate(&["--check", "config/scenarios/fatal-xid.toml"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (8 nodes, 0 pool(s), 1 faults"));
    // Node names are checked against the fleet `--nodes` makes: sim-00002 is not among 2.
    let out = simulate(&[
        "--check",
        "config/scenarios/agent-down.toml",
        "--nodes",
        "2",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node \"sim-00002\""));
    // A pool scenario is not scaled by --nodes.
    let out = simulate(&[
        "--check",
        "config/scenarios/pool-replacement.toml",
        "--nodes",
        "50",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without [[pools]]"));
}
