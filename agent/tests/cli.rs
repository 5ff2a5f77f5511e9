//! The binary: start-up errors, `--check-config`, graceful shutdown.

use std::process::Command;

use crate::util::{Agent, BIN};

#[test]
fn without_a_gpu_driver_start_fails_with_a_hint_not_a_panic() {
    if std::path::Path::new("/dev/nvidiactl").exists() {
        eprintln!("skipped: this machine has an NVIDIA driver");
        return;
    }
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--fake-gpus"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_port_in_use_is_a_clear_error_not_a_panic() {
    let first = Agent::start(&["--fake-gpus", "1"], &[]);
    let addr = first.base.trim_start_matches("http://").to_string();
    let out = Command::new(BIN)
        .args(["--fake-gpus", "1", "--listen", &addr])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot listen on") && err.contains("in use"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn joining_without_a_credential_fails_at_start_and_says_what_to_set() {
    let out = Command::new(BIN)
        .args([
            "--fake-gpus",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--control-plane",
            "http://127.0.0.1:1",
        ])
        .env_remove("GPUWARDEN_BOOTSTRAP_TOKEN")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("GPUWARDEN_BOOTSTRAP_TOKEN") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn check_config_accepts_the_example_and_rejects_bad_files() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml");
    let out = Command::new(BIN)
        .args(["--check-config", example])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));

    let scratch = crate::util::Scratch::new("check");
    let dir = scratch.path();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"nowhere\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("--check-config")
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.listen") && err.contains("bad.toml"),
        "{err}"
    );
    let missing = dir.join("missing.toml");
    let out = Command::new(BIN)
        .arg("--check-config")
        .arg(&missing)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn sigterm_stops_the_agent_cleanly() {
    let agent = Agent::start(&["--fake-gpus", "1"], &[]);
    let logs = std::sync::Arc::clone(&agent.logs);
    let status = agent.terminate();
    assert!(status.success(), "exit status {status}");
    // The log reader thread may still be draining the pipe.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = logs.lock().unwrap().join("\n");
        if text.contains("shutting down") && text.contains("stopped") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no shutdown lines in: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Regression (hardening follow-up): a 1-character token in a 0644 token file was the
/// credential of `/v1/commands`, and a URL with a password passed `--check-config` and was
/// logged. Both are refused, by `--check-config` and at start, with the password masked.
#[test]
fn weak_token_files_and_urls_with_credentials_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::util::Scratch::new("secrets");
    let token = dir.0.join("node-token");
    let cfg = |url: &str| {
        dir.write(
            "agent.toml",
            &format!(
                "[gpu]\nbackend = \"fake\"\n[control_plane]\ntoken_file = \"{}\"\nurl = \"{url}\"\n",
                token.display()
            ),
        )
    };
    let check = |file: &std::path::Path| {
        let out = Command::new(BIN)
            .arg("--check-config")
            .arg(file)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (
            out.status.code(),
            err + &String::from_utf8_lossy(&out.stdout),
        )
    };
    let set = |body: &str, mode: u32| {
        std::fs::write(&token, body).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
    };

    let file = cfg("");
    set("x\n", 0o644);
    let (code, out) = check(&file);
    assert_eq!(code, Some(2), "{out}");
    let path = token.display().to_string();
    assert!(out.contains("1 characters") && out.contains(&path), "{out}");
    assert!(out.contains("0644") && out.contains("chmod 600"), "{out}");
    // The agent does not start with it either.
    let started = Command::new(BIN)
        .args([
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run");
    assert_eq!(started.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&started.stderr).contains("token_file"));

    set("0123456789abcdef0123\n", 0o600);
    assert_eq!(check(&file).0, Some(0));

    for key in ["url", "advertise"] {
        let file = dir.write(
            "agent.toml",
            &format!(
                "[gpu]\nbackend = \"fake\"\n[control_plane]\ntoken_file = \"{}\"\n{key} = \"http://u:secretpw@127.0.0.1:18410\"\n",
                token.display()
            ),
        );
        let (code, out) = check(&file);
        assert_eq!(code, Some(2), "{out}");
        assert!(
            out.contains(&format!("control_plane.{key}")) && out.contains("u:***@127.0.0.1"),
            "{out}"
        );
        assert!(!out.contains("secretpw"), "the password is shown: {out}");
    }
    // The flags go through the same check.
    let out = Command::new(BIN)
        .args([
            "--fake-gpus",
            "1",
            "--control-plane",
            "http://u:secretpw@h:1",
        ])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("secretpw"), "{err}");
}

/// Investigation (hardening follow-up): an agent ended during a config reload without a log
/// line. SIGHUP, which operators send to ask for a reload (and a closed session sends),
/// ended the process silently by its default action; it is now logged and the agent serves on.
#[test]
fn sighup_is_logged_and_the_agent_keeps_serving() {
    let agent = Agent::start(&["--fake-gpus", "1"], &[]);
    for _ in 0..2 {
        let sent = Command::new("kill")
            .args(["-HUP", &agent.pid().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(agent.get("/healthz").0, 200, "the agent still serves");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = agent.logs.lock().unwrap().join("\n");
        if text.matches("SIGHUP received").count() == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(agent.terminate().success());
}

/// `plugin test … | head`: a reader that goes away is not an error of the command; the
/// output is dropped and the command ends as it would have (exit 0 here), not with a panic
/// (exit 101) when the report is printed. The control plane's CLI does the same.
#[test]
fn a_one_shot_command_whose_reader_goes_away_ends_without_a_panic() {
    let mut child = Command::new(BIN)
        .args(["plugin", "test", "--fake-gpus", "1"])
        .arg(crate::util::plugins().join("thermal.wasm"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    // The read end is closed before the plugin is even compiled.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
