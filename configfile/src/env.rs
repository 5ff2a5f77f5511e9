//! The `GPUWARDEN_<SECTION>__<KEY>` variables of each program.
//!
//! The two programs share one prefix (the documented contract), so an environment file
//! shared by both, or a control plane and an agent on one host, puts each program's
//! variables in the other's environment. Each program ignores the variables that belong to
//! the other one only: a section the other program has and it has not (`GPUWARDEN_SCRAPE__*`
//! in the agent, `GPUWARDEN_KMSG__*` in the control plane), or a key of a section both have
//! that only the other reads (`GPUWARDEN_SERVER__DATA_DIR` in the agent). A variable that
//! neither program knows is still an error in both, and so is a misspelt key of a program's
//! own section. `server.listen` and `server.workers` exist in both programs: a variable for
//! them applies to both (give each its own value with `--listen` or its config file).
//!
//! Variables without `__` (`GPUWARDEN_ADMIN_TOKEN`, `GPUWARDEN_BOOTSTRAP_TOKEN`,
//! `GPUWARDEN_SERVER`, `GPUWARDEN_CLI_CONFIG`) are not configuration and are never read here.
//!
//! The lists below are checked against each program's configuration structure by a test in
//! that program (`the_env_lists_match_the_config`), so they cannot drift.

/// The prefix of every configuration variable.
pub const PREFIX: &str = "GPUWARDEN_";

/// The agent's sections and, for sections the control plane has too, the agent's keys.
pub const AGENT: Schema = Schema {
    sections: &[
        "node",
        "server",
        "gpu",
        "collector",
        "metrics",
        "events",
        "kmsg",
        "plugin",
        "plugins",
        "control_plane",
        "commands",
        "workload",
    ],
    shared_keys: &[
        "server.listen",
        "server.workers",
        "commands.cordon",
        "commands.uncordon",
        "commands.drain",
        "commands.terminate",
        "commands.drain_until",
        "commands.drain_timeout",
        "commands.drain_poll",
        "commands.hook_timeout",
        "commands.diagnostic",
        "commands.state_file",
    ],
};

/// The control plane's sections and, for sections the agent has too, the control plane's
/// keys.
pub const CONTROL_PLANE: Schema = Schema {
    sections: &[
        "server",
        "database",
        "auth",
        "scrape",
        "retention",
        "health",
        "static_targets",
        "remediation",
        "commands",
        "webhooks",
        "pools",
        "pool_manager",
        "console",
        "plugin_store",
    ],
    shared_keys: &[
        "server.listen",
        "server.workers",
        "server.external_url",
        "server.data_dir",
        "server.config_reload_interval",
        "commands.concurrency",
        "commands.timeout",
        "commands.retry_max",
        "commands.poll_interval",
        "commands.expire_after",
    ],
};

/// The top of one program's configuration, as far as the environment filter needs it.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// Its sections (top-level keys).
    pub sections: &'static [&'static str],
    /// `section.key` for every key of the sections that both programs have.
    pub shared_keys: &'static [&'static str],
}

impl Schema {
    fn has_section(&self, s: &str) -> bool {
        self.sections.contains(&s)
    }

    fn has_key(&self, section: &str, key: &str) -> bool {
        self.shared_keys
            .iter()
            .any(|k| k.split_once('.') == Some((section, key)))
    }
}

/// Whether the variable `key` (its name after [`PREFIX`], any case) is configuration that
/// the program `own` reads, given that `other` is the other program: `true` for
/// `SECTION__KEY` variables unless they belong to `other` only.
pub fn is_own(key: &str, own: &Schema, other: &Schema) -> bool {
    let key = key.to_ascii_lowercase();
    let mut parts = key.split("__");
    let (Some(section), Some(first)) = (parts.next(), parts.next()) else {
        // No `__`: not configuration (tokens, the CLI's server and config file).
        return false;
    };
    if own.has_section(section) {
        let theirs = other.has_section(section)
            && other.has_key(section, first)
            && !own.has_key(section, first);
        return !theirs;
    }
    // A section only the other program has is its business; anything else is a typo.
    !other.has_section(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_program_ignores_the_others_variables_only() {
        for k in [
            "SCRAPE__INTERVAL",
            "DATABASE__URL",
            "SERVER__DATA_DIR",
            "COMMANDS__TIMEOUT",
        ] {
            assert!(!is_own(k, &AGENT, &CONTROL_PLANE), "{k}");
            assert!(is_own(k, &CONTROL_PLANE, &AGENT), "{k}");
        }
        for k in [
            "KMSG__PATH",
            "CONTROL_PLANE__URL",
            "COMMANDS__DRAIN_POLL",
            "NODE__ID",
        ] {
            assert!(is_own(k, &AGENT, &CONTROL_PLANE), "{k}");
            assert!(!is_own(k, &CONTROL_PLANE, &AGENT), "{k}");
        }
        // Typos stay errors in both: a key neither has, a section neither has.
        for k in ["SERVER__LISTN", "COMMANDS__DRAIN_POL", "SCRAPPE__INTERVAL"] {
            assert!(is_own(k, &AGENT, &CONTROL_PLANE), "{k}");
            assert!(is_own(k, &CONTROL_PLANE, &AGENT), "{k}");
        }
        // Shared keys apply to both; tokens are nobody's configuration.
        assert!(is_own("server__listen", &AGENT, &CONTROL_PLANE));
        assert!(is_own("server__listen", &CONTROL_PLANE, &AGENT));
        for k in ["ADMIN_TOKEN", "BOOTSTRAP_TOKEN", "SERVER", "CLI_CONFIG"] {
            assert!(!is_own(k, &AGENT, &CONTROL_PLANE), "{k}");
            assert!(!is_own(k, &CONTROL_PLANE, &AGENT), "{k}");
        }
    }
}
