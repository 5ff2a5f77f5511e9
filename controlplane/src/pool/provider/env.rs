//! What the control plane gives every provider: its URL, a state folder, the agent binary,
//! the clock and how to wait, and where API keys are read from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{SharedClock, SystemClock};

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
        f.write_str(if self.0.is_some() {
            "EnvVars(map)"
        } else {
            "EnvVars(process)"
        })
    }
}

/// What the control plane gives every provider.
#[derive(Clone)]
pub struct ProviderEnv {
    /// The control plane's URL as agents reach it: what the pool manager puts in every
    /// [`super::ProvisionRequest::control_plane_url`] (providers take the request's).
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
