//! Running a scenario: the control plane and the fleet process, the timeline, the stop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::report::{self, Report, Timeline};
use super::scenario::Scenario;
use crate::cli::client::{Client, Target};
use crate::demo::{host, setup};

mod parts;
mod timeline;
use parts::{control_plane_toml, fleet_spec, list, secs, Ended};
use timeline::Run;

/// Why a run ended without a report.
#[derive(Debug)]
pub enum RunError {
    /// Ctrl-C, SIGTERM or SIGHUP; what was stopped.
    Interrupted(String),
    /// What went wrong (and what was stopped).
    Failed(String),
}

/// How often the fleet is read, at most (up to 2,000 nodes; see [`look_every`]).
const LOOK: Duration = Duration::from_millis(250);

/// How often a fleet of `nodes` is read: every [`LOOK`] up to 2,000 nodes, then 125 µs a
/// node (1.25 s at 10,000), so that the simulator's reading stays a small share of the
/// control plane's work at fleet scale. Latencies in the report are up to this late.
pub fn look_every(nodes: usize) -> Duration {
    LOOK.max(Duration::from_micros(125).saturating_mul(u32::try_from(nodes).unwrap_or(u32::MAX)))
}

/// The processes of a run, stopped when dropped (every path out of [`run`]).
struct Procs {
    control_plane: Child,
    fleet: Option<Child>,
}

impl Procs {
    fn stop(&mut self) -> String {
        let mut pids = Vec::new();
        if let Some(f) = &self.fleet {
            pids.push(f.id());
        }
        // The fleet first: its nodes deregister from the control plane on SIGTERM.
        let fleet = crate::demo::stop::groups(&pids);
        let cp = crate::demo::stop::groups(&[self.control_plane.id()]);
        let _ = self.control_plane.try_wait();
        if let Some(f) = &mut self.fleet {
            let _ = f.try_wait();
        }
        format!("stopped {} process(es)", fleet + cp)
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs the scenario and returns its report; in `keep_dir` (kept) or a temporary folder
/// (removed when the run passed).
pub fn run(s: &Scenario, keep_dir: Option<&Path>) -> Result<Report, RunError> {
    let fail = RunError::Failed;
    let interrupted = Arc::new(AtomicBool::new(false));
    crate::demo::stop::on_ctrl_c(Arc::clone(&interrupted)).map_err(|e| fail(e.to_string()))?;
    let dir = match keep_dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!(
            "gpuwarden-simulate-{}-{}",
            std::process::id(),
            host::unix_secs()
        )),
    };
    host::fresh_dir(&dir).map_err(fail)?;
    let dir: PathBuf =
        std::fs::canonicalize(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    let exe = std::env::current_exe().map_err(|e| fail(format!("this executable: {e}")))?;
    let agent = exe.with_file_name("gpuwarden-agent");
    setup::ensure_agent(&exe).map_err(fail)?;
    let port = host::free_port().map_err(fail)?;
    let fleet_port = host::free_port().map_err(fail)?;
    let admin = format!(
        "gwa_sim_{}",
        host::hex(&host::random_bytes().map_err(fail)?)
    );
    let bootstrap = format!(
        "gwb_sim_{}",
        host::hex(&host::random_bytes().map_err(fail)?)
    );
    let config = dir.join("controlplane.toml");
    host::write(&config, &control_plane_toml(s, &dir, port, &bootstrap)).map_err(fail)?;
    let base = format!("http://127.0.0.1:{port}");
    let control_plane = host::spawn_serve(&exe, &config, &dir, &admin).map_err(fail)?;
    let mut procs = Procs {
        control_plane,
        fleet: None,
    };
    let client = Client::new(Target {
        server: base.clone(),
        token: Some(admin),
    });
    let cp_log = dir.join("controlplane.log");
    wait_for(&interrupted, Duration::from_secs(60), || {
        if let Ok(Some(st)) = procs.control_plane.try_wait() {
            return Err(Look::Exited(format!(
                "the control plane exited ({st}); see {}",
                cp_log.display()
            )));
        }
        Ok(client.call("GET", "/v1/nodes?limit=1", None).is_ok())
    })
    .map_err(|e| stopped(e, &mut procs))?;

    let (spec, _) = fleet_spec(s, fleet_port);
    let spec_file = dir.join("fleet.json");
    host::write(&spec_file, &spec.to_string()).map_err(fail)?;
    let log = std::fs::File::create(dir.join("fleet.log"))
        .map_err(|e| fail(format!("fleet.log: {e}")))?;
    let log2 = log
        .try_clone()
        .map_err(|e| fail(format!("fleet.log: {e}")))?;
    let control_port = host::free_port().map_err(fail)?;
    let fleet_api = format!("http://127.0.0.1:{control_port}");
    let mut cmd = Command::new(&agent);
    host::without_our_env(&mut cmd);
    cmd.arg("fleet")
        .arg("--spec")
        .arg(&spec_file)
        .args(["--control-plane", &base, "--interval"])
        .arg(humantime::format_duration(s.control_plane.collect_interval).to_string())
        .args(["--seed", &s.seed.to_string()])
        .args(["--control", &format!("127.0.0.1:{control_port}")])
        .args(["--spare-from", "127.3.0.1:0"])
        .env("GPUWARDEN_BOOTSTRAP_TOKEN", &bootstrap)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let started = Instant::now();
    procs.fleet = Some(cmd.spawn().map_err(|e| {
        stopped(
            Ended::Failed(format!("start {} fleet: {e}", agent.display())),
            &mut procs,
        )
    })?);
    let n = s.nodes().len();
    println!(
        "simulating {n} nodes and {} pool(s) ({}); control plane {base}; folder {}",
        s.pools.len(),
        s.name,
        dir.display()
    );
    let fleet_log = dir.join("fleet.log");
    let http: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let limit = Duration::from_secs(60 + (n as u64) / 50);
    let mut online = 0;
    let mut fleet_exited = || -> Result<(), Look> {
        if let Some(Ok(Some(st))) = procs.fleet.as_mut().map(Child::try_wait) {
            return Err(Look::Exited(format!(
                "the fleet exited ({st}); see {}",
                fleet_log.display()
            )));
        }
        Ok(())
    };
    let waited = wait_for(&interrupted, limit, || {
        fleet_exited()?;
        let up = http
            .get(&format!("{fleet_api}/v1/fleet/nodes"))
            .call()
            .is_ok_and(|r| r.status().is_success());
        let nodes = list(&client).map_err(Look::Retry)?;
        online = nodes
            .values()
            .filter(|x| x.connectivity == "online")
            .count();
        Ok(up && online >= n)
    });
    if let Err(e) = waited {
        let e = match e {
            Ended::Failed(e) => Ended::Failed(format!("{e} ({online} of {n} nodes online)")),
            other => other,
        };
        return Err(stopped(e, &mut procs));
    }
    if !s.pools.is_empty() {
        for p in &s.pools {
            if let Err(e) = client.call("POST", "/v1/pools", Some(p.body(&fleet_api))) {
                return Err(stopped(
                    Ended::Failed(format!("creating pool {}: {e}", p.name)),
                    &mut procs,
                ));
            }
        }
        let want: usize = s.pools.iter().map(|p| p.min_nodes() as usize).sum();
        let limit = Duration::from_secs(60 + (want as u64) / 20);
        let mut serving = 0;
        let waited = wait_for(&interrupted, limit, || {
            fleet_exited()?;
            let nodes = list(&client).map_err(Look::Retry)?;
            serving = nodes
                .values()
                .filter(|x| {
                    !x.pool.is_empty()
                        && s.pools.iter().any(|p| p.name == x.pool)
                        && x.connectivity == "online"
                        && x.status == "active"
                })
                .count();
            Ok(serving >= want)
        });
        if let Err(e) = waited {
            let e = match e {
                Ended::Failed(e) => Ended::Failed(format!(
                    "{e} ({serving} of the pools' {want} first nodes serving)"
                )),
                other => other,
            };
            return Err(stopped(e, &mut procs));
        }
    }
    let online_after = started.elapsed();
    println!(
        "{n} nodes online after {:.1} s{}",
        online_after.as_secs_f64(),
        if s.pools.is_empty() {
            String::new()
        } else {
            ", the pools at their min_nodes".to_string()
        }
    );

    let fleet_pid = procs.fleet.as_ref().map_or(0, Child::id);
    let mut tl = Run {
        fleet_pid,
        fleet_log: dir.join("fleet.log"),
        s,
        client: &client,
        http: &http,
        fleet_api: &fleet_api,
        t0: Instant::now(),
        timeline: Timeline::default(),
        injected: Vec::new(),
        results: Vec::new(),
        ups: Vec::new(),
        look: look_every(
            n + s
                .pools
                .iter()
                .map(|p| p.min_nodes() as usize)
                .sum::<usize>(),
        ),
    };
    if let Err(e) = tl.go(&interrupted) {
        return Err(match e {
            Ended::Interrupted => RunError::Interrupted(procs.stop()),
            Ended::Failed(e) => stopped(Ended::Failed(e), &mut procs),
        });
    }
    let duration = tl.t0.elapsed();
    procs.stop();
    let (fault_reports, false_positives) = report::outcomes(&tl.injected, &tl.timeline);
    let (p50, max) = report::detection(&fault_reports);
    let passed =
        tl.results.iter().all(|r| r.passed) && tl.injected.iter().all(|f| f.errors.is_empty());
    if passed && keep_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(Report {
        scenario: s.name.clone(),
        seed: s.seed,
        nodes: n,
        pool_nodes: tl
            .timeline
            .pool_nodes(&s.pools.iter().map(|p| p.name.as_str()).collect()),
        online_after_s: secs(online_after),
        duration_s: secs(duration),
        faults: fault_reports,
        false_positives,
        expectations: tl.results,
        passed,
        detection_p50_s: p50,
        detection_max_s: max,
        look_s: secs(tl.look),
    })
}

/// What one look during a wait found wrong.
enum Look {
    /// Not yet (the server does not answer yet): look again.
    Retry(String),
    /// A process exited: waiting longer cannot help.
    Exited(String),
}

/// Stops the processes and says why, with what was stopped.
fn stopped(e: Ended, procs: &mut Procs) -> RunError {
    match e {
        Ended::Interrupted => RunError::Interrupted(procs.stop()),
        Ended::Failed(e) => RunError::Failed(format!("{e}; {}", procs.stop())),
    }
}

/// Polls `ready` every 100 ms until it says so, a process exits, `limit` passes or a signal
/// came.
fn wait_for(
    interrupted: &AtomicBool,
    limit: Duration,
    mut ready: impl FnMut() -> Result<bool, Look>,
) -> Result<(), Ended> {
    let t = Instant::now();
    let mut last = None;
    loop {
        if interrupted.load(Ordering::SeqCst) {
            return Err(Ended::Interrupted);
        }
        match ready() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(Look::Exited(e)) => return Err(Ended::Failed(e)),
            Err(Look::Retry(e)) => last = Some(e),
        }
        if t.elapsed() > limit {
            let why = last.map(|e| format!(" (last: {e})")).unwrap_or_default();
            return Err(Ended::Failed(format!(
                "not ready within {} s{why}",
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One paragraph for the terminal.
pub fn summary(r: &Report) -> String {
    let nodes = if r.pool_nodes > 0 {
        format!("{} fleet nodes and {} pool nodes", r.nodes, r.pool_nodes)
    } else {
        format!("{} nodes", r.nodes)
    };
    let held = r.expectations.iter().filter(|e| e.passed).count();
    let detection = match (r.detection_p50_s, r.detection_max_s) {
        (Some(p), Some(m)) => format!("detection p50 {p:.2} s, max {m:.2} s"),
        _ => "nothing detected".into(),
    };
    format!(
        "{}: {} — {nodes}, {} fault(s), {detection}, {} false positive(s), {held}/{} expectations held",
        r.scenario,
        if r.passed { "PASSED" } else { "FAILED" },
        r.faults.len(),
        r.false_positives.len(),
        r.expectations.len()
    )
}
