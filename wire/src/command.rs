//! Commands the control plane sends to an agent's `POST /v1/commands`, and the agent's answer.
//!
//! A command carries an idempotency `id`: the agent runs a given id once, and answers every
//! later delivery of it with where that one run stands. The control plane delivers a command
//! until the answer is final (`succeeded` or `failed`), so a retry after a lost answer and a
//! poll of a long drain are the same request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a command does.
pub const KINDS: &[&str] = &["cordon", "uncordon", "drain", "terminate", "run_diagnostic"];

/// The body of `POST /v1/commands`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// Idempotency id, chosen by the control plane (`cmd-…`).
    pub id: String,
    /// One of [`KINDS`] (`run-diagnostic` is accepted for `run_diagnostic`).
    pub kind: String,
    /// Parameters.
    #[serde(default)]
    pub params: CommandParams,
}

/// Parameters of a command; each kind reads the ones it needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandParams {
    /// Why, for the hooks' `{reason}` (cordon, uncordon, drain, terminate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Drain: the longest the drain may take, like `30m` (default: the agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// run_diagnostic: the plugin to run (default: the agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// run_diagnostic: plugin parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
}

/// Where a command stands on the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandState {
    /// Accepted and running (a drain waiting for the GPUs to empty, say).
    Running,
    /// Done.
    Succeeded,
    /// Done, with an error.
    Failed,
}

impl CommandState {
    /// True for `succeeded` and `failed`.
    pub fn is_final(self) -> bool {
        !matches!(self, CommandState::Running)
    }

    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandState::Running => "running",
            CommandState::Succeeded => "succeeded",
            CommandState::Failed => "failed",
        }
    }
}

/// The agent's answer to `POST /v1/commands`: the state of that command id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandStatus {
    /// The idempotency id.
    pub id: String,
    /// What it does.
    pub kind: String,
    /// Where it stands.
    pub state: CommandState,
    /// One line for people: what happened.
    pub message: String,
    /// Details: the hook's exit status and output, how a drain ended, a diagnostic report.
    #[serde(default)]
    pub result: serde_json::Value,
    /// When the agent first received it (RFC 3339).
    pub received_at: String,
    /// When it ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// The kind's canonical name, or `None` for an unknown kind.
pub fn canonical_kind(kind: &str) -> Option<&'static str> {
    let k = if kind == "run-diagnostic" {
        "run_diagnostic"
    } else {
        kind
    };
    KINDS.iter().copied().find(|x| *x == k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_the_contract_names_and_unknown_ones_are_refused() {
        assert_eq!(canonical_kind("run-diagnostic"), Some("run_diagnostic"));
        assert_eq!(canonical_kind("drain"), Some("drain"));
        assert_eq!(canonical_kind("reboot"), None);
        let r: Result<CommandRequest, _> =
            serde_json::from_str(r#"{"id":"cmd-1","kind":"drain","params":{"timeot":"1m"}}"#);
        assert!(r.unwrap_err().to_string().contains("timeot"));
        assert!(CommandState::Failed.is_final() && !CommandState::Running.is_final());
    }
}
