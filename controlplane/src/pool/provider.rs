//! Providers: where a pool's machines come from, behind one small blocking trait.
//!
//! | kind | machines | module |
//! |---|---|---|
//! | `fake` | in process, for unit tests and the simulator | [`fake`] |
//! | `local` | real `gpuwarden-agent --fake-gpus N` processes on this machine | [`local`] |
//! | `exec` | the operator's programs, a JSON contract on stdin/stdout | [`exec`] |
//! | `lambda` | Lambda Cloud's public REST API | [`lambda`] |
//!
//! The pool manager records an instance (our id, [`ProvisionRequest::instance_id`]) before
//! it calls [`Provider::provision`], and every provider tags the machine with that id so
//! that [`Provider::list`] maps machines back to records: a crash between the call and its
//! record leaves neither an orphan nor a duplicate, because the reconcile loop finds the
//! machine by its instance id. Calls block; the manager runs them on a blocking thread,
//! outside any lock, under a timeout, and retries [`ProviderError::retryable`] failures with
//! backoff (honouring [`ProviderError::retry_after`]).
//!
//! Secrets (the join token, API keys) never appear in `Debug` output, logs or errors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{SharedClock, SystemClock};

pub mod exec;
pub mod fake;
pub mod lambda;
pub mod local;
pub mod params;
pub mod run;

/// The provider kinds [`build`] knows.
pub const KINDS: &[&str] = &["fake", "local", "exec", "lambda"];

/// A pool's machines, wherever they come from. Blocking: the pool manager calls it on a
/// blocking thread, outside any lock, under a timeout, and retries with backoff.
pub trait Provider: Send + Sync + fmt::Debug {
    /// `"fake"`, `"local"`, `"exec"` or `"lambda"`.
    fn kind(&self) -> &'static str;
    /// Starts one machine that joins the control plane with `req.join_token`. A machine
    /// already started for `req.instance_id` (a retry after a lost answer) is answered
    /// again where the provider can tell, never started twice.
    fn provision(&self, req: &ProvisionRequest) -> Result<Provisioned, ProviderError>;
    /// Stops the machine `provider_id`. A machine that is already gone is `Ok`.
    fn terminate(&self, provider_id: &str) -> Result<(), ProviderError>;
    /// The provider's machines of gpuwarden, for the reconcile loop.
    fn list(&self) -> Result<Vec<Listed>, ProviderError>;
    /// Instance types with their prices and the regions that have capacity now, for the
    /// `cost` and `availability` strategies; empty where the provider has no catalogue.
    fn offerings(&self) -> Result<Vec<Offering>, ProviderError> {
        Ok(Vec::new())
    }
}

/// What the pool manager asks a provider for: one machine.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionRequest {
    /// Our id of the instance, recorded in the database before the call; the machine is
    /// tagged with it so that [`Provider::list`] maps it back.
    pub instance_id: String,
    /// The pool.
    pub pool: String,
    /// The node name the machine's agent registers as.
    pub node_name: String,
    /// The provider's instance type (e.g. `gpu_1x_a100`); may be empty where it has none.
    pub instance_type: String,
    /// The region; may be empty where the provider has none.
    pub region: String,
    /// The zone, where the provider has zones.
    pub zone: Option<String>,
    /// The pool's labels.
    pub labels: BTreeMap<String, String>,
    /// The instance's own join token: the agent registers with it (a secret).
    pub join_token: String,
    /// Where the agent registers.
    pub control_plane_url: String,
}

impl fmt::Debug for ProvisionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvisionRequest")
            .field("instance_id", &self.instance_id)
            .field("pool", &self.pool)
            .field("node_name", &self.node_name)
            .field("instance_type", &self.instance_type)
            .field("region", &self.region)
            .field("zone", &self.zone)
            .field("labels", &self.labels)
            .field("join_token", &"[redacted]")
            .field("control_plane_url", &self.control_plane_url)
            .finish()
    }
}

/// A machine a provider started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provisioned {
    /// The provider's id of the machine (what [`Provider::terminate`] takes).
    pub provider_id: String,
    /// The agent's base URL where the provider knows it already.
    pub address: Option<String>,
}

/// A machine as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// The provider's id of the machine.
    pub provider_id: String,
    /// Our instance id, from the machine's tag; `None` when the machine carries none.
    pub instance_id: Option<String>,
    /// Where it is in its life.
    pub state: ListedState,
}

/// A listed machine's state, as the provider sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListedState {
    /// Being created or booting.
    Pending,
    /// Up (its agent may or may not have registered yet).
    Running,
    /// Being stopped.
    Terminating,
    /// Gone: terminated, crashed, preempted.
    Gone,
}

/// An instance type a provider offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offering {
    /// The instance type's name.
    pub instance_type: String,
    /// Its price in US cents per hour, where known.
    pub price_cents_per_hour: Option<u64>,
    /// Regions that can launch it now.
    pub regions_with_capacity: Vec<String>,
}

/// Why a provider call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No capacity for this instance type or region now.
    Capacity,
    /// The account's quota is used up.
    Quota,
    /// Credentials missing, invalid, or the account inactive.
    Auth,
    /// Too many requests: slow down.
    RateLimited,
    /// No answer in time (the machine may exist: [`Provider::list`] finds it).
    Timeout,
    /// The provider refused the request as invalid.
    InvalidRequest,
    /// The machine does not exist.
    NotFound,
    /// The provider is unreachable or failing (5xx, connection refused).
    Unavailable,
    /// The provider answered something that cannot be read.
    BadAnswer,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::Capacity,
        ErrorKind::Quota,
        ErrorKind::Auth,
        ErrorKind::RateLimited,
        ErrorKind::Timeout,
        ErrorKind::InvalidRequest,
        ErrorKind::NotFound,
        ErrorKind::Unavailable,
        ErrorKind::BadAnswer,
        ErrorKind::Other,
    ];

    /// The name in JSON, the exec contract and the pool's status.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Capacity => "capacity",
            ErrorKind::Quota => "quota",
            ErrorKind::Auth => "auth",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::BadAnswer => "bad_answer",
            ErrorKind::Other => "other",
        }
    }

    /// The kind named `s` ([`ErrorKind::as_str`]).
    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// Whether the same call may succeed later without anyone changing anything.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Capacity
                | ErrorKind::RateLimited
                | ErrorKind::Timeout
                | ErrorKind::Unavailable
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed provider call: its kind, a message for the pool's status (never a secret),
/// and how long the provider asked us to wait.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ProviderError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// What the provider said, in words.
    pub message: String,
    /// Wait at least this long before the next call (a 429's `Retry-After`, a pacing limit).
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, asking the caller to wait `d` first.
    pub fn with_retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    /// Whether the call may be retried (with backoff): capacity, rate limits, timeouts and
    /// an unavailable provider; not auth, quota, invalid requests or unreadable answers.
    pub fn retryable(&self) -> bool {
        self.kind.retryable()
    }
}

/// Sleeps for a duration; tests pass one that moves a fake clock instead.
pub type Sleeper = Arc<dyn Fn(Duration) + Send + Sync>;

/// Environment variables as providers read them (API keys): the process's, or a map.
#[derive(Clone, Default)]
pub struct EnvVars(Option<Arc<BTreeMap<String, String>>>);

impl EnvVars {
    /// The process's environment.
    pub fn process() -> Self {
        Self(None)
    }
    /// Only these variables (tests).
    pub fn from_map(vars: BTreeMap<String, String>) -> Self {
        Self(Some(Arc::new(vars)))
    }
    /// The value of `name`, when set and not empty.
    pub fn get(&self, name: &str) -> Option<String> {
        let v = match &self.0 {
            None => std::env::var(name).ok(),
            Some(m) => m.get(name).cloned(),
        };
        v.filter(|v| !v.trim().is_empty())
    }
}

impl fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "EnvVars(map)" } else { "EnvVars(process)" })
    }
}

/// What the control plane gives every provider.
#[derive(Clone)]
pub struct ProviderEnv {
    /// The control plane's URL as agents reach it (the default of
    /// [`ProvisionRequest::control_plane_url`]).
    pub control_plane_url: String,
    /// A folder for providers' state (under the control plane's data folder); each kind
    /// keeps its files in a subfolder named after it.
    pub state_dir: PathBuf,
    /// The `gpuwarden-agent` binary for the `local` provider; `None`: the one beside the
    /// running executable, else `gpuwarden-agent` on `PATH`.
    pub agent_binary: Option<PathBuf>,
    /// The clock (rate limits, ids).
    pub clock: SharedClock,
    /// How providers wait (rate limits); tests move a fake clock instead.
    pub sleep: Sleeper,
    /// Where API keys are read from.
    pub vars: EnvVars,
}

impl ProviderEnv {
    /// The system clock, real sleeps, the process's environment.
    pub fn new(control_plane_url: impl Into<String>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            control_plane_url: control_plane_url.into(),
            state_dir: state_dir.into(),
            agent_binary: None,
            clock: Arc::new(SystemClock),
            sleep: Arc::new(std::thread::sleep),
            vars: EnvVars::process(),
        }
    }
}

impl fmt::Debug for ProviderEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderEnv")
            .field("control_plane_url", &self.control_plane_url)
            .field("state_dir", &self.state_dir)
            .field("agent_binary", &self.agent_binary)
            .field("vars", &self.vars)
            .finish_non_exhaustive()
    }
}

/// Builds a provider from its kind and params (the JSON object of the pool spec); every
/// problem at once, each naming the param.
pub fn build(
    kind: &str,
    params: &serde_json::Map<String, serde_json::Value>,
    env: &ProviderEnv,
) -> Result<Arc<dyn Provider>, Vec<String>> {
    Ok(match kind {
        "fake" => Arc::new(fake::FakeProvider::from_params(params)?),
        "local" => Arc::new(local::LocalProvider::from_params(params, env)?),
        "exec" => Arc::new(exec::ExecProvider::from_params(params)?),
        "lambda" => Arc::new(lambda::LambdaProvider::from_params(params, env)?),
        other => {
            return Err(vec![format!(
                "unknown provider {other:?} (known: {})",
                KINDS.join(", ")
            )])
        }
    })
}

/// `text` with every occurrence of each secret replaced by `[redacted]`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "[redacted]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_round_trip_and_say_whether_to_retry() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(k.as_str()), Some(*k));
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        let retryable: Vec<_> = ErrorKind::ALL.iter().filter(|k| k.retryable()).collect();
        assert_eq!(
            retryable,
            [
                &ErrorKind::Capacity,
                &ErrorKind::RateLimited,
                &ErrorKind::Timeout,
                &ErrorKind::Unavailable
            ]
        );
        assert_eq!(ErrorKind::parse("nope"), None);
    }

    #[test]
    fn the_join_token_never_shows_in_debug_output() {
        let r = ProvisionRequest {
            instance_id: "i-1".into(),
            pool: "p".into(),
            node_name: "n".into(),
            instance_type: String::new(),
            region: String::new(),
            zone: None,
            labels: BTreeMap::new(),
            join_token: "gwj_secret_0123456789".into(),
            control_plane_url: "http://cp".into(),
        };
        let d = format!("{r:?}");
        assert!(!d.contains("gwj_secret"), "{d}");
        assert!(d.contains("[redacted]"));
    }

    #[test]
    fn an_unknown_kind_is_refused_naming_the_known_ones() {
        let env = ProviderEnv::new("http://127.0.0.1:8410", "/nonexistent");
        let e = build("ec2", &serde_json::Map::new(), &env).unwrap_err();
        assert_eq!(
            e,
            vec!["unknown provider \"ec2\" (known: fake, local, exec, lambda)"]
        );
    }
}
