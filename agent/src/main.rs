//! `gpuwarden-agent`: flags, logging, then [`gpuwarden_agent::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gpuwarden_agent::config::{AgentConfig, Overrides, PluginKind};
use gpuwarden_agent::out;
use gpuwarden_agent::plugin::cli as plugin_cli;
use gpuwarden_agent::plugin::langs as plugin_langs;

/// The gpuwarden node agent: GPU metrics and health events for Prometheus and the
/// gpuwarden control plane.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Environment variables GPUWARDEN_<SECTION>__<KEY> override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to serve /metrics and the API on [default: 0.0.0.0:9410].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Run with N fake GPUs instead of NVML (tests and demos); needs no config.
    #[arg(long, value_name = "N")]
    fake_gpus: Option<u32>,
    /// Register with this gpuwarden control plane (bootstrap token from
    /// GPUWARDEN_BOOTSTRAP_TOKEN or the config).
    #[arg(long, value_name = "URL")]
    control_plane: Option<String>,
    /// URL the control plane should scrape [default: derived from the listen address].
    #[arg(long, value_name = "URL")]
    advertise: Option<String>,
    /// Check a configuration file and exit (0: valid; 2: invalid, with every problem listed).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write, test and pin WebAssembly plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Serve many simulated agents (fake GPUs) from this one process, each on its own
    /// address, for `gpuwarden simulate` and fleet-scale tests (docs/simulate.md). Runs until
    /// SIGINT or SIGTERM.
    Fleet(FleetFlags),
}

#[derive(Debug, clap::Args)]
struct FleetFlags {
    /// The nodes, a JSON array of {"name", "listen", "gpus", "model", "labels", "pool"}.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "nodes",
        required_unless_present_any = ["nodes", "control"]
    )]
    spec: Option<PathBuf>,
    /// Or N alike nodes, named PREFIX00000, PREFIX00001, … on consecutive addresses.
    #[arg(long, value_name = "N")]
    nodes: Option<usize>,
    /// Name prefix of --nodes.
    #[arg(long, default_value = "sim-")]
    prefix: String,
    /// The first node's address (--nodes); the next nodes take the next addresses.
    #[arg(long, default_value = "127.1.0.1", value_name = "IPV4")]
    first_address: std::net::Ipv4Addr,
    /// The port of every node (--nodes).
    #[arg(long, default_value_t = 9410)]
    port: u16,
    /// GPUs per node (--nodes).
    #[arg(long, default_value_t = 8)]
    gpus: u32,
    /// GPU model (--nodes).
    #[arg(long, default_value = "NVIDIA H100 80GB HBM3")]
    model: String,
    /// Collection interval.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    interval: std::time::Duration,
    /// Every node joins this control plane (bootstrap token from GPUWARDEN_BOOTSTRAP_TOKEN).
    #[arg(long, value_name = "URL")]
    control_plane: Option<String>,
    /// Seed of the fake GPUs (0: each node seeded by its name).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Serve the fleet's control API here (loopback only; no authentication): nodes added,
    /// removed, taken down and up while it runs (docs/simulate.md). With it, --spec and
    /// --nodes may be left out (the fleet starts empty).
    #[arg(long, value_name = "IP:PORT")]
    control: Option<std::net::SocketAddr>,
    /// Where nodes added through the control API serve: the first address and the port
    /// (0: any free port); each takes the address after the last one handed out (freed
    /// addresses are not handed out again).
    #[arg(long, value_name = "IP:PORT", default_value = "127.3.0.1:0")]
    spare_from: std::net::SocketAddr,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Run one plugin against fake GPUs and print its report. Exit status: 0 the plugin ran
    /// (whatever its verdict), 2 it could not be loaded, 3 the run failed (trap, deadline,
    /// memory, invalid report).
    Test {
        /// The component (.wasm).
        file: PathBuf,
        /// Number of fake GPUs.
        #[arg(long, default_value_t = 8, value_name = "N")]
        fake_gpus: u32,
        /// Inject a fault first (repeatable): xid:79@0, temperature:97@1, ecc:double_bit@2,
        /// ecc:single_bit:5@2, fell_off_bus@3, nvlink_down:0@4, nvlink_errors:LINK:COUNT@4,
        /// pcie_degraded@5, pcie_replays:COUNT@5, power:900@6, throttle:hw_slowdown@7,
        /// recovery_action:2@0, row_remap_pending@0, row_remap_failure@0, processes:COUNT@0.
        /// The plugin runs once, after the faults, with the fleet before them as its previous
        /// run (so counters that grew are seen).
        #[arg(long, value_name = "FAULT@GPU")]
        inject: Vec<String>,
        /// A plugin config value or diagnostic parameter, key=value (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Wall-clock deadline, e.g. 500ms [default: 1s for checks, 60s for diagnostics].
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Memory cap in MiB.
        #[arg(long, default_value_t = 64, value_name = "MIB")]
        memory_limit_mib: u32,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
        /// Keep compiled components in DIR and load them from it (a Python or JavaScript
        /// component then compiles once, not at every test).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Print a component's sha256, to paste into the agent config.
    Digest {
        /// The component (.wasm).
        file: PathBuf,
    },
    /// Start a new plugin project that builds as it is (`plugin build`): a Rust crate, or a
    /// Python or JavaScript project with its own copy of the SDK and of the contract.
    New {
        /// Project name (letters, digits, '-', '_').
        name: String,
        /// Its language.
        #[arg(long, value_enum, default_value = "rust")]
        lang: plugin_langs::Lang,
        /// Parent folder [default: Rust: plugins/examples of the repository above; Python and
        /// JavaScript: the current folder].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// A diagnostic instead of a health check.
        #[arg(long)]
        diagnostic: bool,
        /// The Rust plugin SDK folder [default: plugins/sdk found above the current folder].
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin project into a WebAssembly component with its language's tool (cargo,
    /// componentize-py, componentize-js); prints the component's path and sha256.
    Build {
        /// The project folder (Cargo.toml, app.py or app.js).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

fn plugin_command(cmd: PluginCommand) -> ExitCode {
    match cmd {
        PluginCommand::Digest { file } => {
            match gpuwarden_agent::plugin::manager::digest_file(&file) {
                Ok(d) => {
                    out!("{d}  {}", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        PluginCommand::Build { dir } => match plugin_langs::build(&dir) {
            Ok(b) => {
                out!("{}", b.path.display());
                out!("sha256:{}  ({:.1} MB)", b.sha256, b.bytes as f64 / 1e6);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        PluginCommand::New {
            name,
            lang,
            dir,
            diagnostic,
            sdk,
        } => {
            let kind = if diagnostic {
                PluginKind::Diagnostic
            } else {
                PluginKind::Check
            };
            if lang != plugin_langs::Lang::Rust {
                if !gpuwarden_agent::config::valid_plugin_name(&name) {
                    eprintln!("error: \"{name}\": use letters, digits, '-' and '_'");
                    return ExitCode::from(2);
                }
                let parent = dir.unwrap_or_else(|| PathBuf::from("."));
                return match plugin_langs::new_project(&name, &parent, lang, kind) {
                    Ok(path) => {
                        out!("created {}", path.display());
                        let setup = if lang == plugin_langs::Lang::Python {
                            "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"
                        } else {
                            "npm ci --ignore-scripts"
                        };
                        out!("set up:    (cd {} && {setup})   # once", path.display());
                        out!("build it:  gpuwarden-agent plugin build {}", path.display());
                        out!(
                            "test it:   gpuwarden-agent plugin test {}/build/{name}.wasm",
                            path.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        ExitCode::from(2)
                    }
                };
            }
            match plugin_cli::new_plugin(&name, dir.as_deref(), kind, sdk.as_deref()) {
                Ok(path) => {
                    out!("created {}", path.display());
                    out!("build it:  gpuwarden-agent plugin build {}", path.display());
                    out!("test it:   gpuwarden-agent plugin test <target>/wasm32-wasip2/release/{}.wasm", name.replace('-', "_"));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        PluginCommand::Test {
            file,
            fake_gpus,
            inject,
            set,
            timeout,
            memory_limit_mib,
            json,
            cache_dir,
        } => {
            let opts = plugin_cli::TestOptions {
                file: file.clone(),
                fake_gpus,
                inject,
                set,
                timeout,
                memory_limit_mib,
                json,
                cache_dir,
            };
            match plugin_cli::test(&opts) {
                Ok((outcome, kind)) => {
                    if json {
                        out!(
                            "{}",
                            serde_json::to_string_pretty(&outcome).unwrap_or_default()
                        );
                    } else {
                        plugin_cli::print(&file, kind, fake_gpus, &outcome);
                    }
                    if outcome.failure.is_some() {
                        ExitCode::from(3)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn main() -> ExitCode {
    if !gpuwarden_configfile::parent::tied_to_parent() {
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    gpuwarden_agent::log_panics();
    match cli.command {
        Some(Command::Plugin(cmd)) => return plugin_command(cmd),
        Some(Command::Fleet(f)) => {
            return gpuwarden_agent::fleet::cli::main(gpuwarden_agent::fleet::cli::FleetArgs {
                spec: f.spec,
                nodes: f.nodes,
                prefix: f.prefix,
                first_address: f.first_address,
                port: f.port,
                gpus: f.gpus,
                model: f.model,
                interval: f.interval,
                control_plane: f.control_plane,
                seed: f.seed,
                control: f.control,
                spare_from: f.spare_from,
            })
        }
        None => {}
    }
    let overrides = Overrides {
        listen: cli.listen.clone(),
        fake_gpus: cli.fake_gpus,
        control_plane: cli.control_plane.clone(),
        advertise: cli.advertise.clone(),
    };
    if let Some(file) = &cli.check_config {
        return match AgentConfig::load(Some(file), &overrides) {
            Ok(_) => {
                out!("{}: configuration is valid", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    let cfg = match AgentConfig::load(cli.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // The runtime serves the HTTP API too (`server.workers` threads).
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.server.workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(gpuwarden_agent::run(cfg, cli.config.clone(), overrides)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<gpuwarden_agent::register::JoinRefused>() => {
            eprintln!("error: {e:#}");
            ExitCode::from(gpuwarden_agent::register::JoinRefused::EXIT_CODE)
        }
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
