//! Reading, pinning and compiling a plugin file.

use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::super::engine::{Compiled, PluginEngine, PluginError};
use super::super::files::{read_regular, MAX_COMPONENT_BYTES};
use crate::config::PluginEntry;

/// The sha256 of a file, hex.
///
/// # Errors
/// [`PluginError::Io`] when it is not a regular file of at most 64 MiB, or cannot be read.
pub fn digest_file(path: &Path) -> Result<String, PluginError> {
    Ok(read_component(path)?.1)
}

/// A plugin file's bytes and their sha256 (hex), from one read: what is hashed is what is
/// compiled, even while the file is being rewritten.
///
/// # Errors
/// As [`digest_file`].
pub fn read_component(path: &Path) -> Result<(Vec<u8>, String), PluginError> {
    let bytes = read_plugin(path)?;
    let sha = hex(&Sha256::digest(&bytes));
    Ok((bytes, sha))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_plugin(path: &Path) -> Result<Vec<u8>, PluginError> {
    let io = |cause| PluginError::Io {
        path: path.to_path_buf(),
        cause,
    };
    // Only a regular file of at most 64 MiB: a FIFO or a device would stall every plugin.
    read_regular(path, MAX_COMPONENT_BYTES).map_err(io)
}

/// A loaded plugin.
#[derive(Debug)]
pub struct Loaded {
    /// Its digest.
    pub sha256: String,
    /// Compiled and linked.
    pub compiled: Compiled,
    /// How long loading took.
    pub load_seconds: f64,
}

/// Reads, verifies, compiles (or loads from the cache) and links one plugin.
pub fn load(engine: &PluginEngine, entry: &PluginEntry) -> Result<Loaded, PluginError> {
    let started = Instant::now();
    let bytes = read_plugin(&entry.path)?;
    let actual = hex(&Sha256::digest(&bytes));
    let expected = entry.sha256.to_ascii_lowercase();
    if actual != expected {
        return Err(PluginError::DigestMismatch {
            path: entry.path.clone(),
            expected,
            actual,
        });
    }
    let (component, from_cache) = engine.compile(&bytes, &actual)?;
    let compiled = engine.prepare(&component, entry.kind, from_cache)?;
    Ok(Loaded {
        sha256: actual,
        compiled,
        load_seconds: started.elapsed().as_secs_f64(),
    })
}
