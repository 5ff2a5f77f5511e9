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

/// Sets up the Python and JavaScript plugin toolchains once per test binary, from the
/// package registries as `.ci/run` does: `plugins/python/.venv` with componentize-py
/// (`requirements.txt`) and `plugins/js/node_modules` (`npm ci --ignore-scripts`). Returns
/// false when they cannot be had here (no python3 or npm, no registry): callers skip with a
/// message then, except under CI (`CI` set), where that is a failure.
pub fn lang_toolchains() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let r = READY.get_or_init(|| {
        let root = crate::repo().join("plugins");
        let py = root.join("python");
        if !py.join(".venv/bin/componentize-py").exists() {
            run(Command::new("python3")
                .args(["-m", "venv", ".venv"])
                .current_dir(&py))?;
            run(Command::new(py.join(".venv/bin/pip"))
                .args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                    "requirements.txt",
                ])
                .current_dir(&py))?;
        }
        let js = root.join("js");
        if !js.join("node_modules/.bin/componentize-js").exists() {
            run(Command::new("npm")
                .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
                .current_dir(&js))?;
        }
        Ok(())
    });
    match r {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("the Python and JavaScript plugin toolchains could not be set up: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: the Python and JavaScript plugin toolchains could not be set up here: {e}");
            false
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
