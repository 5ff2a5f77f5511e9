//! The environment filter: the agent and the control plane share the `GPUWARDEN_` prefix,
//! so the agent ignores the control plane's variables and still fails on a typo of its own.

use std::time::Duration;

use figment::Jail;
use gpuwarden_agent::config::{AgentConfig, Overrides};

use crate::config::load;

/// Issue: the agent refused to start with the control plane's `GPUWARDEN_SCRAPE__*`
/// variables in its environment (one prefix, two programs). The control plane's variables
/// are ignored; a misspelt key of the agent's own sections still fails, naming the variable.
#[test]
fn the_control_planes_variables_are_ignored_and_a_typo_of_the_agents_own_fails() {
    Jail::expect_with(|jail| {
        for (k, v) in [
            ("GPUWARDEN_SCRAPE__INTERVAL", "5s"),
            (
                "GPUWARDEN_DATABASE__URL",
                "sqlite:///var/lib/gpuwarden/gw.db",
            ),
            ("GPUWARDEN_AUTH__ADMIN_TOKENS", "[\"x\"]"),
            (
                "GPUWARDEN_HEALTH__POLICY_FILE",
                "/etc/gpuwarden/policies.toml",
            ),
            ("GPUWARDEN_SERVER__DATA_DIR", "/var/lib/gpuwarden"),
            ("GPUWARDEN_SERVER__EXTERNAL_URL", "http://cp:8410"),
            ("GPUWARDEN_COMMANDS__TIMEOUT", "30s"),
            ("GPUWARDEN_ADMIN_TOKEN", "admin-token-0123456789abcdef"),
            ("GPUWARDEN_SERVER", "http://cp:8410"),
            ("GPUWARDEN_CLI_CONFIG", "/etc/gpuwarden/cli.toml"),
            ("GPUWARDEN_COLLECTOR__INTERVAL", "2s"),
        ] {
            jail.set_env(k, v);
        }
        let c = load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(
            c.collector.interval,
            Duration::from_secs(2),
            "its own still apply"
        );

        jail.set_env("GPUWARDEN_KMSG__PAHT", "/dev/kmsg");
        jail.set_env("GPUWARDEN_SERVER__LISTN", "127.0.0.1:1");
        let e = load(None, &Overrides::default()).unwrap_err().to_string();
        assert!(
            e.contains("environment variable GPUWARDEN_KMSG__PAHT: kmsg.paht: unknown key"),
            "{e}"
        );
        assert!(
            e.contains("environment variable GPUWARDEN_SERVER__LISTN: server.listn: unknown key"),
            "{e}"
        );
        assert!(!e.contains("SCRAPE"), "{e}");
        Ok(())
    });
}

/// The lists of the agent's sections and keys that the environment filter uses are the
/// agent's configuration, so the filter cannot drift from it.
#[test]
fn the_env_lists_match_the_config() {
    use gpuwarden_configfile::env::{AGENT, CONTROL_PLANE};
    let v = serde_json::to_value(AgentConfig::default()).unwrap();
    let obj = v.as_object().unwrap();
    let mut sections: Vec<&str> = obj.keys().map(String::as_str).collect();
    let mut listed = AGENT.sections.to_vec();
    sections.sort_unstable();
    listed.sort_unstable();
    assert_eq!(sections, listed);
    for s in AGENT
        .sections
        .iter()
        .filter(|s| CONTROL_PLANE.sections.contains(s))
    {
        let mut keys: Vec<String> = obj[*s]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| format!("{s}.{k}"))
            .collect();
        let mut listed: Vec<String> = AGENT
            .shared_keys
            .iter()
            .filter(|k| k.starts_with(&format!("{s}.")))
            .map(|k| k.to_string())
            .collect();
        keys.sort_unstable();
        listed.sort_unstable();
        assert_eq!(keys, listed, "section {s}");
    }
}

/// The agent starts with the control plane's variables in its environment (the binary, as
/// systemd or a shared environment file would run it).
#[test]
fn the_agent_starts_with_the_control_planes_variables_set() {
    let agent = crate::util::Agent::start(
        &["--fake-gpus", "1"],
        &[
            ("GPUWARDEN_SCRAPE__INTERVAL", "5s"),
            ("GPUWARDEN_DATABASE__URL", "sqlite://gw.db"),
            ("GPUWARDEN_SERVER__DATA_DIR", "/var/lib/gpuwarden"),
            ("GPUWARDEN_ADMIN_TOKEN", "admin-token-0123456789abcdef"),
        ],
    );
    assert_eq!(agent.get("/healthz").0, 200);
}
