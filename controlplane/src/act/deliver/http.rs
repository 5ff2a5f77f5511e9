//! One delivery attempt: [`Deliver`] sends a command to an agent; [`HttpSender`] does it
//! over HTTP (`POST /v1/commands`, the node credential as bearer, answers up to 1 MiB).

use std::time::Duration;

use gpuwarden_wire::command::{CommandRequest, CommandStatus};
use serde_json::Value;

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The agent answered with where the command stands.
    Answered(CommandStatus),
    /// The agent refused it for good (HTTP status, its message).
    Refused(u16, String),
    /// Try again later (why).
    Retry(String),
}

/// Sends one command to one agent.
pub trait Deliver: Send + Sync {
    /// POSTs `req` to `address`/v1/commands with `credential` as the bearer.
    fn send(&self, address: &str, credential: &str, req: &CommandRequest) -> Delivery;
}

/// [`Deliver`] over HTTP.
#[derive(Debug, Clone)]
pub struct HttpSender {
    agent: ureq::Agent,
}

impl HttpSender {
    /// A sender whose requests take at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        HttpSender {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(timeout))
                .build()
                .into(),
        }
    }
}

impl Deliver for HttpSender {
    fn send(&self, address: &str, credential: &str, req: &CommandRequest) -> Delivery {
        let url = format!("{}/v1/commands", address.trim_end_matches('/'));
        let resp = self
            .agent
            .post(&url)
            .header("Authorization", &format!("Bearer {credential}"))
            .send_json(req);
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => return Delivery::Retry(format!("cannot reach the agent: {e}")),
        };
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        let message = || {
            serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| body.chars().take(300).collect())
        };
        match status {
            200 => match serde_json::from_str::<CommandStatus>(&body) {
                Ok(s) => Delivery::Answered(s),
                Err(e) => Delivery::Retry(format!("unreadable answer from the agent: {e}")),
            },
            400 | 404 | 409 | 422 => Delivery::Refused(status, message()),
            _ => Delivery::Retry(format!("HTTP {status}: {}", message())),
        }
    }
}
