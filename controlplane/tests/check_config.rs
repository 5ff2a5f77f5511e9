//! `gpuwarden serve --check-config` and the example config file: every problem at once, by
//! key and absolute file, with the rules the API applies; every key documented.

use std::process::Command;

use crate::util::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_gpuwarden");

#[test]
fn check_config_accepts_the_example_and_lists_every_problem_of_a_bad_file() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/controlplane.toml");
    let out = Command::new(BIN)
        .args(["serve", "--check-config", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));

    let dir = TempDir::new("check");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[scrape]\ninterval = \"5s\"\ntimeout = \"9s\"\n[database]\nurl = \"mysql://db\"\n\
         observation_write_interval = \"100ms\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml")
            && err.contains("scrape.timeout")
            && err.contains("database.url")
            && err.contains("database.observation_write_interval: must be at least 1s"),
        "{err}"
    );

    std::fs::write(&bad, "[scrape]\nintervall = \"5s\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("intervall"));
}

#[test]
fn check_config_applies_the_api_rules_to_labels_addresses_and_tokens() {
    let dir = TempDir::new("rules");
    let bad = dir.path().join("cp.toml");
    std::fs::write(
        &bad,
        "[auth]\nadmin_tokens = [\"x\"]\nbootstrap_tokens = [\"sha256:abc\"]\n\
         [[static_targets]]\nname = \"gpu-01\"\naddress = \"http://agent:s3cret@10.0.0.5:9410\"\n\
         labels = { ignore-tls = \"true\" }\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--check-config", bad.to_str().unwrap()])
        .env_remove("GPUWARDEN_ADMIN_TOKEN")
        .env_remove("GPUWARDEN_BOOTSTRAP_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "static_targets[0].labels: label name \"ignore-tls\"",
        "static_targets[0].address",
        "credentials",
        "auth.admin_tokens[0]: shorter than 16 characters",
        "auth.bootstrap_tokens[0]: sha256:",
    ] {
        assert!(err.contains(want), "{want} missing from:\n{err}");
    }
    assert!(!err.contains("s3cret"), "{err}");

    // The same with -o json (before the subcommand): one document on stdout.
    let out = Command::new(BIN)
        .args([
            "-o",
            "json",
            "serve",
            "--check-config",
            bad.to_str().unwrap(),
        ])
        .env("GPUWARDEN_ADMIN_TOKEN", "y")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["valid"], false);
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("GPUWARDEN_ADMIN_TOKEN: shorter than 16"),
        "{problems}"
    );
}

/// Issue: `--check-config` stopped at the first unknown key or type error, with figment's
/// `default.` prefix, doubled backticks and the path as given. Golden: a file with four
/// problems reports all four, each with its key path and the file's absolute path; exit 2.
#[test]
fn check_config_reports_every_problem_by_key_and_absolute_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--check-config", "four-problems.toml"])
        .current_dir(&dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("GPUWARDEN_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let abs = std::fs::canonicalize(&dir).unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&abs.display().to_string(), "{DIR}");
    let golden = dir.join("four-problems.stderr");
    if std::env::var_os("GOLDEN_BLESS").is_some() {
        std::fs::write(&golden, &err).unwrap();
    }
    assert_eq!(err, std::fs::read_to_string(&golden).unwrap_or_default());
    let problems: Vec<&str> = err.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(problems.len(), 4, "{err}");
    for key in [
        "database.pool_size",
        "scrape.intervall",
        "server.workers",
        "server.listen",
    ] {
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(&format!("  {{DIR}}/four-problems.toml: {key}: "))),
            "{key}: {err}"
        );
    }
    assert!(!err.contains("default.") && !err.contains("``"), "{err}");
}

/// Hardening follow-up: `[[static_targets]]` without `address` stopped the listing there:
/// `workers = 0`, the webhook without `url` and `interval = "0s"` were hidden. Golden: all of them.
#[test]
fn check_config_lists_every_missing_key_and_the_problems_after_it() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--check-config", "missing-keys.toml"])
        .current_dir(&dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("GPUWARDEN_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let abs = std::fs::canonicalize(&dir).unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&abs.display().to_string(), "{DIR}");
    let golden = dir.join("missing-keys.stderr");
    if std::env::var_os("GOLDEN_BLESS").is_some() {
        std::fs::write(&golden, &err).unwrap();
    }
    assert_eq!(err, std::fs::read_to_string(&golden).unwrap_or_default());
    let problems: Vec<&str> = err.lines().filter(|l| l.starts_with("  ")).collect();
    for key in [
        "server.workers",
        "scrape.interval",
        "webhooks.0.url: missing",
        "static_targets.0.address: missing",
    ] {
        assert!(problems.iter().any(|p| p.contains(key)), "{key}: {err}");
    }
    // The unset timeout follows the interval: only the interval's own problem is reported.
    assert_eq!(problems.len(), 4, "{err}");
}

/// Hardening follow-up: the example files claim to document every key. Every key of the
/// control plane's configuration is in `config/controlplane.toml`, set or in a comment.
#[test]
fn the_example_file_documents_every_key() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/controlplane.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let missing = gpuwarden_configfile::undocumented_keys(
        &gpuwarden_controlplane::config::ControlPlaneConfig::default(),
        &text,
    );
    assert!(
        missing.is_empty(),
        "config/controlplane.toml lacks {missing:?}"
    );
}

/// The lists of the control plane's sections and keys that the environment filter uses are
/// its configuration, so the filter cannot drift from it.
#[test]
fn the_env_lists_match_the_config() {
    use gpuwarden_configfile::env::{AGENT, CONTROL_PLANE};
    let v = serde_json::to_value(gpuwarden_controlplane::config::ControlPlaneConfig::default())
        .unwrap();
    let obj = v.as_object().unwrap();
    let mut sections: Vec<&str> = obj.keys().map(String::as_str).collect();
    let mut listed = CONTROL_PLANE.sections.to_vec();
    sections.sort_unstable();
    listed.sort_unstable();
    assert_eq!(sections, listed);
    for s in CONTROL_PLANE
        .sections
        .iter()
        .filter(|s| AGENT.sections.contains(s))
    {
        let mut keys: Vec<String> = obj[*s]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| format!("{s}.{k}"))
            .collect();
        let mut listed: Vec<String> = CONTROL_PLANE
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

/// `--token` and `--server` are the CLI's flags: `serve` refuses them instead of starting
/// with a generated admin token the operator did not ask for.
#[test]
fn serve_refuses_the_clis_token_and_server_flags() {
    for flags in [
        &["serve", "--token", "my-admin-token-1234567"][..],
        &[
            "--server",
            "http://127.0.0.1:1",
            "serve",
            "--check-config",
            "x.toml",
        ][..],
    ] {
        let out = Command::new(BIN).args(flags).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("auth.admin_tokens"), "{flags:?}: {err}");
    }
}

/// A breaker's find: a FIFO at the config's path made the reload (and `--check-config`, and
/// the start) wait for ever, and a stop with it. It is refused at once.
#[test]
fn a_config_path_that_is_no_regular_file_is_refused_without_waiting() {
    let dir = TempDir::new("check-fifo");
    let fifo = dir.path().join("cp.toml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // And a file over the size limit: refused, not read into memory whole.
    let big = dir.path().join("big.toml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(17 << 20).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--check-config", big.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("more than the 16777216"), "{text}");
    for args in [
        vec!["serve", "--check-config", fifo.to_str().unwrap()],
        vec!["serve", "--config", fifo.to_str().unwrap()],
    ] {
        let t = std::time::Instant::now();
        let out = Command::new(BIN)
            .args(&args)
            .env("GPUWARDEN_ADMIN_TOKEN", "check-fifo-admin-token-012345")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("not a regular file"), "{text}");
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
    }
}
