//! The on-disk compile cache: a directory only the agent's user may write, files written
//! atomically, machine code trusted as the agent binary is.

use std::path::Path;

use wasmtime::component::Component;
use wasmtime::Engine;

pub(super) fn prepare_cache_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    // Cached machine code is trusted as the agent binary is: the directory must be ours
    // and closed to others.
    // The owner is compared with that of a file we create (no libc for geteuid).
    let probe = dir.join(".owner-probe");
    std::fs::write(&probe, b"")?;
    let me = std::fs::metadata(&probe)?.uid();
    let _ = std::fs::remove_file(&probe);
    if meta.uid() != me || meta.permissions().mode() & 0o022 != 0 {
        return Err(std::io::Error::other(
            "the directory must belong to the agent's user and not be writable by others",
        ));
    }
    Ok(())
}

pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[allow(unsafe_code)]
pub(super) fn load_cached(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was produced by `Component::serialize` of this agent (the name carries
    // the engine's compatibility hash, and wasmtime re-checks version and configuration
    // before use) and lives in a directory that `prepare_cache_dir` verified belongs to the
    // agent's user and is not writable by others.
    unsafe { Component::deserialize_file(engine, path) }
}
