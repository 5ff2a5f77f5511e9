//! Configuration across the two programs: each ignores the other's environment variables,
//! and invalid files are reported with every problem at once.

use std::process::Command;

use gpuwarden_e2e::{bins, repo, start_bin, Scratch};

use crate::cp::{self, ADMIN, BOOT};

/// Issue: the agent refused to start with the control plane's `GPUWARDEN_SCRAPE__*`
/// variables in its environment. Each binary starts with the other's variables set (one
/// environment file for both), joins and works; a typo in its own section still fails.
#[test]
fn each_program_starts_with_the_others_variables_and_still_refuses_its_own_typos() {
    let dir = Scratch::new("env");
    let state = dir.path().join("state");
    let agent_vars = [
        ("GPUWARDEN_KMSG__PATH", "/dev/kmsg"),
        ("GPUWARDEN_NODE__STATE_DIR", state.to_str().unwrap()),
        ("GPUWARDEN_CONTROL_PLANE__RETRY_MAX", "5s"),
        ("GPUWARDEN_COMMANDS__DRAIN_POLL", "1s"),
        ("GPUWARDEN_PLUGIN__INTERVAL", "30s"),
    ];
    let cp_vars = [
        ("GPUWARDEN_SCRAPE__TIMEOUT", "1s"),
        ("GPUWARDEN_DATABASE__POOL_SIZE", "4"),
        ("GPUWARDEN_SERVER__EXTERNAL_URL", "http://cp.example:8410"),
        ("GPUWARDEN_COMMANDS__TIMEOUT", "30s"),
        ("GPUWARDEN_RETENTION__EVENTS", "30d"),
    ];
    let db = dir.path().join("gw.db");
    let cfg = dir.write(
        "cp.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[database]\nurl = \"sqlite://{}\"\n[scrape]\ninterval = \"1s\"\n",
            dir.path().display(),
            db.display()
        ),
    );
    let mut env: Vec<(&str, &str)> = vec![
        ("GPUWARDEN_ADMIN_TOKEN", ADMIN),
        ("GPUWARDEN_BOOTSTRAP_TOKEN", BOOT),
    ];
    env.extend(agent_vars);
    env.extend(cp_vars);
    let control = start_bin(
        "gpuwarden",
        &["serve", "--config", cfg.to_str().unwrap()],
        &env,
        dir.path(),
    );
    let api = gpuwarden_e2e::Api::new(&control.base, ADMIN);
    let agent_cfg = dir.write(
        "agent.toml",
        &format!(
            "[node]\nid = \"gpu-31\"\n[gpu]\nbackend = \"fake\"\n[control_plane]\nurl = \"{}\"\n",
            control.base
        ),
    );
    let _agent = start_bin(
        "gpuwarden-agent",
        &[
            "--config",
            agent_cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &env,
        dir.path(),
    );
    cp::online(&api, "gpu-31");

    // A misspelt key of a program's own section is still an error, naming the variable.
    for (bin, args, typo) in [
        (
            "gpuwarden",
            vec!["serve", "--check-config", cfg.to_str().unwrap()],
            "GPUWARDEN_SCRAPE__INTERVALL",
        ),
        (
            "gpuwarden-agent",
            vec!["--check-config", agent_cfg.to_str().unwrap()],
            "GPUWARDEN_KMSG__PAHT",
        ),
    ] {
        let out = Command::new(bins().join(bin))
            .args(&args)
            .envs(env.iter().copied())
            .env(typo, "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bin}: {err}");
        assert!(
            err.contains(&format!("environment variable {typo}:")),
            "{bin}: {err}"
        );
        assert_eq!(
            err.lines().filter(|l| l.starts_with("  ")).count(),
            1,
            "{bin}: {err}"
        );
    }
}

/// Issue: `policies validate` stopped at the first problem and printed no file. Golden: a
/// policy with four problems reports all four as `FILE:LINE:COLUMN`, the file's absolute
/// path; exit 2.
#[test]
fn policies_validate_lists_every_problem_with_the_absolute_file() {
    let dir = Scratch::new("policy-golden");
    let (_cp, api) = cp::start(&dir, "");
    let golden = repo().join("tests/e2e/golden");
    let out = Command::new(bins().join("gpuwarden"))
        .args(["policies", "validate", "policy-four-problems.toml"])
        .args(["--server", &api.base, "--token", ADMIN])
        .env("GPUWARDEN_CLI_CONFIG", "/nonexistent")
        .current_dir(&golden)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let abs = std::fs::canonicalize(&golden).unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&abs.display().to_string(), "{DIR}");
    let path = golden.join("policy-four-problems.stderr");
    if std::env::var_os("GOLDEN_BLESS").is_some() {
        std::fs::write(&path, &err).unwrap();
    }
    assert_eq!(err, std::fs::read_to_string(&path).unwrap_or_default());
    let problems: Vec<&str> = err.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(problems.len(), 4, "{err}");
    assert!(
        problems
            .iter()
            .all(|l| l.starts_with("  {DIR}/policy-four-problems.toml:")),
        "{err}"
    );
}
