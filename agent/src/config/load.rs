//! Loading: defaults < file < `GPUWARDEN_<SECTION>__<KEY>` environment < flags, every
//! problem reported at once with its key and where the value came from; and the files the
//! agent keeps in its state folder.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use gpuwarden_configfile::env::{self as envvars, AGENT, CONTROL_PLANE};
pub use gpuwarden_configfile::ConfigError;
use gpuwarden_configfile::{extract_all, key_of, locate};

use super::model::{AgentConfig, BackendKind};

/// The state folder of an agent with NVML GPUs whose `node.state_dir` is empty.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/gpuwarden-agent";

/// Values given on the command line; they override file and environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<String>,
    /// `--fake-gpus N`: use the fake backend with N GPUs.
    pub fake_gpus: Option<u32>,
    /// `--control-plane URL`
    pub control_plane: Option<String>,
    /// `--advertise URL`
    pub advertise: Option<String>,
}

impl AgentConfig {
    /// Loads defaults, then `file` (if any), then the environment, then `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed(envvars::PREFIX), overrides)
    }

    /// [`AgentConfig::load`] with the environment given, for tests.
    pub fn load_from(
        file: Option<&Path>,
        env: Env,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let build = |p: &gpuwarden_configfile::Pruner| {
            let mut fig = Figment::from(gpuwarden_configfile::defaults(&AgentConfig::default()));
            if let Some(f) = file {
                fig = fig.merge(p.wrap(Toml::file_exact(f)));
            }
            // GPUWARDEN_<SECTION>__<KEY> variables of the agent's; the control plane's and
            // the tokens (no `__`) are not its configuration.
            let env = env
                .clone()
                .filter(|k| envvars::is_own(k.as_str(), &AGENT, &CONTROL_PLANE))
                .split("__");
            fig = fig.merge(p.wrap(env));
            if let Some(l) = &overrides.listen {
                fig = fig.merge(Serialized::default("server.listen", l));
            }
            if let Some(u) = &overrides.control_plane {
                fig = fig.merge(Serialized::default("control_plane.url", u));
            }
            if let Some(a) = &overrides.advertise {
                fig = fig.merge(Serialized::default("control_plane.advertise", a));
            }
            if let Some(n) = overrides.fake_gpus {
                fig = fig
                    .merge(Serialized::default("gpu.backend", BackendKind::Fake))
                    .merge(Serialized::default("gpu.fake_count", n));
            }
            fig
        };
        let out = extract_all::<AgentConfig>(build);
        let abs = file.map(|f| std::path::absolute(f).unwrap_or_else(|_| f.to_path_buf()));
        let mut problems: Vec<String> = out.problems.iter().map(ToString::to_string).collect();
        if let Some(cfg) = &out.value {
            let fig = build(&gpuwarden_configfile::Pruner::default());
            // A missing key holds a placeholder; it is reported once, as missing.
            for p in cfg
                .problems()
                .into_iter()
                .filter(|p| !out.filled.contains(&key_of(p)))
            {
                let source = locate(&fig, &key_of(&p))
                    .or_else(|| abs.as_ref().map(|f| f.display().to_string()))
                    .unwrap_or_else(|| "configuration".into());
                problems.push(format!("{source}: {p}"));
            }
        }
        match out.value {
            Some(mut cfg) if problems.is_empty() => {
                cfg.resolve_paths(file);
                Ok(cfg)
            }
            _ => Err(ConfigError::Invalid {
                file: abs,
                problems,
            }),
        }
    }

    /// Makes relative plugin paths relative to the directory of `file`, and each pin the
    /// bare lower-case hex the loader compares (`sha256:HEX`, as `plugin build` and the
    /// control plane print digests, is taken too).
    pub fn resolve_paths(&mut self, file: Option<&Path>) {
        for e in &mut self.plugins {
            let hex = e.sha256.strip_prefix("sha256:").unwrap_or(&e.sha256);
            e.sha256 = hex.to_ascii_lowercase();
        }
        let Some(dir) = file.and_then(Path::parent) else {
            return;
        };
        for e in &mut self.plugins {
            if e.path.is_relative() {
                e.path = dir.join(&e.path);
            }
        }
    }

    /// The folder the agent keeps its state in (node token, commands, kernel-log position):
    /// `node.state_dir`; when empty, [`DEFAULT_STATE_DIR`] with NVML GPUs and none with fake
    /// GPUs (tests and demos keep nothing unless told where).
    pub fn state_dir(&self) -> Option<PathBuf> {
        if !self.node.state_dir.as_os_str().is_empty() {
            return Some(self.node.state_dir.clone());
        }
        (self.gpu.backend == BackendKind::Nvml).then(|| PathBuf::from(DEFAULT_STATE_DIR))
    }

    /// Where the components of plugins the control plane assigns are kept: `plugins` in the
    /// state folder, else (fake GPUs without one) a folder of this process under the
    /// temporary folder, removed when it stops (second value true).
    pub fn assigned_plugins_dir(&self) -> (PathBuf, bool) {
        match self.state_dir() {
            Some(d) => (d.join("plugins"), false),
            None => (
                std::env::temp_dir()
                    .join(format!("gpuwarden-agent-{}-plugins", std::process::id())),
                true,
            ),
        }
    }

    /// Where the node token is kept across restarts: `control_plane.token_file`, else
    /// `node-token` in the state folder, else nowhere.
    pub fn token_file(&self) -> Option<PathBuf> {
        let t = &self.control_plane.token_file;
        if !t.as_os_str().is_empty() {
            return Some(t.clone());
        }
        self.state_dir().map(|d| d.join("node-token"))
    }

    /// Where the commands received are kept: `commands.state_file`, else next to a
    /// configured `control_plane.token_file`, else `commands.json` in the state folder.
    pub fn commands_state_file(&self) -> Option<PathBuf> {
        if !self.commands.state_file.as_os_str().is_empty() {
            return Some(self.commands.state_file.clone());
        }
        let t = &self.control_plane.token_file;
        if !t.as_os_str().is_empty() {
            return Some(t.with_file_name("commands.json"));
        }
        self.state_dir().map(|d| d.join("commands.json"))
    }

    /// Where the kernel-log position is kept: `kmsg-position.json` in the state folder.
    pub fn kmsg_state_file(&self) -> Option<PathBuf> {
        self.state_dir().map(|d| d.join("kmsg-position.json"))
    }

    /// The node id: configured, or the hostname.
    pub fn node_id(&self) -> String {
        if !self.node.id.is_empty() {
            return self.node.id.clone();
        }
        sysinfo::System::host_name().unwrap_or_else(|_| "unknown".into())
    }
}

#[cfg(test)]
mod tests {
    use super::key_of;

    #[test]
    fn validation_messages_name_their_key() {
        assert_eq!(
            key_of("server.listen: \"x\" is not an address"),
            "server.listen"
        );
        assert_eq!(
            key_of("plugins[0] (xid-watch).sha256: 64 hex digits required"),
            "plugins.0.sha256"
        );
    }
}
