//! The two programs, built once per test binary the way `cargo test --workspace` builds
//! them (shared by the end-to-end tests and the control plane's provider tests).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Builds `gpuwarden` and `gpuwarden-agent` (debug) once per test run; returns the folder.
///
/// They are built the way `cargo test --workspace` builds them for the agent's and the
/// control plane's own integration tests (`cargo test -p … --no-run`, which leaves the two
/// binaries in `target/debug`), not with `cargo build --bins`: the tests' dev-dependencies
/// turn on features of shared crates (figment's `test`, more of `regex`), and a plain build
/// would compile both programs a second time with other features.
pub fn bins() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args([
                    "test",
                    "-p",
                    "gpuwarden-agent",
                    "-p",
                    "gpuwarden-controlplane",
                    "--no-run",
                ])
                .current_dir(crate::repo())
                .output()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| crate::repo().join("target"));
            Ok(target.join("debug"))
        })
        .clone()
        .unwrap_or_else(|e| panic!("building the binaries failed:\n{e}"))
}
