//! The `gpuwarden` binary: `--check-config`, start-up errors.

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
        "[scrape]\ninterval = \"5s\"\ntimeout = \"9s\"\n[database]\nurl = \"mysql://db\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("scrape.timeout") && err.contains("database.url"),
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
fn an_unreachable_database_or_a_port_in_use_is_a_clear_error() {
    let dir = TempDir::new("startfail");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "postgres://gw:secret@127.0.0.1:1/gw",
        ])
        .env("GPUWARDEN_ADMIN_TOKEN", "admin-token-0123456789")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("database postgres://gw:***@127.0.0.1:1/gw"),
        "the password is hidden: {err}"
    );
    assert!(
        !err.contains("secret") && !err.contains("panicked"),
        "{err}"
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["serve", "--listen", &addr])
        .env("GPUWARDEN_ADMIN_TOKEN", "admin-token-0123456789")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn a_first_start_generates_an_admin_token_once_and_keeps_only_its_hash() {
    let dir = TempDir::new("gen");
    let start = || {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("GPUWARDEN_ADMIN_TOKEN")
            .current_dir(dir.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let file = dir.path().join("admin-token");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut all = String::new();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains(" listening") {
                    let _ = tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("started");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        assert!(status.success(), "a graceful stop exits 0");
        let log = reader.join().unwrap();
        (log, std::fs::read_to_string(file).ok())
    };
    let (log, token) = start();
    let token = token.expect("admin-token written").trim().to_string();
    assert!(token.starts_with("gwa_"));
    assert!(log.contains(&token), "printed once at first start");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.path().join("admin-token"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let db = std::fs::read(dir.path().join("gpuwarden.db")).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("gpuwarden.db-wal")).unwrap_or_default();
    let hay = [db, wal].concat();
    assert!(
        !hay.windows(token.len()).any(|w| w == token.as_bytes()),
        "the database holds only the hash"
    );
    let (log2, _) = start();
    assert!(
        !log2.contains("gwa_"),
        "not generated or printed again:\n{log2}"
    );
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

#[test]
fn a_short_token_in_the_environment_stops_the_start_naming_the_variable() {
    let dir = TempDir::new("shorttok");
    for (var, other) in [
        ("GPUWARDEN_ADMIN_TOKEN", "GPUWARDEN_BOOTSTRAP_TOKEN"),
        ("GPUWARDEN_BOOTSTRAP_TOKEN", "GPUWARDEN_ADMIN_TOKEN"),
    ] {
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env(var, "x")
            .env(other, "long-enough-token-0123456789")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{var}: shorter than 16 characters")),
            "{err}"
        );
        assert!(
            !dir.path().join("gpuwarden.db").exists(),
            "refused before anything was created"
        );
    }
}

/// A control plane on an ephemeral port with `token`; stopped (SIGTERM) on drop.
struct Server {
    child: std::process::Child,
    url: String,
    _dir: TempDir,
}

impl Server {
    fn start(token: &str) -> Self {
        use std::io::BufRead;
        let dir = TempDir::new("cliserve");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("GPUWARDEN_ADMIN_TOKEN", token)
            .env_remove("GPUWARDEN_BOOTSTRAP_TOKEN")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .current_dir(dir.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(a) = line.split("addr=").nth(1) {
                    let _ = tx.send(a.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("listening");
        Server {
            child,
            url: format!("http://{addr}"),
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn every_command_honours_o_json_errors_included_and_global_flags_go_anywhere() {
    let token = "cli-json-token-0123456789";
    let server = Server::start(token);
    let dir = TempDir::new("clijson");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[rule]]\nname = \"x\"\nscope = \"event\"\nwhen = 'event.kind =='\nverdict = \"unhealthy\"\n",
    )
    .unwrap();
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/policies.toml");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env_remove("GPUWARDEN_ADMIN_TOKEN")
            .env_remove("GPUWARDEN_SERVER")
            .env("GPUWARDEN_CLI_CONFIG", "/nonexistent")
            .current_dir(dir.path())
            .output()
            .unwrap();
        let v: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
        (
            out.status.code(),
            v,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let s = server.url.as_str();
    // The issue: an invalid policy printed text with -o json.
    let (code, v, _) = run(&[
        "policies",
        "validate",
        bad.to_str().unwrap(),
        "-o",
        "json",
        "--server",
        s,
        "--token",
        token,
    ]);
    // An invalid policy file is invalid input: exit 2, as `--check-config`.
    assert_eq!(code, Some(2));
    let v = v.expect("JSON on stdout");
    assert_eq!(v["valid"], false, "{v}");
    assert!(v["errors"][0]["line"].is_number(), "{v}");
    // Global flags before the subcommand.
    let (code, v, err) = run(&[
        "--server", s, "--token", token, "-o", "json", "policies", "validate", good,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v.unwrap()["valid"], true);
    let (code, v, err) = run(&[
        "-o", "json", "--server", s, "--token", token, "nodes", "list",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v.unwrap()["total"], 0);
    // API errors, usage errors, an unreachable server, a bad command line: JSON each.
    let (code, v, _) = run(&[
        "-o", "json", "--server", s, "--token", token, "nodes", "get", "nope",
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(v.unwrap()["error"]["code"], "not_found");
    let (code, v, _) = run(&[
        "-o",
        "json",
        "--server",
        s,
        "--token",
        token,
        "policies",
        "validate",
        "/no/such/file",
    ]);
    assert_eq!(code, Some(2));
    assert_eq!(v.unwrap()["error"]["code"], "usage");
    let (code, v, _) = run(&["-o", "json", "--server", "http://127.0.0.1:1", "audit"]);
    assert_eq!(code, Some(3));
    assert_eq!(v.unwrap()["error"]["code"], "unreachable");
    let (code, v, _) = run(&["-o", "json", "nodes", "frobnicate"]);
    assert_eq!(code, Some(2));
    assert_eq!(v.unwrap()["error"]["code"], "usage");
    // And text stays text.
    let (code, v, err) = run(&["--server", s, "--token", token, "nodes", "get", "nope"]);
    assert_eq!((code, v), (Some(1), None));
    assert!(err.starts_with("error: node nope not found"), "{err}");
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
        // A consequence of the interval, reported too.
        "scrape.timeout",
    ] {
        assert!(problems.iter().any(|p| p.contains(key)), "{key}: {err}");
    }
    assert_eq!(problems.len(), 5, "{err}");
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

/// Hardening follow-up: `gpuwarden --server http://u:secretpw@127.0.0.1:1 nodes list`
/// printed `cannot reach the control plane at http://u:secretpw@…`. Text and JSON errors
/// mask the password.
#[test]
fn cli_errors_never_show_a_password() {
    for json in [false, true] {
        let mut cmd = Command::new(BIN);
        cmd.args(["--server", "http://u:secretpw@127.0.0.1:1", "--token", "t"]);
        if json {
            cmd.args(["-o", "json"]);
        }
        cmd.args(["nodes", "list"]);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("secretpw"), "{all}");
        assert!(all.contains("http://u:***@127.0.0.1:1"), "{all}");
    }
}
