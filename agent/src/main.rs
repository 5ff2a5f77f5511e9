//! `gpuwarden-agent`: flags, logging, then [`gpuwarden_agent::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gpuwarden_agent::config::{AgentConfig, Overrides};

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
    /// Check a configuration file and exit (0: valid; 2: invalid, with every problem listed).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
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
    let overrides = Overrides {
        listen: cli.listen.clone(),
        fake_gpus: cli.fake_gpus,
    };
    if let Some(file) = &cli.check_config {
        return match AgentConfig::load(Some(file), &overrides) {
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
    let cfg = match AgentConfig::load(cli.config.as_deref(), &overrides) {
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
    match rt.block_on(gpuwarden_agent::run(cfg, cli.config.clone(), overrides)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
