//! Control-plane configuration: TOML file < `GPUWARDEN_<SECTION>__<KEY>` environment < flags.
//!
//! figment reads the raw [`ControlPlaneConfig`]; [`ControlPlaneConfig::validate`] checks every
//! value. [`ControlPlaneConfig::load`] reports every problem of both kinds at once (unknown
//! keys, wrong types, bad values), each with its key and the file's absolute path or the
//! environment variable it came from (see `gpuwarden-configfile`).
//! `config/controlplane.toml` documents every key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod console;
mod load;
mod plugin_store;
mod pool_manager;
mod pools;
mod remediation;
mod validate;
pub use console::ConsoleConfig;
pub use load::{ConfigError, PoolCheck};
pub use plugin_store::PluginStoreConfig;
pub use pool_manager::PoolManagerConfig;
pub use remediation::{
    CommandsConfig, Plan, PoolRemediation, RemediationConfig, WebhookConfig, NOTIFICATION_KINDS,
};

/// Values given on the command line, which win over file and environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<String>,
    /// `--database`
    pub database: Option<String>,
}

/// The whole control-plane configuration. Every section and key is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ControlPlaneConfig {
    /// The HTTP server.
    pub server: ServerConfig,
    /// The database.
    pub database: DatabaseConfig,
    /// Tokens.
    pub auth: AuthConfig,
    /// Pulling the agents' metrics.
    pub scrape: ScrapeConfig,
    /// How long events and audit entries are kept.
    pub retention: RetentionConfig,
    /// Health policies and the node health state machine.
    pub health: HealthConfig,
    /// Agents that cannot reach the control plane, scraped anyway (`[[static_targets]]`).
    pub static_targets: Vec<StaticTarget>,
    /// What to do about unhealthy nodes.
    pub remediation: RemediationConfig,
    /// Delivering commands to the agents.
    pub commands: CommandsConfig,
    /// Notifications (`[[webhooks]]`).
    pub webhooks: Vec<WebhookConfig>,
    /// Pools declared here (`[[pools]]`, docs/POOLS.md): applied to the database at start,
    /// read-only through the API.
    pub pools: Vec<crate::model::pool::PoolSpec>,
    /// The file this was loaded from (absolute), set by [`ControlPlaneConfig::load`]: the
    /// source named by the config pools.
    #[serde(skip)]
    pub file: Option<PathBuf>,
    /// What is accepted but should change (a `[remediation.pools.NAME]` overridden by the
    /// pool's own `remediation`), one line each; set by [`ControlPlaneConfig::load`].
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// The command-line values it was loaded with, set by [`ControlPlaneConfig::load`]: a
    /// reload of the file applies them again.
    #[serde(skip)]
    pub overrides: Overrides,
    /// The pool manager and the instance reconciler.
    pub pool_manager: PoolManagerConfig,
    /// The web console at `/ui/`.
    pub console: ConsoleConfig,
    /// Plugin components distributed from the control plane.
    pub plugin_store: PluginStoreConfig,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the REST API and `/metrics`.
    pub listen: String,
    /// actix worker threads.
    pub workers: usize,
    /// The URL agents use to reach this control plane, written into install snippets;
    /// empty means `http://` + `listen`.
    pub external_url: String,
    /// Folder for files the control plane writes (the generated admin token).
    pub data_dir: PathBuf,
    /// How often the config file is looked at for edits: an edit reloads its `[[pools]]`
    /// (as SIGHUP does; docs/POOLS.md, "Config"). `0s`: on SIGHUP only.
    #[serde(with = "humantime_serde")]
    pub config_reload_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8410".into(),
            workers: 2,
            external_url: String::new(),
            data_dir: PathBuf::from("."),
            config_reload_interval: Duration::from_secs(5),
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (created if missing) or `postgres://user:pass@host/db`.
    pub url: String,
    /// Pooled connections.
    pub pool_size: u32,
    /// How long a SQLite writer waits for the lock.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// How often the nodes' `last_seen` times, and the observations due (see
    /// `observation_write_interval`), are written (in one batch).
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// How often a node's stored latest observation (its per-GPU values, read after a
    /// restart until the node's first scrape) is written again; the API and the judge read
    /// the one in memory. A node whose GPUs changed is written at the next flush whatever
    /// this says, and every observation at a clean stop.
    #[serde(with = "humantime_serde")]
    pub observation_write_interval: Duration,
    /// Bytes of rendered `GET /v1/nodes` pages kept while the SQLite file is unchanged
    /// (0: none).
    pub listing_cache_bytes: usize,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://gpuwarden.db".into(),
            pool_size: 8,
            busy_timeout: Duration::from_secs(5),
            flush_interval: Duration::from_secs(30),
            observation_write_interval: Duration::from_secs(300),
            listing_cache_bytes: 16 << 20,
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Admin bearer tokens: the token itself, or `sha256:<hex>` of it. With none here and
    /// none in `GPUWARDEN_ADMIN_TOKEN`, one is generated at first start.
    pub admin_tokens: Vec<String>,
    /// Tokens agents may self-register with (also `GPUWARDEN_BOOTSTRAP_TOKEN`). With none,
    /// only pre-created nodes can join.
    pub bootstrap_tokens: Vec<String>,
    /// Lifetime of a join token from `POST /v1/nodes/{id}/token`.
    #[serde(with = "humantime_serde")]
    pub join_token_ttl: Duration,
    /// Lifetime of the node token an agent gets when it registers; 0 means no expiry (it
    /// rotates at every registration).
    #[serde(with = "humantime_serde")]
    pub node_token_ttl: Duration,
    /// How often the tokens created through the API (`POST /v1/tokens`) are read again from
    /// the database, so that one created or revoked on another control plane over the same
    /// database is accepted or refused here within this time (on this one: at once). `0s`:
    /// only at start.
    #[serde(with = "humantime_serde")]
    pub api_token_refresh: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            admin_tokens: Vec::new(),
            bootstrap_tokens: Vec::new(),
            join_token_ttl: Duration::from_secs(24 * 3600),
            node_token_ttl: Duration::ZERO,
            api_token_refresh: Duration::from_secs(5),
        }
    }
}

/// `[scrape]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfig {
    /// How often each agent is scraped.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Longest a scrape may take; unset, 10 s or the interval if that is shorter (as
    /// Prometheus's `scrape_timeout`). Read it through [`ScrapeConfig::timeout`].
    #[serde(default, with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    /// Largest body accepted, after decompression.
    pub body_limit_bytes: u64,
    /// Capacity each scrape worker's body buffer keeps between scrapes (at most
    /// `body_limit_bytes`); a larger body's buffer is given back once it is parsed. Memory
    /// for bodies: `concurrency × body_retain_bytes` at rest, `concurrency ×
    /// body_limit_bytes` at worst.
    pub body_retain_bytes: usize,
    /// Most samples accepted in one body.
    pub sample_limit: usize,
    /// Scrapes in flight at once.
    pub concurrency: usize,
    /// Event reads in flight at once for urgent-event notices (`POST /v1/nodes/{id}/notify`),
    /// beside the scrapes; notices for many nodes at once wait their turn.
    pub notice_concurrency: usize,
    /// Missed intervals before a node is `offline`.
    pub offline_after: u32,
    /// Name of this control-plane replica; it shifts every target's phase. Empty means the
    /// host name.
    pub replica: String,
}

/// The scrape timeout when `scrape.timeout` is not set.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

impl ScrapeConfig {
    /// The scrape timeout: `timeout` when set, else [`DEFAULT_SCRAPE_TIMEOUT`] or the
    /// interval if that is shorter.
    pub fn timeout(&self) -> Duration {
        self.timeout
            .unwrap_or(DEFAULT_SCRAPE_TIMEOUT.min(self.interval))
    }
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            timeout: None,
            body_limit_bytes: 16 << 20,
            body_retain_bytes: 1 << 20,
            sample_limit: 50_000,
            concurrency: 64,
            notice_concurrency: 8,
            offline_after: 3,
            replica: String::new(),
        }
    }
}

/// `[health]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// The policy file (TOML `[[rule]]`s); empty means the built-in default policy
    /// (`config/policies.toml`).
    pub policy_file: PathBuf,
    /// How long a degraded condition must have stopped before the node is healthy again.
    #[serde(with = "humantime_serde")]
    pub degraded_clear_after: Duration,
    /// How often the policy file is looked at for edits (hot reload); 0 turns reload off.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            policy_file: PathBuf::new(),
            degraded_clear_after: Duration::from_secs(300),
            reload_interval: Duration::from_secs(2),
        }
    }
}

impl HealthConfig {
    /// The policy this config names, compiled; every problem of the file otherwise, one per
    /// line (`health.policy_file: /abs/file:LINE:COLUMN: rule "NAME": what is wrong`).
    pub fn policy(&self) -> Result<crate::judge::policy::Policy, String> {
        if self.policy_file.as_os_str().is_empty() {
            return Ok(crate::judge::policy::Policy::default_policy());
        }
        let text = std::fs::read_to_string(&self.policy_file)
            .map_err(|e| format!("health.policy_file {}: {e}", self.policy_file.display()))?;
        crate::judge::policy::Policy::parse(&text).map_err(|errs| {
            // One line per problem, `FILE:LINE:COLUMN: …` with the file's absolute path.
            let file =
                std::path::absolute(&self.policy_file).unwrap_or_else(|_| self.policy_file.clone());
            let lines: Vec<String> = errs
                .iter()
                .map(|e| {
                    let rule = e
                        .rule
                        .as_ref()
                        .map(|r| format!("rule {r:?}: "))
                        .unwrap_or_default();
                    format!(
                        "health.policy_file: {}:{}:{}: {rule}{}",
                        file.display(),
                        e.line,
                        e.column,
                        e.message
                    )
                })
                .collect();
            lines.join("\n")
        })
    }
}

/// `[retention]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// How long health events are kept.
    #[serde(with = "humantime_serde")]
    pub events: Duration,
    /// How long audit entries are kept.
    #[serde(with = "humantime_serde")]
    pub audit: Duration,
    /// How long the records of terminated instances are kept (and of failed ones the
    /// provider never created).
    #[serde(with = "humantime_serde")]
    pub instances: Duration,
    /// How many of each pool's last decisions are kept (`GET /v1/pools/{name}`).
    pub pool_decisions: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            events: Duration::from_secs(30 * 86_400),
            audit: Duration::from_secs(365 * 86_400),
            instances: Duration::from_secs(7 * 86_400),
            pool_decisions: 50,
        }
    }
}

/// `[[static_targets]]`: an agent the control plane scrapes without a registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTarget {
    /// Node name.
    pub name: String,
    /// Agent base URL, e.g. `http://10.0.0.5:9410`.
    pub address: String,
    /// Pool.
    #[serde(default = "default_pool")]
    pub pool: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_pool() -> String {
    "default".into()
}

impl ControlPlaneConfig {
    /// The URL agents should use to reach this control plane.
    pub fn external_url(&self) -> String {
        if self.server.external_url.is_empty() {
            format!("http://{}", self.server.listen)
        } else {
            self.server.external_url.trim_end_matches('/').to_string()
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail returns its own large error
mod tests;
