//! Configuration: precedence (file < environment < flags), unknown keys and bad values name
//! the key and the file, and the shipped example is valid.

use std::path::Path;
use std::time::Duration;

use figment::Jail;
use gpuwarden_agent::config::{AgentConfig, BackendKind, ConfigError, Overrides};

fn load(file: Option<&str>, o: &Overrides) -> Result<AgentConfig, ConfigError> {
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

/// Runs `gpuwarden-agent ARGS` in `dir` with no `GPUWARDEN_*` variable of the test's own.
fn run_bin(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(crate::util::BIN);
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("GPUWARDEN_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run gpuwarden-agent")
}

/// Compares `actual` with the golden file `name` (`GOLDEN_BLESS=1` rewrites it).
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("GOLDEN_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(actual, want, "golden {name} differs");
}

/// Issue: `--check-config` stopped at the first unknown key or type error, with figment's
/// `default.` prefix, doubled backticks and the path as given. Golden: a file with four
/// problems reports all four, each with its key path and the file's absolute path; exit 2.
#[test]
fn check_config_reports_every_problem_by_key_and_absolute_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let out = run_bin(&dir, &["--check-config", "four-problems.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let abs = std::fs::canonicalize(&dir).unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&abs.display().to_string(), "{DIR}");
    golden("four-problems.stderr", &err);
    let problems: Vec<&str> = err.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(problems.len(), 4, "{err}");
    for (p, key) in problems.iter().zip([
        "collector.intervall",
        "gpu.backend",
        "server.workers",
        "server.listen",
    ]) {
        assert!(
            p.starts_with(&format!("  {{DIR}}/four-problems.toml: {key}: ")),
            "{p}"
        );
    }
    assert!(!err.contains("default.") && !err.contains("``"), "{err}");
}

/// Hardening follow-up: a `[[plugins]]` entry without `sha256` stopped the listing there:
/// only `plugins.0.sha256: missing` came out, while 14 more entries lacked it, one digest
/// was `zz`, a name appeared twice and `server.workers` was no number. Golden: all of them.
#[test]
fn check_config_lists_every_missing_key_and_the_problems_after_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let out = run_bin(&dir, &["--check-config", "missing-keys.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let abs = std::fs::canonicalize(&dir).unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&abs.display().to_string(), "{DIR}");
    golden("missing-keys.stderr", &err);
    let problems: Vec<&str> = err.lines().filter(|l| l.starts_with("  ")).collect();
    for i in 0..15 {
        let key = format!("plugins.{i}.sha256: missing");
        assert!(problems.iter().any(|p| p.contains(&key)), "{key}: {err}");
    }
    assert!(
        problems.iter().any(|p| p.contains("server.workers: ")),
        "{err}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("\"zz\"") || p.contains("(bad-digest).sha256")),
        "{err}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("bad-digest") && p.contains("twice")),
        "{err}"
    );
    // The placeholder of a missing digest is not reported a second time as a bad digest.
    assert_eq!(
        problems.iter().filter(|p| p.contains("plugins.0.")).count(),
        1,
        "{err}"
    );
}

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
