//! Plugin files refused at load, each with one clear line: wrong digest, not a plugin, the
//! other world, corrupt, not WebAssembly at all, missing, a future contract, exports of the
//! wrong type, a FIFO (refused at once: waiting on it would stall every plugin).

use std::process::Command;

use crate::plugin_runs::node_token;
use crate::plugins::wait_status;
use crate::util::{plugin_entry, plugins, sha256, Agent, Scratch, BIN};

#[test]
fn bad_plugin_files_are_refused_with_clear_errors() {
    let dir = Scratch::new("refused");
    let (token, bearer) = node_token(&dir);
    let xid = plugins().join("xid.wasm");
    let corrupt = dir.0.join("corrupt.wasm");
    std::fs::write(&corrupt, b"\0asm garbage that is not a component").unwrap();
    let text = dir.0.join("text.wasm");
    std::fs::write(&text, b"hello, I am not WebAssembly at all\n").unwrap();
    let wrong_check = plugins().join("wrong_signature.wasm");
    let wrong_run = plugins().join("wrong_run.wasm");
    let not_plugin = plugins().join("not-a-plugin.wasm");
    let sanity = plugins().join("gpu_sanity.wasm");
    let future = plugins().join("future_version.wasm");
    let zeros = "0".repeat(64);
    let fifo = dir.0.join("fifo.wasm");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let cfg = format!(
        "[gpu]\nbackend = \"fake\"\nfake_count = 1\n{token}\
         [[plugins]]\nname = \"badmagic\"\npath = \"{}\"\nsha256 = \"{}\"\n\
         [[plugins]]\nname = \"wrongcheck\"\npath = \"{}\"\nsha256 = \"{}\"\n\
         [[plugins]]\nname = \"wrongrun\"\npath = \"{}\"\nsha256 = \"{}\"\n\
         [[plugins]]\nname = \"mismatch\"\npath = \"{}\"\nsha256 = \"{zeros}\"\n\
         [[plugins]]\nname = \"command\"\npath = \"{}\"\nsha256 = \"{}\"\n\
         [[plugins]]\nname = \"wrongkind\"\npath = \"{}\"\nsha256 = \"{}\"\nkind = \"check\"\n\
         [[plugins]]\nname = \"corrupt\"\npath = \"{}\"\nsha256 = \"{}\"\n\
         [[plugins]]\nname = \"missing\"\npath = \"{}\"\nsha256 = \"{zeros}\"\n\
         [[plugins]]\nname = \"future\"\npath = \"{}\"\nsha256 = \"{}\"\n\
         [[plugins]]\nname = \"fifo\"\npath = \"{}\"\nsha256 = \"{zeros}\"\n\
         {}",
        text.display(),
        sha256(&text),
        wrong_check.display(),
        sha256(&wrong_check),
        wrong_run.display(),
        sha256(&wrong_run),
        xid.display(),
        not_plugin.display(),
        sha256(&not_plugin),
        sanity.display(),
        sha256(&sanity),
        corrupt.display(),
        sha256(&corrupt),
        dir.0.join("nowhere.wasm").display(),
        future.display(),
        sha256(&future),
        fifo.display(),
        plugin_entry("good", "thermal.wasm", "interval = \"200ms\""),
    );
    let agent = Agent::start(
        &["--config", dir.write("agent.toml", &cfg).to_str().unwrap()],
        &[],
    );
    let listing = agent.wait_plugins("every plugin tried", |p| {
        p["plugins"].as_array().is_some_and(|a| {
            a.len() == 11
                && a.iter()
                    .all(|p| p["loaded"] == true || p["load_error"].is_string())
        })
    });
    let err = |name: &str| {
        let p = listing["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap();
        assert_eq!(p["loaded"], false, "{p:#}");
        let e = p["load_error"].as_str().unwrap().to_string();
        assert!(!e.contains('\n'), "a load error is one line: {e}");
        e
    };
    let e = err("badmagic");
    assert!(
        e.contains("does not start with the WebAssembly magic number"),
        "{e}"
    );
    // Exports of the right interface with the wrong type are refused at load.
    let e = err("wrongcheck");
    assert!(
        e.starts_with("wrong signature: `check` in gpuwarden:plugin/checker@0.1.0 is `func() -> string`; this agent calls `check: func() -> report`"),
        "{e}"
    );
    let e = err("wrongrun");
    assert!(
        e.starts_with("wrong signature: `run` in gpuwarden:plugin/diagnostics@0.1.0 is `func(params: list<tuple<string, string>>) -> record { status: enum { healthy, degraded, unhealthy, unknown }, message: string }`"),
        "{e}"
    );
    let e = err("mismatch");
    assert!(
        e.contains("sha256 mismatch") && e.contains(&zeros) && e.contains(&sha256(&xid)),
        "{e}"
    );
    let e = err("command");
    assert!(
        e.contains("not a gpuwarden plugin")
            && e.contains("wasi:cli/run")
            && e.contains("gpuwarden:plugin/checker@0.1.0"),
        "{e}"
    );
    let e = err("wrongkind");
    assert!(
        e.contains("the config says health check, the component is a diagnostic"),
        "{e}"
    );
    let e = err("corrupt");
    assert!(e.contains("not a WebAssembly component"), "{e}");
    let e = err("future");
    assert!(
        e.contains("built against gpuwarden:plugin@0.2.0")
            && e.contains("provides gpuwarden:plugin@0.1.0"),
        "{e}"
    );
    let e = err("fifo");
    assert!(
        e.contains("fifo.wasm") && e.contains("a FIFO, not a regular file"),
        "{e}"
    );
    let e = err("missing");
    assert!(
        e.contains("cannot read") && e.contains("nowhere.wasm"),
        "{e}"
    );
    // The good one runs; the refused ones show in the metrics.
    wait_status(&agent, "good", 0.0);
    let m = agent.metrics();
    assert_eq!(
        m.value("gpuwarden_plugin_load_failed", &[("plugin", "corrupt")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("gpuwarden_plugin_load_failed", &[("plugin", "good")]),
        Some(0.0)
    );
    let (s, body) = agent.post_as("/v1/plugins/corrupt/run", &bearer, "");
    assert_eq!(s, 409, "{body}");
    // `plugin test` refuses them too, in one line, with exit status 2.
    for file in [&wrong_check, &wrong_run, &text, &fifo] {
        let out = Command::new(BIN)
            .args(["plugin", "test"])
            .arg(file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    // The FIFO's reason once, not chained twice.
    let out = Command::new(BIN)
        .args(["plugin", "test"])
        .arg(&fifo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("a FIFO").count(), 1, "{stderr}");
}
