//! `gpuwarden demo`: the whole product on one machine, in one command.
//!
//! It makes a fresh folder, starts a control plane on SQLite there (this same executable,
//! `serve`, in a process group of its own), declares a pool `demo` of four agents with fake
//! GPUs on the `local` provider (with the example WebAssembly plugins when they are built),
//! and, once the pool is up, injects a fatal XID (79, fell off the bus) into one agent. A
//! live view (ratatui) shows the nodes — lifecycle, health and its reason, connectivity,
//! GPUs — and the pool's size and instances while the bad node is replaced, drained and
//! terminated. Without a terminal, or with `--ci`, it prints one line per change instead;
//! `--ci` exits 0 once the faulty node has been replaced, and 1 with the reason when the
//! time limit passes first.
//!
//! Ctrl-C, SIGTERM, SIGHUP (a closed terminal) or `q` in the live view stops everything it
//! started (a `--ci` run so stopped exits 130): the control plane first,
//! so that nothing provisions again, then every agent whose state folder lies in the demo's
//! folder (found through `/proc`, whoever started it), each group with SIGTERM, then
//! SIGKILL after a grace period. The folder stays, with the logs, for a look afterwards. A
//! demo killed outright (SIGKILL) cannot stop anything: `gpuwarden demo --stop --dir DIR`
//! stops what it left.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod fleet;
pub(crate) mod host;
pub(crate) mod setup;
pub(crate) mod stop;
mod view;

use fleet::{Phase, Snapshot};
pub use setup::DemoArgs;

/// Runs the demo; the exit code is the process's.
pub fn run(args: DemoArgs) -> ExitCode {
    if args.stop {
        let Some(dir) = &args.dir else {
            eprintln!("demo: --stop needs the demo's --dir");
            return ExitCode::from(2);
        };
        let Ok(dir) = std::fs::canonicalize(dir) else {
            eprintln!("demo: --dir {}: no such folder", dir.display());
            return ExitCode::from(2);
        };
        println!("{}", stop::leftovers(&dir));
        return ExitCode::SUCCESS;
    }
    let stop_flag = Arc::new(AtomicBool::new(false));
    if let Err(e) = stop::on_ctrl_c(stop_flag.clone()) {
        eprintln!("demo: cannot watch for Ctrl-C: {e}");
        return ExitCode::from(1);
    }
    let demo = match setup::start(&args) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = watch(&args, &demo, &stop_flag);
    let stopped = stop::everything(demo.control_plane.id(), &demo.agents_dir);
    println!("{stopped}");
    println!(
        "The folder {} keeps the logs and the database.",
        demo.dir.display()
    );
    match outcome {
        // The summary was the last change shown.
        Ok(Some(_)) => ExitCode::SUCCESS,
        // Stopped by the operator: fine by hand; in CI the node was not replaced.
        Ok(None) if args.ci => {
            eprintln!("demo: interrupted before the faulty node was replaced");
            ExitCode::from(130)
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(1)
        }
    }
}

/// Polls the control plane until the demo is done, stopped or out of time; shows changes in
/// the live view or as lines. `Ok(Some(summary))` when the faulty node was replaced.
fn watch(
    args: &DemoArgs,
    demo: &setup::Demo,
    stop_flag: &AtomicBool,
) -> Result<Option<String>, String> {
    let live = !args.ci && view::is_terminal();
    let mut screen = if live {
        Some(view::Screen::open().map_err(|e| format!("terminal: {e}"))?)
    } else {
        None
    };
    let started = Instant::now();
    let mut phase = Phase::Starting;
    let mut last: Option<Snapshot> = None;
    let mut log: Vec<String> = Vec::new();
    let say = |line: String, log: &mut Vec<String>, live: bool| {
        let stamped = format!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
        if !live {
            println!("{stamped}");
        }
        log.push(stamped);
        if log.len() > 200 {
            log.remove(0);
        }
    };
    say(demo.hello(), &mut log, live);
    let outcome = loop {
        if stop_flag.load(Ordering::SeqCst) {
            break Ok(None);
        }
        if let Some(s) = screen.as_mut() {
            if s.quit_pressed() {
                break Ok(None);
            }
        }
        if !stop::alive(demo.control_plane.id()) {
            break Err(format!(
                "the control plane exited; see {}",
                demo.dir.join("controlplane.log").display()
            ));
        }
        if (args.ci || !live) && started.elapsed() > args.time_limit {
            break Err(format!(
                "time limit {} passed in phase: {}",
                humantime::format_duration(args.time_limit),
                phase.describe()
            ));
        }
        match demo.snapshot() {
            Ok(now) => {
                for line in fleet::changes(last.as_ref(), &now) {
                    say(line, &mut log, live);
                }
                let (next, said) = phase.advance(
                    &now,
                    demo.nodes as usize,
                    args.fault_after,
                    started.elapsed(),
                    |address| demo.inject(address, fleet::fatal_xid()),
                );
                for line in said {
                    say(line, &mut log, live);
                }
                phase = next;
                if let Some(s) = screen.as_mut() {
                    s.draw(&demo.base, &now, &phase, &log);
                }
                last = Some(now);
                if let Phase::Replaced { summary } = &phase {
                    if args.ci || !live {
                        break Ok(Some(summary.clone()));
                    }
                }
            }
            Err(e) => say(format!("reading the control plane: {e}"), &mut log, live),
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    drop(screen); // the terminal back to normal before the last lines
    if live {
        // The live view's log, so the story stays on the terminal.
        for l in log.iter().rev().take(30).rev() {
            println!("{l}");
        }
    }
    outcome
}
