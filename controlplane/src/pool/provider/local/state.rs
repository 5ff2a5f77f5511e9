//! What the `local` provider keeps per instance, so that a restarted control plane still
//! finds (and can stop) the agents an earlier run started: `instances/ID/instance.json`.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One started agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// Our instance id.
    pub instance_id: String,
    /// The node name the agent registers as.
    pub node_name: String,
    /// The pool.
    pub pool: String,
    /// The agent's process id (the leader of its process group).
    pub pid: u32,
    /// Its start time in clock ticks after boot: a reused pid has another one.
    pub start_ticks: u64,
    /// Its base URL.
    pub address: String,
    /// Its log file.
    pub log: PathBuf,
    /// When it was started (Unix ms).
    pub started_ms: i64,
}

/// The folder of `instance` under `root`.
pub fn dir(root: &Path, instance: &str) -> PathBuf {
    root.join("instances").join(instance)
}

/// The state file of `instance`.
pub fn file(root: &Path, instance: &str) -> PathBuf {
    dir(root, instance).join("instance.json")
}

/// Creates `path` and its parents with mode 0700 (the agent's node token lives below).
pub fn mkdir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Writes `kept` atomically (a temporary file renamed over the old one), mode 0600.
pub fn save(root: &Path, kept: &Kept) -> std::io::Result<()> {
    let f = file(root, &kept.instance_id);
    let tmp = f.with_extension("json.tmp");
    {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        w.write_all(&serde_json::to_vec_pretty(kept).map_err(std::io::Error::other)?)?;
        w.sync_all()?;
    }
    std::fs::rename(&tmp, &f)
}

/// The state of `instance`; `Ok(None)` when there is none.
pub fn load(root: &Path, instance: &str) -> Result<Option<Kept>, String> {
    let f = file(root, instance);
    match std::fs::read(&f) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| format!("{}: {e}", f.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", f.display())),
    }
}

/// The instance ids that have a state file.
pub fn instances(root: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root.join("instances")) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().join("instance.json").exists() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Forgets `instance`: its state file and the agent's own state (its node token); its
/// log stays for the operator.
pub fn forget(root: &Path, instance: &str) -> std::io::Result<()> {
    let d = dir(root, instance);
    match std::fs::remove_file(d.join("instance.json")) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match std::fs::remove_dir_all(d.join("agent-state")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
