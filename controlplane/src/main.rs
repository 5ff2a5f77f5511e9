//! `gpuwarden`: the control plane (`serve`) and the admin CLI over its REST API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use gpuwarden_controlplane::cli::{self, query, CliError, Client, Target};
use gpuwarden_controlplane::clock::SystemClock;
use gpuwarden_controlplane::config::{ControlPlaneConfig, Overrides};
use gpuwarden_controlplane::serve::{self, EnvTokens};
use serde_json::{json, Value};

/// gpuwarden keeps fleets of GPU machines healthy. `serve` runs the control plane; the other
/// commands drive it over its REST API.
#[derive(Debug, Parser)]
#[command(name = "gpuwarden", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Aligned columns.
    Table,
    /// The API's JSON.
    Json,
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
        #[command(flatten)]
        conn: Conn,
    },
    /// Show, check, replace and try out health policies.
    Policies {
        #[command(subcommand)]
        command: PoliciesCommand,
        #[command(flatten)]
        conn: Conn,
    },
    /// The audit log of admin actions, newest first.
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
enum PoliciesCommand {
    /// Print the running policy document.
    Get,
    /// Check a policy file on the control plane without loading it.
    Validate {
        /// Policy file (TOML).
        file: PathBuf,
    },
    /// Replace the running policy (only when the file is valid).
    Apply {
        /// Policy file (TOML).
        file: PathBuf,
    },
    /// Compare a candidate policy with the running one over the stored events and
    /// observations of a window: which nodes it would flag, and why.
    Simulate {
        /// Candidate policy file (TOML).
        file: PathBuf,
        /// Window start: RFC 3339, or how long ago (e.g. 24h).
        #[arg(long, default_value = "24h")]
        since: String,
        /// Window end: RFC 3339, or how long ago [default: now].
        #[arg(long)]
        until: Option<String>,
        /// Only nodes of this pool.
        #[arg(long)]
        pool: Option<String>,
    },
}

fn read_policy(file: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(file)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))
}

fn policies(cmd: PoliciesCommand, client: &Client, out: Output) -> Result<String, CliError> {
    let (v, render): (Value, Render) = match cmd {
        PoliciesCommand::Get => (client.call("GET", "/v1/policies", None)?, |v| {
            format!("{}\n", v["source"].as_str().unwrap_or("").trim_end())
        }),
        PoliciesCommand::Validate { file } => {
            let text = read_policy(&file)?;
            (
                client
                    .call_text("POST", "/v1/policies/validate", text, "application/toml")
                    .map_err(|e| e.in_file(&file))?,
                |v| format!("valid: {} rules\n", v["rules"]),
            )
        }
        PoliciesCommand::Apply { file } => {
            let text = read_policy(&file)?;
            (
                client
                    .call_text("PUT", "/v1/policies", text, "application/toml")
                    .map_err(|e| e.in_file(&file))?,
                |v| {
                    format!(
                        "policy applied: {} rules\n",
                        v["rules"].as_array().map_or(0, Vec::len)
                    )
                },
            )
        }
        PoliciesCommand::Simulate {
            file,
            since,
            until,
            pool,
        } => {
            let text = read_policy(&file)?;
            let body = json!({"policy": text, "since": since, "until": until, "pool": pool});
            (
                client
                    .call("POST", "/v1/policies/simulate", Some(body))
                    .map_err(|e| e.in_file(&file))?,
                cli::simulation_table,
            )
        }
    };
    Ok(match out {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()),
        Output::Table => render(&v),
    })
}

#[derive(Debug, Subcommand)]
enum NodesCommand {
    /// Nodes, by name, with filters.
    List {
        /// Only this pool.
        #[arg(long)]
        pool: Option<String>,
        /// Only this status (pending, active, cordoned, draining, terminating, terminated).
        #[arg(long)]
        status: Option<String>,
        /// Only this health (healthy, degraded, unhealthy, unknown).
        #[arg(long)]
        health: Option<String>,
        /// Only this connectivity (online, offline).
        #[arg(long)]
        connectivity: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Nodes to skip.
        #[arg(long, default_value_t = 0)]
        offset: u32,
    },
    /// One node (by id or name): state, scrape, GPUs.
    Get {
        /// Node id or name.
        node: String,
    },
    /// A node's health events, newest first.
    Events {
        /// Node id or name.
        node: String,
        /// Only events since this time (RFC 3339) or this long ago (e.g. 1h).
        #[arg(long)]
        since: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// A node's history: status, health and connectivity changes with their reasons.
    History {
        /// Node id or name.
        node: String,
    },
    /// Commands sent to a node's agent.
    Commands {
        /// Node id or name.
        node: String,
    },
    /// Create a node in `pending`, ready for a join token.
    Create {
        /// Node name (its agent's node.id).
        name: String,
        /// Pool.
        #[arg(long)]
        pool: Option<String>,
        /// Label key=value (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Agent URL, if known (http://host:9410).
        #[arg(long)]
        address: Option<String>,
    },
    /// Issue a join token and print the agent config and systemd unit that use it.
    Token {
        /// Node id or name.
        node: String,
        /// Lifetime (e.g. 24h).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Stop scheduling work on a node.
    Cordon(StepArgs),
    /// Allow scheduling again.
    Uncordon(StepArgs),
    /// Move work off a node.
    Drain {
        #[command(flatten)]
        step: StepArgs,
        /// How long the drain may take (e.g. 30m).
        #[arg(long)]
        timeout: Option<String>,
    },
    /// Shut a node down.
    Terminate(StepArgs),
    /// Run a diagnostic plugin on a node's agent; `nodes commands` shows its report.
    Diagnose {
        /// Node id or name.
        node: String,
        /// The plugin (default: the agent's `commands.diagnostic`).
        #[arg(long)]
        plugin: Option<String>,
        /// Plugin parameter key=value (repeatable).
        #[arg(long = "arg", value_name = "KEY=VALUE")]
        args: Vec<String>,
    },
    /// Clear a node's health verdict (a sticky `unhealthy`); it is recomputed from what
    /// still holds.
    ClearHealth {
        /// Node id or name.
        node: String,
    },
    /// Delete a node and its records (the audit log keeps the deletion).
    Delete {
        /// Node id or name.
        node: String,
    },
}

#[derive(Debug, Args)]
struct StepArgs {
    /// Node id or name.
    node: String,
    /// Why (kept with the transition and in the audit log).
    #[arg(long)]
    reason: Option<String>,
}

/// How a command's answer is shown as text.
type Render = fn(&Value) -> String;

fn since_param(s: Option<String>) -> Result<Option<String>, CliError> {
    let Some(s) = s else { return Ok(None) };
    if let Ok(d) = humantime::parse_duration(&s) {
        let t = std::time::SystemTime::now()
            .checked_sub(d)
            .ok_or_else(|| CliError::Usage(format!("--since {s}: too far back")))?;
        return Ok(Some(humantime::format_rfc3339_millis(t).to_string()));
    }
    Ok(Some(s))
}

fn seg(s: &str) -> String {
    cli::encode(s)
}

fn nodes(cmd: NodesCommand, client: &Client, out: Output) -> Result<String, CliError> {
    let (v, render): (Value, Render) = match cmd {
        NodesCommand::List {
            pool,
            status,
            health,
            connectivity,
            limit,
            offset,
        } => {
            let q = query(&[
                ("pool", pool),
                ("status", status),
                ("health", health),
                ("connectivity", connectivity),
                ("limit", Some(limit.to_string())),
                ("offset", Some(offset.to_string())),
            ]);
            (
                client.call("GET", &format!("/v1/nodes{q}"), None)?,
                cli::nodes_table,
            )
        }
        NodesCommand::Get { node } => (
            client.call("GET", &format!("/v1/nodes/{}", seg(&node)), None)?,
            cli::node_view,
        ),
        NodesCommand::Events { node, since, limit } => {
            let q = query(&[
                ("since", since_param(since)?),
                ("limit", Some(limit.to_string())),
            ]);
            (
                client.call("GET", &format!("/v1/nodes/{}/events{q}", seg(&node)), None)?,
                cli::events_table,
            )
        }
        NodesCommand::History { node } => (
            client.call(
                "GET",
                &format!("/v1/nodes/{}/transitions", seg(&node)),
                None,
            )?,
            cli::transitions_table,
        ),
        NodesCommand::Commands { node } => (
            client.call("GET", &format!("/v1/nodes/{}/commands", seg(&node)), None)?,
            cli::commands_table,
        ),
        NodesCommand::Create {
            name,
            pool,
            labels,
            address,
        } => {
            let mut map = serde_json::Map::new();
            for l in labels {
                let (k, v) = l
                    .split_once('=')
                    .ok_or_else(|| CliError::Usage(format!("--label {l:?}: expected KEY=VALUE")))?;
                map.insert(k.to_string(), json!(v));
            }
            let body = json!({"name": name, "pool": pool, "labels": map, "address": address});
            (
                client.call("POST", "/v1/nodes", Some(body))?,
                cli::node_view,
            )
        }
        NodesCommand::Token { node, ttl } => {
            let v = client.call(
                "POST",
                &format!("/v1/nodes/{}/token", seg(&node)),
                Some(json!({"ttl": ttl})),
            )?;
            (v, |v| {
                format!(
                    "join token for node {} (expires {}); shown once:\n\n{}\n\n{}\n{}",
                    v["node_id"].as_str().unwrap_or("-"),
                    v["expires_at"].as_str().unwrap_or("-"),
                    v["token"].as_str().unwrap_or("-"),
                    v["agent_config"].as_str().unwrap_or(""),
                    v["systemd_unit"].as_str().unwrap_or("")
                )
            })
        }
        NodesCommand::Cordon(a) => step(client, "cordon", a, None)?,
        NodesCommand::Uncordon(a) => step(client, "uncordon", a, None)?,
        NodesCommand::Drain { step: a, timeout } => step(client, "drain", a, timeout)?,
        NodesCommand::Terminate(a) => step(client, "terminate", a, None)?,
        NodesCommand::Diagnose { node, plugin, args } => {
            let mut map = serde_json::Map::new();
            for a in args {
                let (k, v) = a
                    .split_once('=')
                    .ok_or_else(|| CliError::Usage(format!("--arg {a:?}: expected KEY=VALUE")))?;
                map.insert(k.to_string(), json!(v));
            }
            let v = client.call(
                "POST",
                &format!("/v1/nodes/{}/diagnose", seg(&node)),
                Some(json!({"plugin": plugin, "args": map})),
            )?;
            (v, |v| {
                format!(
                    "diagnostic queued for node {} as command {}; see `gpuwarden nodes commands {}`\n",
                    v["node"]["name"].as_str().unwrap_or("-"),
                    v["command"]["id"].as_str().unwrap_or("-"),
                    v["node"]["name"].as_str().unwrap_or("-"),
                )
            })
        }
        NodesCommand::ClearHealth { node } => (
            client.call(
                "POST",
                &format!("/v1/nodes/{}/clear-health", seg(&node)),
                None,
            )?,
            |v| {
                format!(
                    "node {} is {}\n",
                    v["name"].as_str().unwrap_or("-"),
                    v["health"].as_str().unwrap_or("-")
                )
            },
        ),
        NodesCommand::Delete { node } => {
            client.call("DELETE", &format!("/v1/nodes/{}", seg(&node)), None)?;
            (json!({"deleted": node}), |v| {
                format!("deleted node {}\n", v["deleted"].as_str().unwrap_or("-"))
            })
        }
    };
    Ok(match out {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()),
        Output::Table => render(&v),
    })
}

fn step(
    client: &Client,
    action: &str,
    a: StepArgs,
    timeout: Option<String>,
) -> Result<(Value, Render), CliError> {
    let body = json!({"reason": a.reason, "timeout": timeout});
    let v = client.call(
        "POST",
        &format!("/v1/nodes/{}/{action}", seg(&a.node)),
        Some(body),
    )?;
    Ok((v, cli::step_view))
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
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn serve_command(
    config: Option<PathBuf>,
    listen: Option<String>,
    database: Option<String>,
    check_config: Option<PathBuf>,
) -> ExitCode {
    let overrides = Overrides { listen, database };
    if let Some(file) = check_config {
        return match ControlPlaneConfig::load(Some(&file), &overrides) {
            Ok(_) => {
                println!("{}: configuration is valid", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    let cfg = match ControlPlaneConfig::load(config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
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
        let running = match serve::start(cfg, EnvTokens::from_env(), Arc::new(SystemClock)).await {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Serve {
            config,
            listen,
            database,
            check_config,
        } => serve_command(config, listen, database, check_config),
        Command::Nodes { command, conn } => run_cli(conn, |c, out| nodes(command, c, out)),
        Command::Policies { command, conn } => run_cli(conn, |c, out| policies(command, c, out)),
        Command::Audit { limit, conn } => run_cli(conn, |c, out| {
            let v = c.call("GET", &format!("/v1/audit?limit={limit}"), None)?;
            Ok(match out {
                Output::Json => {
                    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
                }
                Output::Table => cli::audit_table(&v),
            })
        }),
    }
}
