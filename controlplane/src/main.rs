//! `gpuwarden`: the control plane (`serve`) and the admin CLI over its REST API. The command
//! line is `cli::args`; `serve` runs `serve::command`, every other command `cli::run`.

use std::process::ExitCode;

use clap::Parser;
use gpuwarden_controlplane::cli::args::{wants_json, Cli, Command};
use gpuwarden_controlplane::cli::{run, CliError, Output};
use gpuwarden_controlplane::{demo, serve};

/// jemalloc instead of glibc's malloc: ~8 % less CPU and ~10 % less memory scraping 10,000
/// nodes (the scrape path allocates and frees per body on many threads; README, step 7).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    if !gpuwarden_configfile::parent::tied_to_parent() {
        return ExitCode::FAILURE;
    }
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) if wants_json(&args) && e.use_stderr() => {
            let usage = CliError::Usage(e.to_string().trim().to_string());
            run::fail(Output::Json, &usage);
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Serve { .. } if cli.conn.token.is_some() || cli.conn.server.is_some() => {
            // The global flags are the CLI's; a server given them would silently ignore them.
            eprintln!(
                "error: --token and --server are the CLI's (the admin token it sends, the server \
                 it calls); `serve` takes its admin tokens from auth.admin_tokens \
                 (GPUWARDEN_AUTH__ADMIN_TOKENS) and its address from --listen"
            );
            std::process::ExitCode::from(2)
        }
        Command::Serve {
            config,
            listen,
            database,
            check_config,
        } => serve::command::run(config, listen, database, check_config, cli.conn.output),
        Command::Demo {
            dir,
            ci,
            nodes,
            fault_after,
            time_limit,
            stop,
        } => demo::run(demo::DemoArgs {
            dir,
            ci,
            nodes,
            fault_after,
            time_limit,
            stop,
        }),
        Command::Simulate {
            file,
            nodes,
            seed,
            report,
            dir,
            check,
        } => gpuwarden_controlplane::simulate::simulate(
            gpuwarden_controlplane::simulate::SimulateArgs {
                file,
                nodes,
                seed,
                report,
                dir,
                check,
            },
        ),
        Command::Db { command } => gpuwarden_controlplane::cli::db::run(command),
        command => run::admin(cli.conn, command),
    }
}
