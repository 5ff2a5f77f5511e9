//! Configuration: precedence (file < environment < flags), unknown keys and bad values name
//! the key and the file, the shipped example is valid and documents every key, and a failed
//! reload shows. `--check-config` is in `config_check`, the environment filter (the control
//! plane's variables) in `config_env`.

use std::path::Path;
use std::time::Duration;

use figment::Jail;
use gpuwarden_agent::config::{AgentConfig, BackendKind, ConfigError, Overrides};

pub(crate) fn load(file: Option<&str>, o: &Overrides) -> Result<AgentConfig, ConfigError> {
    AgentConfig::load(file.map(Path::new), o)
}

#[test]
fn file_then_environment_then_flags() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "agent.toml",
            "[server]\nlisten = \"127.0.0.1:1000\"\n[collector]\ninterval = \"2s\"\n[gpu]\nfake_count = 3\n",
        )?;
        let c = load(Some("agent.toml"), &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(c.server.listen, "127.0.0.1:1000");
        assert_eq!(c.collector.interval, Duration::from_secs(2));

        jail.set_env("GPUWARDEN_SERVER__LISTEN", "127.0.0.1:2000");
        jail.set_env("GPUWARDEN_COLLECTOR__INTERVAL", "750ms");
        // Variables that are not config sections (tokens) are not config keys.
        jail.set_env("GPUWARDEN_BOOTSTRAP_TOKEN", "secret");
        let c = load(Some("agent.toml"), &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(c.server.listen, "127.0.0.1:2000");
        assert_eq!(c.collector.interval, Duration::from_millis(750));

        let flags = Overrides {
            listen: Some("127.0.0.1:3000".into()),
            fake_gpus: Some(5),
            ..Overrides::default()
        };
        let c = load(Some("agent.toml"), &flags).map_err(|e| e.to_string())?;
        assert_eq!(c.server.listen, "127.0.0.1:3000");
        assert_eq!(c.gpu.backend, BackendKind::Fake);
        assert_eq!(c.gpu.fake_count, 5);
        Ok(())
    });
}

#[test]
fn defaults_need_no_file() {
    Jail::expect_with(|_| {
        let c = load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(c.server.listen, "0.0.0.0:9410");
        assert_eq!(c.collector.interval, Duration::from_secs(5));
        assert_eq!(c.gpu.backend, BackendKind::Nvml);
        assert!(!c.metrics.dcgm_compat);
        Ok(())
    });
}

#[test]
fn unknown_key_names_the_key_and_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file("agent.toml", "[collector]\nintervall = \"5s\"\n")?;
        let e = load(Some("agent.toml"), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("intervall"), "{e}");
        assert!(e.contains("agent.toml"), "{e}");
        Ok(())
    });
}

#[test]
fn unknown_section_is_an_error() {
    Jail::expect_with(|jail| {
        jail.create_file("agent.toml", "[metrix]\ndcgm_compat = true\n")?;
        let e = load(Some("agent.toml"), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrix"), "{e}");
        Ok(())
    });
}

#[test]
fn bad_value_names_the_key_and_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file("agent.toml", "[collector]\ninterval = \"fast\"\n")?;
        let e = load(Some("agent.toml"), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("collector.interval"), "{e}");
        assert!(e.contains("agent.toml"), "{e}");

        jail.create_file("agent.toml", "[gpu]\nbackend = \"cuda\"\n")?;
        let e = load(Some("agent.toml"), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("gpu.backend") && e.contains("cuda"), "{e}");
        Ok(())
    });
}

#[test]
fn bad_environment_value_names_the_key() {
    Jail::expect_with(|jail| {
        jail.set_env("GPUWARDEN_SERVER__WORKERS", "many");
        let e = load(None, &Overrides::default()).unwrap_err().to_string();
        assert!(e.to_lowercase().contains("server.workers"), "{e}");
        assert!(e.contains("GPUWARDEN_"), "{e}");
        Ok(())
    });
}

#[test]
fn every_invalid_value_is_listed_at_once() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "agent.toml",
            "[server]\nlisten = \"nowhere\"\n[collector]\ninterval = \"1ms\"\n[node]\nstate_dir = \"state\"\n[node.labels]\n\"bad-name\" = \"x\"\ngpu = \"7\"\n[events]\ntemperature_warning_celsius = 95.0\n",
        )?;
        let e = load(Some("agent.toml"), &Overrides::default())
            .unwrap_err()
            .to_string();
        for key in [
            "server.listen",
            "collector.interval",
            "node.state_dir: \"state\" is not an absolute path",
            "node.labels.bad-name",
            "node.labels.gpu",
            "temperature_warning_celsius",
        ] {
            assert!(e.contains(key), "{key} missing from: {e}");
        }
        assert!(e.contains("agent.toml"), "{e}");
        Ok(())
    });
}

#[test]
fn shipped_example_is_valid_and_runs_as_is() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.toml");
    let c = AgentConfig::load(Some(&path), &Overrides::default()).expect("config/agent.toml");
    assert_eq!(c.gpu.backend, BackendKind::Fake);
    assert_eq!(c.node.labels.get("rack").map(String::as_str), Some("r01"));
}

#[test]
fn the_slurm_and_kubernetes_hook_examples_load_with_their_placeholders() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/hooks");
    for (file, cordon0, until) in [
        (
            "slurm.toml",
            "scontrol",
            gpuwarden_agent::config::DrainUntil::Idle,
        ),
        (
            "kubernetes.toml",
            "kubectl",
            gpuwarden_agent::config::DrainUntil::Hook,
        ),
    ] {
        let c = AgentConfig::load(Some(&dir.join(file)), &Overrides::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(c.commands.cordon[0], cordon0, "{file}");
        assert!(
            c.commands.cordon.iter().any(|a| a.contains("{node}")),
            "{file}"
        );
        assert!(!c.commands.terminate.is_empty(), "{file}");
        assert_eq!(c.commands.drain_until, until, "{file}");
    }
}

#[test]
fn a_hook_without_a_program_is_an_error_that_names_its_key() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "a.toml",
            "[commands]\ncordon = [\"\", \"x\"]\ndrain_poll = \"1ms\"\n",
        )?;
        let e = AgentConfig::load(Some(Path::new("a.toml")), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("commands.cordon: the first element must be the program"),
            "{e}"
        );
        assert!(e.contains("commands.drain_poll"), "{e}");
        Ok(())
    });
}

/// Hardening follow-up: `config/agent.toml` claimed to document every key but had no
/// `[control_plane]` section. Every key of the configuration is in the example, set or
/// shown in a comment.
#[test]
fn the_example_file_documents_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let missing = gpuwarden_configfile::undocumented_keys(&AgentConfig::default(), &text);
    assert!(missing.is_empty(), "config/agent.toml lacks {missing:?}");
}

/// Issue: a failed config reload appeared only in the log. It shows in
/// `gpuwarden_agent_config_reload_failures_total`, `..._last_reload_success` and the
/// `config_reload` field of `/healthz`, with the error; the running configuration stays.
#[test]
fn a_failed_config_reload_shows_in_metrics_and_healthz() {
    let dir = crate::util::Scratch::new("reload");
    let good = "[gpu]\nbackend = \"fake\"\nfake_count = 1\n[collector]\ninterval = \"200ms\"\n[plugin]\nreload_interval = \"100ms\"\n";
    let cfg = dir.write("agent.toml", good);
    let agent = crate::util::Agent::start(&["--config", cfg.to_str().unwrap()], &[]);
    let m = agent.metrics();
    assert_eq!(
        m.value("gpuwarden_agent_config_reload_failures_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        m.value("gpuwarden_agent_config_last_reload_success", &[]),
        Some(1.0)
    );

    std::fs::write(&cfg, format!("{good}[collector2]\nx = 1\n")).unwrap();
    agent.wait_metrics("the refused reload", |m| {
        m.value("gpuwarden_agent_config_reload_failures_total", &[]) == Some(1.0)
            && m.value("gpuwarden_agent_config_last_reload_success", &[]) == Some(0.0)
    });
    let (st, body) = agent.get("/healthz");
    assert_eq!(st, 200);
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["config_reload"]["ok"], false, "{h}");
    assert!(
        h["config_reload"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("collector2"),
        "{h}"
    );

    std::fs::write(&cfg, format!("{good}# fixed\n")).unwrap();
    agent.wait_metrics("the applied reload", |m| {
        m.value("gpuwarden_agent_config_last_reload_success", &[]) == Some(1.0)
    });
}
