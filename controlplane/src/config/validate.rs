//! [`ControlPlaneConfig::validate`]: every value of a loaded configuration checked, every
//! problem listed with its key. The rules for names, labels, URLs and tokens are
//! [`crate::validate`]'s, shared with the REST API.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{ConfigError, ControlPlaneConfig};

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
        if !pg && crate::validate::sqlite_path(url).is_none() {
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
        if self.database.listing_cache_bytes > 1 << 30 {
            p.push(format!(
                "database.listing_cache_bytes: {} is more than 1073741824 (1 GiB)",
                self.database.listing_cache_bytes
            ));
        }
        if self.database.flush_interval < Duration::from_secs(1) {
            p.push("database.flush_interval: must be at least 1s".into());
        }
        if self.database.observation_write_interval < Duration::from_secs(1) {
            p.push("database.observation_write_interval: must be at least 1s".into());
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
        if !self.auth.api_token_refresh.is_zero()
            && self.auth.api_token_refresh < Duration::from_millis(100)
        {
            p.push("auth.api_token_refresh: must be 0s (only at start) or at least 100ms".into());
        }
        if self.auth.join_token_ttl < Duration::from_secs(60) {
            p.push("auth.join_token_ttl: must be at least 1m".into());
        }
        let s = &self.scrape;
        if s.interval < Duration::from_secs(1) {
            p.push("scrape.interval: must be at least 1s".into());
        }
        // Unset, the timeout follows the interval (whose own problem is reported above).
        if let Some(t) = s.timeout.filter(|t| t.is_zero() || *t > s.interval) {
            p.push(format!(
                "scrape.timeout: {} must be above 0 and at most scrape.interval ({})",
                humantime::format_duration(t),
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
        if self.retention.instances < Duration::from_secs(60) {
            p.push("retention.instances: must be at least 1m".into());
        }
        if !(1..=10_000).contains(&self.retention.pool_decisions) {
            p.push(format!(
                "retention.pool_decisions: {} is not between 1 and 10000",
                self.retention.pool_decisions
            ));
        }
        p.extend(super::pools::problems(&self.pools));
        p.extend(super::remediation::problems(
            &self.remediation,
            &self.commands,
            &self.webhooks,
        ));
        p.extend(self.pool_manager.problems());
        p.extend(self.console.problems());
        p.extend(self.plugin_store.problems());
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                file: file.map(Path::to_path_buf),
                problems: p,
            })
        }
    }
}
