//! WebAssembly plugins: sandboxed health checks and diagnostics.
//!
//! - [`bindings`] runs wasmtime's `bindgen!` over `wit/plugin.wit`, once for each world.
//! - [`engine`] owns the one wasmtime `Engine` (epoch interruption with its own ticker thread,
//!   the pooling allocator when the host allows it) and compiles components, caching the
//!   compiled code on disk by content hash.
//! - [`host`] is the store's data: the read-only host API, WASI with nothing granted (no
//!   preopened directories, no network, no environment, frozen clocks), bounded stdout and
//!   stderr, and the memory limiter.
//! - [`runner`] instantiates a pre-linked component in a fresh store per run, enforces the
//!   deadline, memory and report limits, and turns every failure into an `unknown` report
//!   with the reason.
//! - [`manager`] loads the configured plugins (sha256-pinned), schedules health checks with
//!   jitter, records results as metrics and events, serves `/v1/plugins`, and hot-reloads.

pub mod bindings;
pub mod cli;
pub mod engine;
pub mod host;
pub mod manager;
pub mod runner;

/// The contract version this agent provides (`package gpuwarden:plugin@…` in `wit/`).
pub const WIT_VERSION: &str = "0.1.0";
