//! Hosting a control plane for the demo and the simulator: a fresh folder, files and secrets
//! in it, a free port, `gpuwarden serve` started as a child in its own process group.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `exe serve --config config` in `dir` with the admin `token`, its output in
/// `dir/controlplane.log`, in a process group of its own (the terminal's Ctrl-C reaches the
/// caller only, which stops it last). The caller's `GPUWARDEN_*` variables (a production
/// database URL, a listen address) do not reach it.
pub(crate) fn spawn_serve(
    exe: &Path,
    config: &Path,
    dir: &Path,
    token: &str,
) -> Result<Child, String> {
    let log = std::fs::File::create(dir.join("controlplane.log"))
        .map_err(|e| format!("controlplane.log: {e}"))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("controlplane.log: {e}"))?;
    let mut cmd = Command::new(exe);
    without_our_env(&mut cmd);
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("GPUWARDEN_ADMIN_TOKEN", token)
        .env("RUST_LOG", "info")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn()
        .map_err(|e| format!("start {} serve: {e}", exe.display()))
}

/// Removes the caller's `GPUWARDEN_*` variables from `cmd`'s environment.
pub(crate) fn without_our_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GPUWARDEN_") {
            cmd.env_remove(&k);
        }
    }
    // What demo and simulate start ends with them, even when they are killed (SIGKILL).
    cmd.env(
        gpuwarden_configfile::parent::EXIT_WITH_PARENT,
        std::process::id().to_string(),
    );
}

/// Creates `dir`, or takes it when it exists and is empty.
pub(crate) fn fresh_dir(dir: &Path) -> Result<(), String> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!(
                    "{} is not empty: name a new folder with --dir",
                    dir.display()
                ));
            }
            Ok(())
        }
        Err(_) => std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display())),
    }
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn write_secret(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{text}\n").as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

pub(crate) fn random_bytes() -> Result<[u8; 16], String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| format!("random: {e}"))?;
    Ok(b)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
