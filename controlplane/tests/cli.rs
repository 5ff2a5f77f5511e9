//! The `gpuwarden` binary: start-up errors, the generated admin token, the CLI (`-o json`, global flags, masked passwords). `--check-config` is in `check_config.rs`.

use std::process::Command;

use crate::util::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_gpuwarden");

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
pub(crate) struct Server {
    child: std::process::Child,
    pub(crate) url: String,
    pub(crate) _dir: TempDir,
}

impl Server {
    pub(crate) fn start(token: &str) -> Self {
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

/// A server that is not a control plane, a reader that goes away, a malformed `--since`:
/// clear errors and exit codes, never a panic.
#[test]
fn the_cli_handles_a_foreign_server_a_closed_pipe_and_a_bad_since() {
    use crate::util::{Reply, Stub};
    use std::process::Stdio;

    let foreign = Stub::start(Reply::text("hello, I am not an API"));
    let out = Command::new(BIN)
        .args([
            "--server",
            &foreign.url(),
            "--token",
            "admin-token-0123456789",
        ])
        .args(["nodes", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("not JSON") && err.contains("control plane"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args([
            "--server",
            &foreign.url(),
            "--token",
            "admin-token-0123456789",
        ])
        .args(["nodes", "events", "gpu-1", "--since", "bogus"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("neither a duration"), "{err}");

    // A long answer to a reader that closes the pipe at once (`| head -c 1`).
    let nodes: Vec<_> = (0..2000)
        .map(|i| serde_json::json!({"id": format!("node-{i}"), "name": format!("gpu-{i}")}))
        .collect();
    let body = serde_json::json!({"nodes": nodes, "total": 2000}).to_string();
    let api = Stub::start(Reply::Full(
        200,
        vec![("Content-Type".into(), "application/json".into())],
        body.into_bytes(),
    ));
    let mut child = Command::new(BIN)
        .args(["--server", &api.url(), "--token", "admin-token-0123456789"])
        .args(["nodes", "list", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
