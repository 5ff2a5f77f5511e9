//! The plugins workspace, built once per test binary.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Builds the plugins workspace (`plugins/`: the example and hostile plugins) once per test
/// binary with `cargo build --release --target wasm32-wasip2` into `plugins/target`, and
/// returns the folder holding the `.wasm` files. Panics, with cargo's output, when the build
/// fails (for example when the target is not installed and rustup cannot add it).
pub fn plugins() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = crate::repo().join("plugins");
            // Install the target when rustup can (a no-op when it is there), so that
            // `cargo test --workspace` alone works on a fresh machine.
            let _ = Command::new("rustup")
                .args(["target", "add", "wasm32-wasip2"])
                .output();
            let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
                .arg(dir.join("target"))
                .current_dir(&dir)
                .env_remove("CARGO_TARGET_DIR")
                .env_remove("RUSTFLAGS")
                .output()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "building the plugins failed (is the target installed? `rustup target add wasm32-wasip2`):\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(dir.join("target/wasm32-wasip2/release"))
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}
