//! Plugins in Python and JavaScript: the SDKs' own unit tests; both examples of each language
//! built with `gpuwarden-agent plugin build` and run with `plugin test` under injected faults,
//! their reports equal to the Rust examples' for the same faults (the same helpers, the same
//! XID table); and `plugin new --lang python|js` making projects that build and run as they
//! are. The toolchains come from PyPI and npm (`gpuwarden_testkit::lang_toolchains`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{plugins, repo, Scratch, BIN};

fn agent(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `plugin build DIR`: the component's path (asserting the digest line).
fn build(dir: &Path) -> PathBuf {
    let (code, out, err) = agent(&["plugin", "build", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    let path = PathBuf::from(lines.next().unwrap());
    let digest = lines.next().unwrap();
    assert!(digest.starts_with("sha256:"), "{out}");
    assert!(
        digest.contains(&crate::util::sha256(&path)),
        "the printed digest is the file's: {out}"
    );
    path
}

/// `plugin test FILE --json` with `faults`: (status and message, findings as (gpu, status,
/// action, message), metrics).
type Outcome = (String, Vec<(Value, String, String, String)>, Value);

fn outcome(file: &Path, faults: &[&str], cache: &Path) -> Outcome {
    let mut args = vec![
        "plugin",
        "test",
        file.to_str().unwrap(),
        "--json",
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    for f in faults {
        args.extend(["--inject", f]);
    }
    let (code, out, err) = agent(&args);
    assert_eq!(code, 0, "{}: {err}", file.display());
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let r = &v["report"];
    let findings = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["gpu"].clone(),
                f["status"].as_str().unwrap().to_string(),
                f["action"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (
        format!(
            "{}: {}",
            r["status"].as_str().unwrap(),
            r["message"].as_str().unwrap()
        ),
        findings,
        r["metrics"].clone(),
    )
}

#[test]
fn the_sdks_own_tests_pass() {
    if !gpuwarden_testkit::lang_toolchains() {
        return;
    }
    let root = repo().join("plugins");
    let py = Command::new("python3")
        .args(["-m", "unittest", "-q"])
        .current_dir(root.join("python"))
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "python3 -m unittest:\n{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let js = Command::new("node")
        .arg("--test")
        .current_dir(root.join("js"))
        .output()
        .unwrap();
    assert!(
        js.status.success(),
        "node --test:\n{}{}",
        String::from_utf8_lossy(&js.stdout),
        String::from_utf8_lossy(&js.stderr)
    );
}

#[test]
fn python_and_javascript_examples_report_what_the_rust_ones_do() {
    if !gpuwarden_testkit::lang_toolchains() {
        return;
    }
    let cache = Scratch::new("lang-cache");
    let rust = plugins();
    let cases: &[(&str, &[&str])] = &[
        ("xid", &["xid:79@0"]),
        ("xid", &["xid:13@2", "xid:48@5"]),
        ("xid", &[]),
        ("thermal", &["temperature:97@1"]),
        ("thermal", &["temperature:88@3", "throttle:hw_slowdown@4"]),
        ("thermal", &[]),
    ];
    for lang in ["python", "js"] {
        for example in ["xid", "thermal"] {
            let built = build(
                &repo()
                    .join("plugins")
                    .join(lang)
                    .join("examples")
                    .join(example),
            );
            for (name, faults) in cases.iter().filter(|(n, _)| *n == example) {
                let want = outcome(&rust.join(format!("{name}.wasm")), faults, cache.path());
                let got = outcome(&built, faults, cache.path());
                assert_eq!(got, want, "{lang} {example} with {faults:?}");
            }
        }
    }
    // A fault the examples act on is there: xid 79 is unhealthy, reboot the node.
    let (status, findings, _) = outcome(&rust.join("xid.wasm"), &["xid:79@0"], cache.path());
    assert!(status.starts_with("unhealthy: "), "{status}");
    assert_eq!(findings[0].2, "reboot_node");
}

#[test]
fn plugin_new_makes_python_and_javascript_projects_that_build_and_run() {
    if !gpuwarden_testkit::lang_toolchains() {
        return;
    }
    let dir = Scratch::new("lang-new");
    let cache = Scratch::new("lang-new-cache");
    let tools = format!(
        "{}:{}:{}",
        repo().join("plugins/python/.venv/bin").display(),
        repo().join("plugins/js/node_modules/.bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (lang, name) in [("python", "hot-py"), ("js", "hot-js")] {
        let (code, out, err) = agent(&[
            "plugin",
            "new",
            name,
            "--lang",
            lang,
            "--dir",
            dir.path().to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("plugin build"), "{out}");
        let project = dir.path().join(name);
        // Outside the repository: the project carries the contract and the SDK.
        assert!(project.join("wit/plugin.wit").is_file());
        // The tools from PATH, as after `pip install` / `npm install -g`.
        let out = Command::new(BIN)
            .args(["plugin", "build", project.to_str().unwrap()])
            .env("PATH", &tools)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{lang}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let wasm = project.join("build").join(format!("{name}.wasm"));
        let (status, findings, _) = outcome(&wasm, &["temperature:97@1"], cache.path());
        assert!(status.starts_with("degraded: "), "{lang}: {status}");
        assert_eq!(findings.len(), 1, "{lang}: {findings:?}");
        assert_eq!(findings[0].0, 1);
        let (status, _, _) = outcome(&wasm, &[], cache.path());
        assert!(status.starts_with("healthy: "), "{lang}: {status}");
    }
    // Without the tool anywhere: a clear error naming what to install.
    let (code, _, err) = {
        let out = Command::new(BIN)
            .args([
                "plugin",
                "build",
                dir.path().join("hot-py").to_str().unwrap(),
            ])
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(2));
    assert!(
        err.contains("componentize-py not found") && err.contains("pip install"),
        "{err}"
    );
    // Not a project.
    let (code, _, err) = agent(&["plugin", "build", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("not a plugin project"), "{err}");
}
