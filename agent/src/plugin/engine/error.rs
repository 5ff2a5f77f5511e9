//! Why a plugin cannot be loaded: the error of the engine's load path and of its checks
//! ([`super::exports`]), and of the manager's loader.

use std::path::PathBuf;

/// Why a plugin cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file cannot be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause: part of the message, not chained again (`plugin test` printed it
        /// twice).
        cause: std::io::Error,
    },
    /// The file's digest is not the configured one.
    #[error("sha256 mismatch for {path}: the config pins {expected}, the file has {actual}")]
    DigestMismatch {
        /// The file.
        path: PathBuf,
        /// Configured.
        expected: String,
        /// Found.
        actual: String,
    },
    /// Not a WebAssembly component (corrupt, a core module, or not wasm at all).
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// A component, but not of the expected world.
    #[error("wrong world: {0}")]
    WrongWorld(String),
    /// It exports the right interface, but a function of it has another type than the
    /// contract's (checked at load, so it never loads only to fail every run).
    #[error("wrong signature: {0}")]
    WrongSignature(String),
    /// Built against a contract version this agent does not provide.
    #[error("incompatible plugin: built against gpuwarden:plugin@{found}; this agent provides gpuwarden:plugin@{provided} (compatible: 0.1.x with x <= the agent's)")]
    Incompatible {
        /// The plugin's version.
        found: String,
        /// Ours.
        provided: &'static str,
    },
    /// Its imports cannot be satisfied (it asks for something the sandbox does not offer).
    #[error("cannot link: {0}")]
    Link(String),
    /// The engine could not be built.
    #[error("wasmtime engine: {0}")]
    Engine(String),
    /// A new assigned version's first run failed: refused, the previous version runs on.
    #[error("its first run failed: {0}")]
    FirstRun(String),
}
