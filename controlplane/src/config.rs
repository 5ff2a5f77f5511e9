//! Control-plane configuration: TOML file < `GPUWARDEN_<SECTION>__<KEY>` environment < flags.
//!
//! figment reads the raw [`ControlPlaneConfig`]; [`ControlPlaneConfig::validate`] checks every
//! value. [`ControlPlaneConfig::load`] reports every problem of both kinds at once (unknown
//! keys, wrong types, bad values), each with its key and the file's absolute path or the
//! environment variable it came from (see `gpuwarden-configfile`).
//! `config/controlplane.toml` documents every key.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod load;
mod remediation;
pub use load::{ConfigError, Overrides};
pub use remediation::{
    CommandsConfig, Plan, PoolRemediation, RemediationConfig, WebhookConfig, NOTIFICATION_KINDS,
};

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8410".into(),
            workers: 2,
            external_url: String::new(),
            data_dir: PathBuf::from("."),
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
    /// How often the latest observations are written (in one batch).
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://gpuwarden.db".into(),
            pool_size: 8,
            busy_timeout: Duration::from_secs(5),
            flush_interval: Duration::from_secs(30),
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
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            admin_tokens: Vec::new(),
            bootstrap_tokens: Vec::new(),
            join_token_ttl: Duration::from_secs(24 * 3600),
            node_token_ttl: Duration::ZERO,
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
    /// Longest a scrape may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
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

impl Default for ScrapeConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
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
    pub fn policy(&self) -> Result<crate::policy::Policy, String> {
        if self.policy_file.as_os_str().is_empty() {
            return Ok(crate::policy::Policy::default_policy());
        }
        let text = std::fs::read_to_string(&self.policy_file)
            .map_err(|e| format!("health.policy_file {}: {e}", self.policy_file.display()))?;
        crate::policy::Policy::parse(&text).map_err(|errs| {
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
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            events: Duration::from_secs(30 * 86_400),
            audit: Duration::from_secs(365 * 86_400),
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

/// Whether `s` is an agent base URL ([`crate::validate::base_url`]: `http(s)://host[:port]`,
/// no credentials).
pub fn valid_base_url(s: &str) -> bool {
    crate::validate::base_url(s).is_ok()
}

impl ControlPlaneConfig {
    /// Checks every value; lists all problems.
    pub fn validate(&self, file: Option<&Path>) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        if self.server.listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "server.listen: {:?} is not an address like 127.0.0.1:8410",
                self.server.listen
            ));
        }
        if !(1..=64).contains(&self.server.workers) {
            p.push(format!(
                "server.workers: {} is not between 1 and 64",
                self.server.workers
            ));
        }
        if !self.server.external_url.is_empty() {
            if let Err(e) = crate::validate::base_url(&self.server.external_url) {
                p.push(format!("server.external_url: {e}"));
            }
        }
        let url = &self.database.url;
        let pg = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !pg && crate::store::sqlite_path(url).is_none() {
            p.push(format!(
                "database.url: {url:?} is neither sqlite://PATH nor postgres://…"
            ));
        }
        if !(1..=256).contains(&self.database.pool_size) {
            p.push(format!(
                "database.pool_size: {} is not between 1 and 256",
                self.database.pool_size
            ));
        }
        if self.database.flush_interval < Duration::from_secs(1) {
            p.push("database.flush_interval: must be at least 1s".into());
        }
        for (key, tokens) in [
            ("auth.admin_tokens", &self.auth.admin_tokens),
            ("auth.bootstrap_tokens", &self.auth.bootstrap_tokens),
        ] {
            for (i, t) in tokens.iter().enumerate() {
                if let Err(e) = crate::validate::token(t) {
                    p.push(format!("{key}[{i}]: {e}"));
                }
            }
        }
        if self.auth.join_token_ttl < Duration::from_secs(60) {
            p.push("auth.join_token_ttl: must be at least 1m".into());
        }
        let s = &self.scrape;
        if s.interval < Duration::from_secs(1) {
            p.push("scrape.interval: must be at least 1s".into());
        }
        if s.timeout.is_zero() || s.timeout > s.interval {
            p.push(format!(
                "scrape.timeout: {} must be above 0 and at most scrape.interval ({})",
                humantime::format_duration(s.timeout),
                humantime::format_duration(s.interval)
            ));
        }
        if s.body_limit_bytes < 1024 {
            p.push("scrape.body_limit_bytes: must be at least 1024".into());
        }
        if u64::try_from(s.body_retain_bytes).unwrap_or(u64::MAX) > s.body_limit_bytes {
            p.push(format!(
                "scrape.body_retain_bytes: {} is above scrape.body_limit_bytes ({})",
                s.body_retain_bytes, s.body_limit_bytes
            ));
        }
        if s.sample_limit == 0 {
            p.push("scrape.sample_limit: must be at least 1".into());
        }
        if !(1..=4096).contains(&s.concurrency) {
            p.push(format!(
                "scrape.concurrency: {} is not between 1 and 4096",
                s.concurrency
            ));
        }
        if !(1..=256).contains(&s.notice_concurrency) {
            p.push(format!(
                "scrape.notice_concurrency: {} is not between 1 and 256",
                s.notice_concurrency
            ));
        }
        if let Err(e) = self.health.policy() {
            p.extend(e.lines().map(str::to_string));
        }
        if self.health.degraded_clear_after.is_zero() {
            p.push("health.degraded_clear_after: must be above 0".into());
        }
        if s.offline_after == 0 {
            p.push("scrape.offline_after: must be at least 1 interval".into());
        }
        let mut names = HashSet::new();
        for (i, t) in self.static_targets.iter().enumerate() {
            if let Err(e) = crate::validate::name(&t.name) {
                p.push(format!("static_targets[{i}].name: {e}"));
            }
            if let Err(e) = crate::validate::name(&t.pool) {
                p.push(format!("static_targets[{i}].pool: {e}"));
            }
            if let Err(e) = crate::validate::labels(&t.labels) {
                p.push(format!("static_targets[{i}].labels: {e}"));
            }
            if !names.insert(&t.name) {
                p.push(format!(
                    "static_targets[{i}].name: {:?} appears twice",
                    t.name
                ));
            }
            if let Err(e) = crate::validate::base_url(&t.address) {
                p.push(format!("static_targets[{i}].address: {e}"));
            }
        }
        p.extend(remediation::problems(
            &self.remediation,
            &self.commands,
            &self.webhooks,
        ));
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                file: file.map(Path::to_path_buf),
                problems: p,
            })
        }
    }

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
mod tests {
    use super::*;
    use figment::providers::Env;

    #[test]
    fn no_config_means_sqlite_on_localhost() {
        let c = ControlPlaneConfig::default();
        c.validate(None).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8410");
        assert_eq!(c.database.url, "sqlite://gpuwarden.db");
        assert_eq!(c.scrape.interval, Duration::from_secs(15));
        assert_eq!(c.external_url(), "http://127.0.0.1:8410");
    }

    #[test]
    fn every_bad_value_is_listed_with_its_key() {
        let mut c = ControlPlaneConfig::default();
        c.server.listen = "nowhere".into();
        c.database.url = "mysql://x".into();
        c.scrape.timeout = Duration::from_secs(60);
        c.auth.admin_tokens = vec!["short".into()];
        c.static_targets = vec![
            StaticTarget {
                name: "a".into(),
                address: "10.0.0.1:9410".into(),
                pool: "default".into(),
                labels: BTreeMap::new(),
            },
            StaticTarget {
                name: "a".into(),
                address: "http://10.0.0.2:9410".into(),
                pool: "default".into(),
                labels: BTreeMap::new(),
            },
        ];
        let e = c
            .validate(Some(Path::new("cp.toml")))
            .unwrap_err()
            .to_string();
        for key in [
            "in cp.toml",
            "server.listen",
            "database.url",
            "scrape.timeout",
            "auth.admin_tokens[0]",
            "static_targets[0].address",
            "static_targets[1].name: \"a\" appears twice",
        ] {
            assert!(e.contains(key), "{key} missing from:\n{e}");
        }
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("cp.toml", "[scrape]\nintervall = \"5s\"\n")?;
            let e = ControlPlaneConfig::load_from(
                Some(Path::new("cp.toml")),
                Env::prefixed("GPUWARDEN_TEST_NONE_"),
                &Overrides::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("intervall") && e.contains("cp.toml"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn environment_and_flags_override_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("cp.toml", "[scrape]\ninterval = \"30s\"\n")?;
            jail.set_env("GPUWARDEN_SCRAPE__INTERVAL", "20s");
            let c = ControlPlaneConfig::load_from(
                Some(Path::new("cp.toml")),
                Env::prefixed("GPUWARDEN_"),
                &Overrides {
                    listen: Some("127.0.0.1:9999".into()),
                    database: Some("postgres://x@localhost/db".into()),
                },
            )
            .unwrap();
            assert_eq!(c.scrape.interval, Duration::from_secs(20));
            assert_eq!(c.server.listen, "127.0.0.1:9999");
            assert_eq!(c.database.url, "postgres://x@localhost/db");
            Ok(())
        });
    }
}
