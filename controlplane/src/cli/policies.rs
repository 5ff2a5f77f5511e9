//! `gpuwarden policies …`: show, check, replace and try out health policies.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{json, Value};

use super::{CliError, Client, Output, Render};

// Doc comments on the clap types are their `--help` text; these are documented there.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
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

/// Runs a `policies` command; the text to print.
pub fn policies(cmd: PoliciesCommand, client: &Client, out: Output) -> Result<String, CliError> {
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
                super::simulation_table,
            )
        }
    };
    Ok(out.render(&v, render))
}
