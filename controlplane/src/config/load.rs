//! Loading: defaults < file < `GPUWARDEN_<SECTION>__<KEY>` environment < flags, every
//! problem reported at once with its key and where the value came from.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use gpuwarden_configfile::env::{self as envvars, AGENT, CONTROL_PLANE};
pub use gpuwarden_configfile::ConfigError;
use gpuwarden_configfile::{extract_all, key_of, locate, Pruner};

use super::{ControlPlaneConfig, Overrides};
use crate::model::pool::{PoolError, PoolSpec};

/// Rules of a pool that this layer cannot apply itself (each provider's params, which the
/// providers above it read), run on every `[[pools]]` entry by
/// [`ControlPlaneConfig::load_checked`]; each problem names its field within the pool.
pub type PoolCheck = fn(&PoolSpec) -> Vec<PoolError>;

/// The largest config file read (bytes): thousands of `[[pools]]` and static targets fit
/// many times over.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

impl ControlPlaneConfig {
    /// Loads defaults, then `file` (if any), then the environment, then `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed(envvars::PREFIX), overrides)
    }

    /// [`ControlPlaneConfig::load`] with `check` applied to every `[[pools]]` entry too,
    /// its problems reported with all the others (`gpuwarden serve`, `--check-config` and
    /// each reload pass `crate::pool::rules::param_problems`).
    pub fn load_checked(
        file: Option<&Path>,
        overrides: &Overrides,
        check: PoolCheck,
    ) -> Result<Self, ConfigError> {
        Self::load_inner(file, Env::prefixed(envvars::PREFIX), overrides, Some(check))
    }

    /// [`ControlPlaneConfig::load`] with the environment given, for tests.
    pub fn load_from(
        file: Option<&Path>,
        env: Env,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        Self::load_inner(file, env, overrides, None)
    }

    fn load_inner(
        file: Option<&Path>,
        env: Env,
        overrides: &Overrides,
        check: Option<PoolCheck>,
    ) -> Result<Self, ConfigError> {
        // Reading a FIFO (or a device) would wait for ever: the start, `--check-config` and
        // every reload would hang, and a stop with them. Only a regular file is read.
        if let Some(f) = file {
            if let Ok(m) = std::fs::metadata(f) {
                // Bounded by this, not by the largest file someone saves (a 300 MB file
                // took 300 MB more for seconds at each reload).
                if m.is_file() && m.len() > MAX_CONFIG_BYTES {
                    return Err(ConfigError::Invalid {
                        file: Some(f.to_path_buf()),
                        problems: vec![format!(
                            "{}: {} bytes, more than the {} a config file may have",
                            f.display(),
                            m.len(),
                            MAX_CONFIG_BYTES
                        )],
                    });
                }
                if !m.is_file() {
                    return Err(ConfigError::Invalid {
                        file: Some(f.to_path_buf()),
                        problems: vec![format!(
                            "{}: not a regular file (a folder, FIFO or device is not read)",
                            f.display()
                        )],
                    });
                }
            }
        }
        let build = |p: &Pruner| {
            let mut fig = Figment::from(gpuwarden_configfile::defaults(
                &ControlPlaneConfig::default(),
            ));
            if let Some(f) = file {
                fig = fig.merge(p.wrap(Toml::file_exact(f)));
            }
            // GPUWARDEN_<SECTION>__<KEY> variables of the control plane's; the agent's and
            // the tokens (no `__`, read by `serve` itself) are not its configuration.
            let env = env
                .clone()
                .filter(|k| envvars::is_own(k.as_str(), &CONTROL_PLANE, &AGENT))
                .split("__");
            fig = fig.merge(p.wrap(env));
            if let Some(l) = &overrides.listen {
                fig = fig.merge(Serialized::default("server.listen", l));
            }
            if let Some(d) = &overrides.database {
                fig = fig.merge(Serialized::default("database.url", d));
            }
            fig
        };
        let out = extract_all::<ControlPlaneConfig>(build);
        let abs = file.map(|f| std::path::absolute(f).unwrap_or_else(|_| f.to_path_buf()));
        let mut problems: Vec<String> = out
            .problems
            .iter()
            .map(|p| autoscaler_problem(p, &build).unwrap_or_else(|| p.to_string()))
            .collect();
        if let Some(cfg) = &out.value {
            let mut bad = match cfg.validate(file) {
                Err(ConfigError::Invalid { problems, .. }) => problems,
                Ok(()) => Vec::new(),
            };
            if let Some(check) = check {
                bad.extend(cfg.pool_check_problems(check));
            }
            if !bad.is_empty() {
                let fig = build(&Pruner::default());
                // A missing key holds a placeholder; it is reported once, as missing.
                for p in bad.into_iter().filter(|p| !out.filled.contains(&key_of(p))) {
                    let source = locate(&fig, &key_of(&p))
                        .or_else(|| abs.as_ref().map(|f| f.display().to_string()))
                        .unwrap_or_else(|| "configuration".into());
                    problems.push(format!("{source}: {p}"));
                }
            }
        }
        match out.value {
            Some(mut cfg) if problems.is_empty() => {
                cfg.file = abs;
                cfg.overrides = overrides.clone();
                cfg.warnings = cfg.apply_pool_remediation();
                Ok(cfg)
            }
            _ => Err(ConfigError::Invalid {
                file: abs,
                problems,
            }),
        }
    }
}

/// A problem figment reports at a pool's autoscaler as a whole (`pools.0.autoscaler: unknown
/// value "median"`: the autoscaler is tagged by `type`, so the path inside is lost), told
/// again with the path to the field (`pools.0.autoscaler.mode`); `None` for any other.
fn autoscaler_problem(
    p: &gpuwarden_configfile::Problem,
    build: &impl Fn(&Pruner) -> Figment,
) -> Option<String> {
    let rest = p.key.strip_prefix("pools.")?;
    let (index, tail) = rest.split_once('.')?;
    if tail != "autoscaler" {
        return None;
    }
    let pools: serde_json::Value = build(&Pruner::default()).extract_inner("pools").ok()?;
    let raw = pools.get(index.parse::<usize>().ok()?)?.get("autoscaler")?;
    let found = crate::model::pool::autoscaler_error(raw, "autoscaler")?;
    Some(format!("{}: pools.{index}.{found}", p.source))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail returns its own large error
mod tests {
    use super::*;

    /// Issue: one prefix for two programs. The agent's variables in the control plane's
    /// environment are ignored; a misspelt key of its own still fails, naming the variable.
    #[test]
    fn the_agents_variables_are_ignored_and_a_typo_of_its_own_fails() {
        figment::Jail::expect_with(|jail| {
            for (k, v) in [
                ("GPUWARDEN_KMSG__PATH", "/dev/kmsg"),
                ("GPUWARDEN_NODE__ID", "gpu-01"),
                ("GPUWARDEN_CONTROL_PLANE__URL", "http://cp:8410"),
                ("GPUWARDEN_GPU__BACKEND", "fake"),
                ("GPUWARDEN_COMMANDS__DRAIN_POLL", "1s"),
                ("GPUWARDEN_BOOTSTRAP_TOKEN", "bootstrap-token-0123456789"),
                ("GPUWARDEN_SCRAPE__INTERVAL", "20s"),
            ] {
                jail.set_env(k, v);
            }
            let c =
                ControlPlaneConfig::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(c.scrape.interval, std::time::Duration::from_secs(20));
            jail.set_env("GPUWARDEN_SCRAPE__INTERVALL", "5s");
            jail.set_env("GPUWARDEN_COMMANDS__TIMEOT", "5s");
            let e = ControlPlaneConfig::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            for var in ["GPUWARDEN_SCRAPE__INTERVALL", "GPUWARDEN_COMMANDS__TIMEOT"] {
                assert!(e.contains(&format!("environment variable {var}: ")), "{e}");
            }
            assert!(e.contains("2 problems") && !e.contains("KMSG"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn validation_messages_name_their_key() {
        assert_eq!(
            key_of("server.listen: \"x\" is not an address"),
            "server.listen"
        );
        assert_eq!(
            key_of("static_targets[1].name: \"a\" appears twice"),
            "static_targets.1.name"
        );
    }
}
