//! `gpuwarden`: the control plane (`serve`) and the admin CLI over its REST API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use gpuwarden_controlplane::cli::commands::{self, NodesCommand, PoliciesCommand};
use gpuwarden_controlplane::cli::{self, CliError, Client, Output, Target};
use gpuwarden_controlplane::clock::SystemClock;
use gpuwarden_controlplane::config::{ConfigError, ControlPlaneConfig, Overrides};
use gpuwarden_controlplane::serve::{self, EnvTokens};

/// gpuwarden keeps fleets of GPU machines healthy. `serve` runs the control plane; the other
/// commands drive it over its REST API.
#[derive(Debug, Parser)]
#[command(name = "gpuwarden", version, about)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: Command,
}

/// The global flags: before or after the subcommand.
#[derive(Debug, Args)]
struct Conn {
    /// Control-plane URL [env GPUWARDEN_SERVER; CLI config; default http://127.0.0.1:8410].
    #[arg(long, global = true, value_name = "URL")]
    server: Option<String>,
    /// Admin token [env GPUWARDEN_ADMIN_TOKEN; CLI config; ./admin-token].
    #[arg(long, global = true, value_name = "TOKEN")]
    token: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane (SQLite ./gpuwarden.db on 127.0.0.1:8410 with no config).
    Serve {
        /// Configuration file (TOML); GPUWARDEN_<SECTION>__<KEY> variables override it.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address of the API [default: 127.0.0.1:8410].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Database: sqlite://PATH or postgres://USER:PASS@HOST/DB [default: sqlite://gpuwarden.db].
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// Check a configuration file and exit (0 valid; 2 invalid, every problem listed).
        #[arg(long, value_name = "FILE", conflicts_with = "config")]
        check_config: Option<PathBuf>,
    },
    /// List, inspect, join and act on nodes.
    Nodes {
        #[command(subcommand)]
        command: NodesCommand,
    },
    /// Show, check, replace and try out health policies.
    Policies {
        #[command(subcommand)]
        command: PoliciesCommand,
    },
    /// The audit log of admin actions, newest first.
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

fn run_cli(conn: Conn, f: impl FnOnce(&Client, Output) -> Result<String, CliError>) -> ExitCode {
    let result =
        Target::resolve(conn.server, conn.token).and_then(|t| f(&Client::new(t), conn.output));
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            fail(conn.output, &e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Prints an error: text on stderr, or with `-o json` the JSON document on stdout (where a
/// script reads the answer).
fn fail(out: Output, e: &CliError) {
    match out {
        Output::Json => print!("{}", out.error(e)),
        Output::Table => eprint!("{}", out.error(e)),
    }
}

/// The problems of a configuration (file, environment, flags), one line each.
fn config_problems(e: &ConfigError) -> Vec<String> {
    let ConfigError::Invalid { problems, .. } = e;
    problems.clone()
}

fn serve_command(
    config: Option<PathBuf>,
    listen: Option<String>,
    database: Option<String>,
    check_config: Option<PathBuf>,
    out: Output,
) -> ExitCode {
    let overrides = Overrides { listen, database };
    let env = EnvTokens::from_env();
    if let Some(file) = check_config {
        let mut problems = match ControlPlaneConfig::load(Some(&file), &overrides) {
            Ok(_) => Vec::new(),
            Err(e) => config_problems(&e),
        };
        problems.extend(env.check().err().unwrap_or_default());
        let valid = problems.is_empty();
        match out {
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "file": file.display().to_string(), "valid": valid, "problems": problems,
                }))
                .unwrap_or_default()
            ),
            Output::Table if valid => println!("{}: configuration is valid", file.display()),
            Output::Table => eprintln!(
                "{}",
                ConfigError::Invalid {
                    file: Some(std::path::absolute(&file).unwrap_or(file.clone())),
                    problems,
                }
            ),
        }
        return if valid {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        };
    }
    let cfg = match ControlPlaneConfig::load(config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(problems) = env.check() {
        eprintln!("error: {}", problems.join("\n  "));
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let shutdown = serve::ShutdownSignal::install();
        let running = match serve::start(cfg, env, Arc::new(SystemClock)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some((token, path)) = &running.generated_admin_token {
            eprintln!(
                "\nadmin token (shown once; also in {}):\n\n    {token}\n",
                path.display()
            );
        }
        shutdown.wait().await;
        tracing::info!("shutting down");
        running.stop().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Whether the raw arguments ask for JSON output (`-o json`, `-ojson`, `--output json`,
/// `--output=json`): how a command-line error is shown before clap could parse the flags.
fn wants_json(args: &[String]) -> bool {
    args.iter().enumerate().any(|(i, a)| {
        let next = args.get(i + 1).map(String::as_str);
        matches!(a.as_str(), "-ojson" | "--output=json")
            || (matches!(a.as_str(), "-o" | "--output") && next == Some("json"))
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) if wants_json(&args) && e.use_stderr() => {
            fail(
                Output::Json,
                &CliError::Usage(e.to_string().trim().to_string()),
            );
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
    let conn = cli.conn;
    match cli.command {
        Command::Serve {
            config,
            listen,
            database,
            check_config,
        } => serve_command(config, listen, database, check_config, conn.output),
        Command::Nodes { command } => run_cli(conn, |c, out| commands::nodes(command, c, out)),
        Command::Policies { command } => {
            run_cli(conn, |c, out| commands::policies(command, c, out))
        }
        Command::Audit { limit } => run_cli(conn, |c, out| {
            let v = c.call("GET", &format!("/v1/audit?limit={limit}"), None)?;
            Ok(out.render(&v, cli::audit_table))
        }),
    }
}
