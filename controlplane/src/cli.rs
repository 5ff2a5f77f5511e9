//! The admin CLI: `gpuwarden nodes …`, `pools …`, `instances …`, `policies …`,
//! `remediation …` and `gpuwarden audit` over the REST API.
//!
//! The server URL and token come from flags, else `GPUWARDEN_SERVER` /
//! `GPUWARDEN_ADMIN_TOKEN`, else the CLI config file (`~/.config/gpuwarden/cli.toml`, or
//! `GPUWARDEN_CLI_CONFIG`), else `http://127.0.0.1:8410` and the `admin-token` file a
//! freshly started control plane writes in its data folder. Output is an aligned table, or
//! the API's JSON with `-o json` — errors included (`{"error":{"code","message"}}`, or the
//! API's own error document).

pub mod args;
pub mod client;
pub mod commands;
pub mod db;
mod escape;
mod invalid;
pub mod plugins;
pub mod policies;
mod pool_views;
pub mod pools;
pub mod remedy;
pub mod run;
mod table;
pub mod tokens;
mod views;

use invalid::invalid_policy;
pub use invalid::PolicyProblem;

use serde_json::{json, Value};
use thiserror::Error;

pub use client::{encode, query, CliFile, Client, Target};
pub use escape::{escape, escape_text};
pub use table::Table;
pub use views::{
    audit_table, commands_table, events_table, node_view, nodes_table, simulation_table, step_view,
    transitions_table,
};

/// How the CLI prints answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// The API's JSON (errors too).
    Json,
}

/// How a command's answer is shown as text.
pub type Render = fn(&Value) -> String;

impl Output {
    /// `v` as this output shows it: pretty JSON, or `render`'s text.
    pub fn render(self, v: &Value, render: Render) -> String {
        match self {
            Output::Json => format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default()),
            Output::Table => escape_text(&render(v)),
        }
    }

    /// An error as this output shows it: `error: …` text, or a JSON document.
    /// Passwords in URLs are masked and control characters escaped in both.
    pub fn error(self, e: &CliError) -> String {
        let text = match self {
            Output::Json => format!(
                "{}\n",
                serde_json::to_string_pretty(&e.to_json()).unwrap_or_default()
            ),
            Output::Table => format!("error: {e}\n"),
        };
        escape_text(&crate::validate::redact_urls(&text))
    }
}

/// Why a CLI command failed.
#[derive(Debug, Error)]
pub enum CliError {
    /// The API answered with an error.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
        /// Message.
        message: String,
        /// The API's answer as it came (`{"error":…}`, or an invalid policy's
        /// `{"valid":false,"errors":[…]}`).
        body: Value,
    },
    /// The server could not be reached.
    #[error("cannot reach the control plane at {url}: {message}")]
    Unreachable {
        /// Server URL.
        url: String,
        /// Why.
        message: String,
    },
    /// Bad flags or config.
    #[error("{0}")]
    Usage(String),
    /// The control plane found the policy document invalid (HTTP 422): every problem.
    #[error("{}", invalid_policy(.file.as_deref(), .problems))]
    InvalidPolicy {
        /// The file the document was read from, when known ([`CliError::in_file`]).
        file: Option<std::path::PathBuf>,
        /// The problems, as the API gave them.
        problems: Vec<PolicyProblem>,
        /// The API's answer as it came (`{"valid":false,"errors":[…]}`), for `-o json`.
        body: Value,
    },
}

impl CliError {
    /// The process exit status: 1 API error, 2 usage or invalid input, 3 unreachable.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api { .. } => 1,
            CliError::Usage(_) | CliError::InvalidPolicy { .. } => 2,
            CliError::Unreachable { .. } => 3,
        }
    }

    /// The error as JSON: the API's own answer when it sent one, else
    /// `{"error":{"code":"usage"|"unreachable"|…,"message"}}`.
    pub fn to_json(&self) -> Value {
        match self {
            CliError::Api { body, .. } if body.is_object() => body.clone(),
            CliError::Api {
                code,
                message,
                status,
                ..
            } => {
                json!({"error": {"code": code, "message": message, "status": status}})
            }
            CliError::Usage(m) => json!({"error": {"code": "usage", "message": m}}),
            CliError::Unreachable { .. } => {
                json!({"error": {"code": "unreachable", "message": self.to_string()}})
            }
            CliError::InvalidPolicy { file, body, .. } => {
                let mut v = body.clone();
                if let (Some(f), Some(o)) = (file, v.as_object_mut()) {
                    o.insert("file".into(), json!(f.display().to_string()));
                }
                v
            }
        }
    }

    /// Names the file an invalid policy was read from (its absolute path), so each problem
    /// is shown as `FILE:LINE:COLUMN`.
    pub fn in_file(self, file: &std::path::Path) -> CliError {
        match self {
            CliError::InvalidPolicy { problems, body, .. } => CliError::InvalidPolicy {
                file: Some(std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf())),
                problems,
                body,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
