//! The two programs, built once per test binary the way `cargo test --workspace` builds
//! them (shared by the end-to-end tests and the control plane's provider tests).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Builds `gpuwarden` and `gpuwarden-agent` (debug) once per test run; returns the folder.
///
/// They are built exactly as `cargo test --workspace` builds them (`cargo test --workspace
/// --no-run`, which leaves the two binaries in `target/debug`, and is a no-op when that
/// command has just run), not with `cargo build --bins` nor `cargo test -p … -p …`: the
/// tests' dev-dependencies (figment's `test`, the e2e crate's WebDriver client and its
/// tokio) turn on features of shared crates, and any other set of packages would compile
/// both programs and their dependencies a second time with other features.
pub fn bins() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["test", "--workspace", "--no-run"])
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
