//! Plugins in Python and JavaScript (`plugins/python`, `plugins/js`): `plugin new NAME --lang
//! python|js` writes a project that builds as it is (its app, a copy of the SDK and of the
//! contract, the pinned build tool's manifest), and `plugin build DIR` builds any project,
//! Rust included, with its language's tool: cargo, componentize-py (PyPI) or componentize-js
//! (npm). The SDKs and the contract are compiled into this binary, so a project made outside
//! the repository needs nothing else from it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::config::PluginKind;

/// A plugin's source language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with `gpuwarden-plugin-sdk` (cargo, target wasm32-wasip2).
    Rust,
    /// Python, with `gpuwarden_plugin` (componentize-py).
    Python,
    /// JavaScript, with the SDK in `sdk/` (componentize-js).
    Js,
}

/// The contract, `wit/plugin.wit`.
pub const WIT: &str = include_str!("../../../wit/plugin.wit");

/// The Python SDK's files (`plugins/python/gpuwarden_plugin/`), by name.
pub const PYTHON_SDK: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../../plugins/python/gpuwarden_plugin/__init__.py"),
    ),
    (
        "_rust.py",
        include_str!("../../../plugins/python/gpuwarden_plugin/_rust.py"),
    ),
    (
        "checks.py",
        include_str!("../../../plugins/python/gpuwarden_plugin/checks.py"),
    ),
    (
        "config.py",
        include_str!("../../../plugins/python/gpuwarden_plugin/config.py"),
    ),
    (
        "export.py",
        include_str!("../../../plugins/python/gpuwarden_plugin/export.py"),
    ),
    (
        "host.py",
        include_str!("../../../plugins/python/gpuwarden_plugin/host.py"),
    ),
    (
        "model.py",
        include_str!("../../../plugins/python/gpuwarden_plugin/model.py"),
    ),
    (
        "report.py",
        include_str!("../../../plugins/python/gpuwarden_plugin/report.py"),
    ),
    (
        "testing.py",
        include_str!("../../../plugins/python/gpuwarden_plugin/testing.py"),
    ),
    (
        "xid.py",
        include_str!("../../../plugins/python/gpuwarden_plugin/xid.py"),
    ),
    (
        "xid_table.py",
        include_str!("../../../plugins/python/gpuwarden_plugin/xid_table.py"),
    ),
];

/// The JavaScript SDK's files (`plugins/js/sdk/`), by name.
pub const JS_SDK: &[(&str, &str)] = &[
    (
        "checks.js",
        include_str!("../../../plugins/js/sdk/checks.js"),
    ),
    (
        "config.js",
        include_str!("../../../plugins/js/sdk/config.js"),
    ),
    ("host.js", include_str!("../../../plugins/js/sdk/host.js")),
    ("index.js", include_str!("../../../plugins/js/sdk/index.js")),
    ("model.js", include_str!("../../../plugins/js/sdk/model.js")),
    (
        "plugin.js",
        include_str!("../../../plugins/js/sdk/plugin.js"),
    ),
    (
        "report.js",
        include_str!("../../../plugins/js/sdk/report.js"),
    ),
    ("rust.js", include_str!("../../../plugins/js/sdk/rust.js")),
    (
        "testing.js",
        include_str!("../../../plugins/js/sdk/testing.js"),
    ),
    ("xid.js", include_str!("../../../plugins/js/sdk/xid.js")),
    (
        "xid_table.js",
        include_str!("../../../plugins/js/sdk/xid_table.js"),
    ),
];

const PY_REQUIREMENTS: &str = include_str!("../../../plugins/python/requirements.txt");
const JS_PACKAGE: &str = include_str!("../../../plugins/js/package.json");
const JS_LOCK: &str = include_str!("../../../plugins/js/package-lock.json");

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Writes a Python or JavaScript plugin project `DIR/NAME` that builds as it is with
/// `gpuwarden-agent plugin build DIR/NAME`; its path.
pub fn new_project(
    name: &str,
    dir: &Path,
    lang: Lang,
    kind: PluginKind,
) -> anyhow::Result<PathBuf> {
    let target = dir.join(name);
    if target.exists() {
        bail!("{} already exists", target.display());
    }
    write(&target.join("wit/plugin.wit"), WIT)?;
    let diagnostic = kind == PluginKind::Diagnostic;
    match lang {
        Lang::Rust => bail!("Rust projects are made by `plugin new` without --lang"),
        Lang::Python => {
            for (f, text) in PYTHON_SDK {
                write(&target.join("gpuwarden_plugin").join(f), text)?;
            }
            write(&target.join("requirements.txt"), PY_REQUIREMENTS)?;
            write(&target.join("app.py"), &python_app(name, diagnostic))?;
            write(&target.join(".gitignore"), ".venv/\nbuild/\n__pycache__/\n")?;
            write(
                &target.join("README.md"),
                &format!(
                    "# {name}\n\nA gpuwarden plugin in Python ({}).\n\n```sh\npython3 -m venv .venv && .venv/bin/pip install -r requirements.txt   # once: componentize-py, from PyPI\ngpuwarden-agent plugin build .      # build/{name}.wasm and its digest\ngpuwarden-agent plugin test build/{name}.wasm --inject temperature:97@1\n```\n\n`app.py` is the plugin; `gpuwarden_plugin/` is the SDK and `wit/` the contract, copied\nhere by `gpuwarden-agent plugin new`.\n",
                    if diagnostic { "a diagnostic" } else { "a health check" }
                ),
            )?;
        }
        Lang::Js => {
            for (f, text) in JS_SDK {
                write(&target.join("sdk").join(f), text)?;
            }
            let own = |t: &str| t.replace("\"gpuwarden-plugin-js\"", &format!("\"{name}\""));
            // The repository's scripts build its examples: this project builds itself.
            let mut package: serde_json::Value =
                serde_json::from_str(&own(JS_PACKAGE)).context("the embedded package.json")?;
            package["description"] = format!("{name}: a gpuwarden plugin").into();
            package["scripts"] = serde_json::json!({"build": "gpuwarden-agent plugin build ."});
            write(
                &target.join("package.json"),
                &(serde_json::to_string_pretty(&package)? + "\n"),
            )?;
            write(&target.join("package-lock.json"), &own(JS_LOCK))?;
            write(&target.join("app.js"), &js_app(name, diagnostic))?;
            write(&target.join(".gitignore"), "node_modules/\nbuild/\n")?;
            write(
                &target.join("README.md"),
                &format!(
                    "# {name}\n\nA gpuwarden plugin in JavaScript ({}).\n\n```sh\nnpm ci --ignore-scripts            # once: componentize-js, from npm\ngpuwarden-agent plugin build .      # build/{name}.wasm and its digest\ngpuwarden-agent plugin test build/{name}.wasm --inject temperature:97@1\n```\n\n`app.js` is the plugin; `sdk/` is the SDK and `wit/` the contract, copied here by\n`gpuwarden-agent plugin new`.\n",
                    if diagnostic { "a diagnostic" } else { "a health check" }
                ),
            )?;
        }
    }
    Ok(target)
}

fn python_app(name: &str, diagnostic: bool) -> String {
    if diagnostic {
        format!(
            "\"\"\"`{name}`: describe what this diagnostic checks and its parameters.\"\"\"\n\nfrom gpuwarden_plugin import Action, Status, ReportBuilder, export_diagnostic\n\n\ndef run(host, params):\n    expect = params.u64(\"expect_gpus\", 0)\n    r = ReportBuilder()\n    n = len(host.gpus())\n    if n < expect:\n        r.finding(None, Status.UNHEALTHY, f\"{{n}} GPUs, expected {{expect}}\", Action.REBOOT_NODE)\n    r.metric(\"gpus\", n)\n    return r.finish(\"all good\")\n\n\nDiagnostics = export_diagnostic(run)\n"
        )
    } else {
        format!(
            "\"\"\"`{name}`: describe what this check looks at and when it is unhappy.\"\"\"\n\nfrom gpuwarden_plugin import Action, Status, ReportBuilder, export_health_check, fmt_f64\n\n\ndef check(host):\n    limit = host.config().f64(\"max_celsius\", 85.0)\n    r = ReportBuilder()\n    for s in host.samples():\n        if s.lost:\n            r.finding(s.index, Status.UNHEALTHY, \"GPU lost\", Action.REBOOT_NODE)\n        elif s.temperature_celsius is not None and s.temperature_celsius >= limit:\n            r.finding(s.index, Status.DEGRADED, f\"{{fmt_f64(s.temperature_celsius)}}°C\", Action.NONE)\n    return r.finish(\"all good\")\n\n\nChecker = export_health_check(check)\n"
        )
    }
}

fn js_app(name: &str, diagnostic: bool) -> String {
    if diagnostic {
        format!(
            "// `{name}`: describe what this diagnostic checks and its parameters.\n\nimport {{ Action, Status, ReportBuilder, exportDiagnostic }} from './sdk/plugin.js';\n\nfunction run(host, params) {{\n  const expect = params.u64('expect_gpus', 0n);\n  const r = new ReportBuilder();\n  const n = BigInt(host.gpus().length);\n  if (n < expect) {{\n    r.finding(null, Status.UNHEALTHY, `${{n}} GPUs, expected ${{expect}}`, Action.REBOOT_NODE);\n  }}\n  r.metric('gpus', Number(n));\n  return r.finish('all good');\n}}\n\nexport const diagnostics = exportDiagnostic(run);\n"
        )
    } else {
        format!(
            "// `{name}`: describe what this check looks at and when it is unhappy.\n\nimport {{ Action, Status, ReportBuilder, exportHealthCheck }} from './sdk/plugin.js';\n\nfunction check(host) {{\n  const limit = host.config().f64('max_celsius', 85.0);\n  const r = new ReportBuilder();\n  for (const s of host.samples()) {{\n    if (s.lost) {{\n      r.finding(s.index, Status.UNHEALTHY, 'GPU lost', Action.REBOOT_NODE);\n    }} else if (s.temperatureCelsius !== undefined && s.temperatureCelsius >= limit) {{\n      r.finding(s.index, Status.DEGRADED, `${{s.temperatureCelsius}}°C`, Action.NONE);\n    }}\n  }}\n  return r.finish('all good');\n}}\n\nexport const checker = exportHealthCheck(check);\n"
        )
    }
}

/// What `plugin build` made.
#[derive(Debug, Clone)]
pub struct Built {
    /// The component.
    pub path: PathBuf,
    /// Its sha256, hex.
    pub sha256: String,
    /// Its size, bytes.
    pub bytes: u64,
}

/// The language of the project in `dir`: `Cargo.toml` (Rust), `app.py` (Python) or `app.js`
/// (JavaScript).
pub fn detect(dir: &Path) -> anyhow::Result<Lang> {
    if dir.join("Cargo.toml").is_file() {
        Ok(Lang::Rust)
    } else if dir.join("app.py").is_file() {
        Ok(Lang::Python)
    } else if dir.join("app.js").is_file() {
        Ok(Lang::Js)
    } else {
        bail!(
            "{}: no Cargo.toml, app.py or app.js: not a plugin project (make one with `gpuwarden-agent plugin new NAME --lang rust|python|js`)",
            dir.display()
        )
    }
}

/// The first of `dir` and its parents holding `rel`.
fn above(dir: &Path, rel: &str) -> Option<PathBuf> {
    dir.ancestors().map(|a| a.join(rel)).find(|p| p.exists())
}

/// The world a Python or JavaScript app exports, from the SDK's export call in it.
fn world(source: &str) -> &'static str {
    if source.contains("export_diagnostic(") || source.contains("exportDiagnostic(") {
        "diagnostic"
    } else {
        "health-check"
    }
}

fn tool(dir: &Path, rel: &str, program: &str, install: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = above(dir, rel) {
        return Ok(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(program))
                .find(|f| f.is_file())
        })
        .unwrap_or_default();
    on_path.with_context(|| {
        format!("{program} not found (in {rel} of the project or above, or on PATH): {install}")
    })
}

fn run(mut cmd: Command, what: &str) -> anyhow::Result<std::process::Output> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("running {what}: {shown}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {shown}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Builds the plugin project in `dir` into a component: `cargo build --release --target
/// wasm32-wasip2` (Rust), componentize-py (Python: `.venv/bin/componentize-py` of the
/// project or a folder above, else on PATH) or componentize-js (JavaScript:
/// `node_modules/.bin/componentize-js` likewise). The output is `DIR/build/NAME.wasm` for
/// Python and JavaScript, cargo's for Rust.
pub fn build(dir: &Path) -> anyhow::Result<Built> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}", dir.display()))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let path = match detect(&dir)? {
        Lang::Rust => {
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(&dir);
            let out = run(
                cmd,
                "cargo (is the target installed? rustup target add wasm32-wasip2)",
            )?;
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|m| m["reason"] == "compiler-artifact")
                .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
                .context("cargo built no .wasm: is the crate a cdylib?")?
        }
        Lang::Python => {
            let wit = above(&dir, "wit/plugin.wit")
                .context("no wit/plugin.wit in the project or above")?;
            let sdk = above(&dir, "gpuwarden_plugin/__init__.py")
                .context("no gpuwarden_plugin/ (the SDK) in the project or above")?;
            let sdk_root = sdk
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let app = std::fs::read_to_string(dir.join("app.py"))?;
            let py = tool(
                &dir,
                ".venv/bin/componentize-py",
                "componentize-py",
                "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt",
            )?;
            let out = dir.join("build").join(format!("{name}.wasm"));
            std::fs::create_dir_all(dir.join("build"))?;
            let mut cmd = Command::new(py);
            cmd.arg("-d")
                .arg(wit.parent().unwrap_or(&dir))
                .args(["-w", world(&app), "componentize", "app", "-p"])
                .arg(&dir)
                .arg("-p")
                .arg(&sdk_root)
                .arg("-o")
                .arg(&out)
                .current_dir(&dir);
            run(cmd, "componentize-py")?;
            out
        }
        Lang::Js => {
            let wit = above(&dir, "wit/plugin.wit")
                .context("no wit/plugin.wit in the project or above")?;
            let app = std::fs::read_to_string(dir.join("app.js"))?;
            let js = tool(
                &dir,
                "node_modules/.bin/componentize-js",
                "componentize-js",
                "npm ci --ignore-scripts",
            )?;
            let out = dir.join("build").join(format!("{name}.wasm"));
            std::fs::create_dir_all(dir.join("build"))?;
            // The app's relative imports (`./sdk/plugin.js`, `../../sdk/plugin.js`) resolve
            // from the working folder only: run from the folder holding the SDK.
            let root = above(&dir, "sdk/plugin.js")
                .and_then(|p| p.parent().and_then(Path::parent).map(Path::to_path_buf))
                .context("no sdk/plugin.js (the SDK) in the project or above")?;
            let app_rel = dir
                .join("app.js")
                .strip_prefix(&root)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| dir.join("app.js"));
            let mut cmd = Command::new(js);
            cmd.arg(app_rel)
                .arg("--wit")
                .arg(wit.parent().unwrap_or(&dir))
                .args([
                    "--world-name",
                    world(&app),
                    "--disable",
                    "http",
                    "fetch-event",
                    "--out",
                ])
                .arg(&out)
                .current_dir(&root);
            run(cmd, "componentize-js")?;
            out
        }
    };
    let sha256 = super::manager::digest_file(&path)?;
    let bytes = std::fs::metadata(&path)?.len();
    Ok(Built {
        path,
        sha256,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the SDK folders is compiled in (a new one must be added to the lists).
    #[test]
    fn the_embedded_sdks_are_the_whole_sdk_folders() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (dir, ext, list) in [
            ("plugins/python/gpuwarden_plugin", "py", PYTHON_SDK),
            ("plugins/js/sdk", "js", JS_SDK),
        ] {
            let mut on_disk: Vec<String> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| f.ends_with(&format!(".{ext}")))
                .collect();
            on_disk.sort();
            let mut embedded: Vec<String> = list.iter().map(|(f, _)| f.to_string()).collect();
            embedded.sort();
            assert_eq!(on_disk, embedded, "{dir}");
        }
    }

    #[test]
    fn the_world_follows_the_export_call() {
        assert_eq!(
            world("Checker = export_health_check(check)"),
            "health-check"
        );
        assert_eq!(world("Diagnostics = export_diagnostic(run)"), "diagnostic");
        assert_eq!(
            world("export const diagnostics = exportDiagnostic(run);"),
            "diagnostic"
        );
    }
}
