//! `gpuwarden simulate FILE`: a scenario run against a real control plane and a simulated
//! fleet, with a JSON report.
//!
//! The simulator starts `gpuwarden serve` on SQLite in a fresh folder, then one
//! `gpuwarden-agent fleet` process that serves every node of the scenario on its own loopback
//! address, built on the agent's own fake GPUs (one fake, not two), each joining the control
//! plane through the agent's registration with a bootstrap token. Once every node is online
//! it runs the scenario's timeline: faults injected through each node's `/v1/fake/inject`,
//! the fleet read through `GET /v1/nodes` every 250 ms, expectations checked at their times.
//! The report gives, per fault and node, the detection latency (fault → verdict) and the
//! remediation latencies (verdict → cordoned, draining, terminated), false positives and
//! each expectation's result. Exit status: 0 every expectation held, 1 one failed, 2 the
//! scenario is invalid, 3 the simulation could not run, 130 interrupted.

pub mod report;
mod run;
pub mod scenario;

use std::path::PathBuf;
use std::process::ExitCode;

/// What `gpuwarden simulate` was asked.
#[derive(Debug, Clone)]
pub struct SimulateArgs {
    /// The scenario file (TOML).
    pub file: PathBuf,
    /// Scale the fleet to this many nodes.
    pub nodes: Option<u32>,
    /// Seed (overrides the scenario's).
    pub seed: Option<u64>,
    /// Where to write the JSON report.
    pub report: Option<PathBuf>,
    /// The folder to run in (created; must be empty); default a new one under the system's
    /// temporary folder, removed at the end unless the run failed.
    pub dir: Option<PathBuf>,
    /// Check the scenario and exit.
    pub check: bool,
}

/// Most bytes of a scenario file.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A scenario file's text, refused past [`MAX_FILE_BYTES`] (a FIFO or `/dev/zero` too).
fn read_capped(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(text)
}

/// Runs the scenario; the exit status as documented above.
pub fn simulate(args: SimulateArgs) -> ExitCode {
    let text = match read_capped(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    if let Some(d) = args
        .dir
        .as_deref()
        .filter(|d| std::fs::read_dir(d).is_ok_and(|mut entries| entries.next().is_some()))
    {
        eprintln!(
            "error: --dir {}: not empty (a run needs a folder of its own)",
            d.display()
        );
        return ExitCode::from(2);
    }
    let invalid = |problems: Vec<String>| {
        eprintln!("error: {} is not a valid scenario:", args.file.display());
        for p in problems {
            eprintln!("  - {p}");
        }
        ExitCode::from(2)
    };
    let mut scenario = match scenario::Scenario::read(&text) {
        Ok(s) => s,
        Err(problems) => return invalid(problems),
    };
    // Scaled first: node names are checked against the fleet that runs.
    if let Some(n) = args.nodes {
        match scenario.scaled(n) {
            Ok(s) => scenario = s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if let Err(problems) = scenario.check() {
        return invalid(problems);
    }
    let scenario = scenario.with_chaos();
    let nodes = scenario.nodes().len();
    if args.check {
        println!(
            "{}: valid ({nodes} nodes, {} pool(s), {} faults{}, {} expectations, {})",
            args.file.display(),
            scenario.pools.len(),
            scenario.faults.len(),
            if scenario.faults.iter().any(|f| f.chaos) {
                format!(
                    " ({} drawn by [chaos])",
                    scenario.faults.iter().filter(|f| f.chaos).count()
                )
            } else {
                String::new()
            },
            scenario.expect.len(),
            humantime::format_duration(scenario.duration)
        );
        return ExitCode::SUCCESS;
    }
    match run::run(&scenario, args.dir.as_deref()) {
        Ok(report) => {
            let json = serde_json::to_string_pretty(&report).unwrap_or_default();
            if let Some(path) = &args.report {
                if let Err(e) = std::fs::write(path, format!("{json}\n")) {
                    eprintln!("error: writing the report to {}: {e}", path.display());
                    return ExitCode::from(3);
                }
                println!("report written to {}", path.display());
            }
            println!("{}", run::summary(&report));
            if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(run::RunError::Interrupted(stopped)) => {
            eprintln!("interrupted; {stopped}");
            ExitCode::from(130)
        }
        Err(run::RunError::Failed(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}
