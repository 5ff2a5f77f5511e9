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
