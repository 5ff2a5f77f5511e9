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

use serde::{Deserialize, Serialize};

mod builder;
mod env;
mod error;
pub mod exec;
pub mod fake;
pub mod lambda;
pub mod local;
pub mod params;
pub mod run;

pub use builder::build;
pub use env::{EnvVars, ProviderEnv, Sleeper};
pub use error::{ErrorKind, ProviderError};

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
    #[serde(default)]
    pub price_cents_per_hour: Option<u64>,
    /// Regions that can launch it now.
    #[serde(default)]
    pub regions_with_capacity: Vec<String>,
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
