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
//! - [`files`] reads the files plugins come from: regular files only, within a size limit.
//! - [`sync`] fetches the plugins the control plane assigns (by digest, verified) and hands
//!   them to the manager beside the configured ones.

pub mod bindings;
pub mod cli;
pub mod engine;
pub mod files;
pub mod host;
pub mod langs;
pub mod manager;
pub mod runner;
pub mod sync;

/// The contract version this agent provides (`package gpuwarden:plugin@…` in `wit/`).
pub const WIT_VERSION: &str = "0.1.0";

/// The longest error message shown for a plugin (load error or run failure), characters.
const MAX_ERROR_CHARS: usize = 500;

/// An error message as one line: wasmtime's and wasmparser's multi-line texts (byte dumps,
/// wrapped causes) folded into single spaces, and at most [`MAX_ERROR_CHARS`] characters,
/// so `GET /v1/plugins`, the log and `plugin test` show one clear line.
pub fn one_line(s: &str) -> String {
    let folded = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= MAX_ERROR_CHARS {
        return folded;
    }
    let mut cut: String = folded.chars().take(MAX_ERROR_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::{one_line, MAX_ERROR_CHARS};

    #[test]
    fn errors_become_one_bounded_line() {
        let dump =
            "magic header not detected: bad magic number - expected=[\n    0x0,\n    0x61,\n]";
        assert_eq!(
            one_line(dump),
            "magic header not detected: bad magic number - expected=[ 0x0, 0x61, ]"
        );
        let long = one_line(&"word ".repeat(1000));
        assert_eq!(long.chars().count(), MAX_ERROR_CHARS);
        assert!(long.ends_with('…') && !long.contains('\n'));
    }
}
