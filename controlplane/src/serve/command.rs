//! The `gpuwarden serve` command: `--check-config FILE` (every problem, exit 2), or load the
//! configuration, start the control plane on a tokio runtime and run until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::{start, EnvTokens, ShutdownSignal};
use crate::cli::Output;
use crate::clock::SystemClock;
use crate::config::{ConfigError, ControlPlaneConfig, Overrides};
use crate::pool::rules::param_problems;

/// The problems of a configuration (file, environment, flags), one line each.
fn config_problems(e: &ConfigError) -> Vec<String> {
    let ConfigError::Invalid { problems, .. } = e;
    problems.clone()
}

/// Runs `gpuwarden serve` with its flags; the process's exit code.
pub fn run(
    config: Option<PathBuf>,
    listen: Option<String>,
    database: Option<String>,
    check_config: Option<PathBuf>,
    out: Output,
) -> ExitCode {
    let overrides = Overrides { listen, database };
    let env = EnvTokens::from_env();
    if let Some(file) = check_config {
        let (mut problems, warnings) =
            match ControlPlaneConfig::load_checked(Some(&file), &overrides, param_problems) {
                Ok(c) => (Vec::new(), c.warnings),
                Err(e) => (config_problems(&e), Vec::new()),
            };
        problems.extend(env.check().err().unwrap_or_default());
        let valid = problems.is_empty();
        match out {
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "file": file.display().to_string(), "valid": valid, "problems": problems,
                    "warnings": warnings,
                }))
                .unwrap_or_default()
            ),
            Output::Table if valid => {
                for w in &warnings {
                    eprintln!("warning: {w}");
                }
                println!("{}: configuration is valid", file.display());
            }
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
    let cfg = match ControlPlaneConfig::load_checked(config.as_deref(), &overrides, param_problems)
    {
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
        let shutdown = ShutdownSignal::install();
        let running = match start(cfg, env, Arc::new(SystemClock)).await {
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
