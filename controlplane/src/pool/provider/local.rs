//! `local`: each machine is a real `gpuwarden-agent --fake-gpus N` process on this host,
//! listening on a free loopback port, joining the control plane with the instance's own
//! join token. A whole fleet on a laptop, for demos, tests and plugin development.
//!
//! The agent gets a clean environment: `PATH`, `HOME`, `LANG`, `RUST_LOG=info`, its node
//! name, pool, state folder and join token as `GPUWARDEN_*` variables (never on the
//! command line), plus the `env` param. It runs in a process group of its own, so it
//! outlives a restart of the control plane; a state file per instance (pid, start time,
//! address) lets a later run list it and stop it, and a reused pid is never taken for it.
//! Its log goes to `instances/ID/agent.log`. `terminate` sends SIGTERM to its group, then
//! SIGKILL after the grace period.
//!
//! Params: `gpus` (fake GPUs per agent, default 8), `agent_binary` (default: the
//! `gpuwarden-agent` beside this executable, else on `PATH`), `state_dir` (default:
//! `local` under the control plane's provider state folder), `grace` (default 10s),
//! `start_timeout` (how long to wait for the agent to listen, default 30s), `env` (more
//! variables for the agents, e.g. `GPUWARDEN_COLLECTOR__INTERVAL`), `config` (an agent
//! config file every agent starts with, `--config FILE`, for what variables cannot say
//! well, such as `[[plugins]]`; the variables above still override it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde_json::{Map, Value};

use super::params::{is_executable, Params};
use super::{
    ErrorKind, Listed, ListedState, Provider, ProviderEnv, ProviderError, ProvisionRequest,
    Provisioned,
};
use crate::clock::SharedClock;

pub mod proc;
mod start;
pub mod state;

use state::Kept;

/// The prefix of the provider ids: `local-{instance id}`.
pub const ID_PREFIX: &str = "local-";

/// The exit status with which an agent says the control plane refused its credential.
const JOIN_REFUSED: i32 = 78;

/// The provider of local agent processes.
#[derive(Debug)]
pub struct LocalProvider {
    agent: PathBuf,
    gpus: u64,
    root: PathBuf,
    grace: Duration,
    start_timeout: Duration,
    env: BTreeMap<String, String>,
    /// The agents' config file (`--config`), when given.
    config: Option<PathBuf>,
    clock: ClockDebug,
    /// Agents this process started, kept to reap them when they exit.
    children: Mutex<HashMap<String, Child>>,
    /// Instances being provisioned right now.
    starting: Mutex<HashSet<String>>,
}

struct ClockDebug(SharedClock);

impl std::fmt::Debug for ClockDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// The agent binary: `gpuwarden-agent` beside the running executable, else on `PATH`.
pub fn default_agent_binary() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("gpuwarden-agent")))
        .filter(|p| is_executable(p));
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("gpuwarden-agent"))
                .find(|p| is_executable(p))
        })
    })
}

impl LocalProvider {
    /// From a pool spec's params (see the module docs).
    pub fn from_params(map: &Map<String, Value>, env: &ProviderEnv) -> Result<Self, Vec<String>> {
        let mut p = Params::new("local", map);
        let gpus = p.uint("gpus", 8, 1, 64);
        let agent = p
            .string("agent_binary")
            .map(PathBuf::from)
            .or_else(|| env.agent_binary.clone())
            .or_else(default_agent_binary);
        match &agent {
            Some(a) if is_executable(a) => {}
            Some(a) => p.problem(
                "agent_binary",
                format!("{} is not an executable file", a.display()),
            ),
            None => p.problem(
                "agent_binary",
                "no gpuwarden-agent beside this executable or on PATH: name one",
            ),
        }
        let root = p
            .string("state_dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| env.state_dir.join("local"));
        // Agents refuse a relative state folder: resolve it against this process's folder.
        let root = std::path::absolute(&root).unwrap_or(root);
        let second = Duration::from_secs(1);
        let grace = p.duration("grace", second * 10, Duration::ZERO, second * 600);
        let start_timeout = p.duration("start_timeout", second * 30, second, second * 600);
        let extra = p.string_map("env");
        let config = p.string("config").map(PathBuf::from);
        if let Some(c) = &config {
            if !c.is_file() {
                p.problem("config", format!("{} is not a file", c.display()));
            }
        }
        p.finish()?;
        Ok(Self {
            agent: agent.unwrap_or_default(),
            gpus,
            root,
            grace,
            start_timeout,
            env: extra,
            config,
            clock: ClockDebug(env.clock.clone()),
            children: Mutex::default(),
            starting: Mutex::default(),
        })
    }

    /// The folder of this provider's state.
    pub fn state_dir(&self) -> &Path {
        &self.root
    }

    fn reap(&self) {
        let mut c = self.children.lock().unwrap_or_else(|p| p.into_inner());
        c.retain(|_, child| matches!(child.try_wait(), Ok(None)));
    }

    fn alive(&self, k: &Kept) -> bool {
        self.reap();
        proc::alive(k.pid, k.start_ticks)
    }

    /// Stops the agent of `k`: SIGTERM to its group, SIGKILL after the grace period.
    fn stop(&self, k: &Kept) -> Result<(), ProviderError> {
        if !self.alive(k) {
            return Ok(());
        }
        proc::signal(k.pid, Signal::TERM);
        for (signal, wait) in [
            (None, self.grace),
            (Some(Signal::KILL), Duration::from_secs(5)),
        ] {
            if let Some(s) = signal {
                proc::signal(k.pid, s);
            }
            let until = Instant::now() + wait;
            loop {
                if !self.alive(k) {
                    return Ok(());
                }
                if Instant::now() >= until {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err(ProviderError::new(
            ErrorKind::Other,
            format!("agent {} (pid {}) survived SIGKILL", k.instance_id, k.pid),
        ))
    }
}

/// The instance id in a provider id, when it is a safe folder name.
fn instance_of(provider_id: &str) -> Result<&str, ProviderError> {
    provider_id
        .strip_prefix(ID_PREFIX)
        .filter(|i| crate::validate::name(i).is_ok())
        .ok_or_else(|| {
            ProviderError::new(
                ErrorKind::InvalidRequest,
                format!("{provider_id:?} is not an id of the local provider ({ID_PREFIX}INSTANCE)"),
            )
        })
}

impl Provider for LocalProvider {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn provision(&self, req: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        if let Err(e) = crate::validate::name(&req.instance_id) {
            return Err(ProviderError::new(
                ErrorKind::InvalidRequest,
                format!("instance_id {e}"),
            ));
        }
        let provider_id = format!("{ID_PREFIX}{}", req.instance_id);
        {
            let mut s = self.starting.lock().unwrap_or_else(|p| p.into_inner());
            if !s.insert(req.instance_id.clone()) {
                return Err(ProviderError::new(
                    ErrorKind::Unavailable,
                    format!("{} is being provisioned already", req.instance_id),
                ));
            }
        }
        let result = (|| {
            // Started already (an answer lost, a restart): that agent, not a second one.
            if let Ok(Some(k)) = state::load(&self.root, &req.instance_id) {
                if self.alive(&k) {
                    return Ok(k);
                }
            }
            self.start(req)
        })();
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&req.instance_id);
        let k = result?;
        tracing::info!(instance = %k.instance_id, pid = k.pid, address = %k.address, "local agent started");
        Ok(Provisioned {
            provider_id,
            address: Some(k.address),
        })
    }

    fn terminate(&self, provider_id: &str) -> Result<(), ProviderError> {
        let instance = instance_of(provider_id)?;
        let kept = state::load(&self.root, instance)
            .map_err(|e| ProviderError::new(ErrorKind::Other, e))?;
        let Some(k) = kept else {
            // Never started, stopped already — or started under another state folder (the
            // pool's `state_dir` param changed since): its agent is found by the instance's
            // folder name in its environment, wherever that folder is, and stopped.
            let strays = proc::agents_of_instance(instance);
            for pid in &strays {
                proc::signal(*pid, rustix::process::Signal::TERM);
            }
            let t = std::time::Instant::now();
            while strays
                .iter()
                .any(|p| proc::stat(*p).is_some_and(|(_, z)| !z))
                && t.elapsed() < self.grace
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            for pid in &strays {
                if proc::stat(*pid).is_some_and(|(_, z)| !z) {
                    proc::signal(*pid, rustix::process::Signal::KILL);
                }
            }
            if !strays.is_empty() {
                tracing::warn!(instance = %instance, pids = ?strays, "stopped a local agent of this instance that no state of this provider's folder records");
            }
            return Ok(());
        };
        self.stop(&k)?;
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(instance);
        state::forget(&self.root, instance)
            .map_err(|e| ProviderError::new(ErrorKind::Other, format!("forget {instance}: {e}")))?;
        tracing::info!(instance = %instance, pid = k.pid, "local agent stopped");
        Ok(())
    }

    fn list(&self) -> Result<Vec<Listed>, ProviderError> {
        self.reap();
        let ids = state::instances(&self.root).map_err(|e| {
            ProviderError::new(
                ErrorKind::Other,
                format!("read {}: {e}", self.root.display()),
            )
        })?;
        Ok(ids
            .into_iter()
            .map(|id| {
                let state = match state::load(&self.root, &id) {
                    Ok(Some(k)) if proc::alive(k.pid, k.start_ticks) => ListedState::Running,
                    Ok(_) => ListedState::Gone,
                    Err(e) => {
                        tracing::warn!(instance = %id, error = %e, "unreadable local instance state: listed as gone");
                        ListedState::Gone
                    }
                };
                Listed {
                    provider_id: format!("{ID_PREFIX}{id}"),
                    instance_id: Some(id),
                    state,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
