//! The plugin authoring commands of the agent binary (`plugin digest`, `plugin test`,
//! `plugin new`), run as processes.

use std::process::Command;

use crate::util::{plugins, sha256, Scratch, BIN};

#[test]
fn authoring_commands_digest_test_and_new() {
    let xid = plugins().join("xid.wasm");
    let out = Command::new(BIN)
        .args(["plugin", "digest"])
        .arg(&xid)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&sha256(&xid)));

    let out = Command::new(BIN)
        .args(["plugin", "test"])
        .arg(&xid)
        .args(["--inject", "xid:48@3", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(o["report"]["status"], "unhealthy");
    assert_eq!(o["report"]["findings"][0]["gpu"], 3);
    assert_eq!(o["report"]["findings"][0]["action"], "reset_gpu");

    let out = Command::new(BIN)
        .args(["plugin", "test"])
        .arg(plugins().join("thermal.wasm"))
        .args([
            "--inject",
            "temperature:88@1",
            "--set",
            "warning_celsius=80",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("DEGRADED") && text.contains("88°C"),
        "{text}"
    );

    let out = Command::new(BIN)
        .args(["plugin", "test"])
        .arg(plugins().join("spin.wasm"))
        .args(["--timeout", "100ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("deadline exceeded"));
    let out = Command::new(BIN)
        .args(["plugin", "test", "/nonexistent.wasm"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["plugin", "test"])
        .arg(&xid)
        .args(["--inject", "xid@0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs the field \"code\""));

    // `plugin new` makes a crate that builds as it is and passes `plugin test`.
    let dir = Scratch::new("new");
    let sdk = crate::util::repo().join("plugins/sdk");
    let out = Command::new(BIN)
        .args(["plugin", "new", "my-check", "--dir"])
        .arg(&dir.0)
        .arg("--sdk")
        .arg(&sdk)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let krate = dir.0.join("my-check");
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(crate::util::repo().join("plugins/target/new-plugin"))
        .current_dir(&krate)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm =
        crate::util::repo().join("plugins/target/new-plugin/wasm32-wasip2/release/my_check.wasm");
    let out = Command::new(BIN)
        .args(["plugin", "test"])
        .arg(&wasm)
        .args(["--inject", "temperature:90@2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("DEGRADED"), "{text}");
}

/// Checks that compare with the previous run see injected counters grow: `plugin test` runs
/// the plugin with the fleet before the faults as its previous run.
#[test]
fn plugin_test_shows_counters_that_grew() {
    for (plugin, inject, gpu, grew) in [
        ("nvlink.wasm", "nvlink_errors:2:9@7", 7, "grew by 9"),
        ("pcie.wasm", "pcie_replays:50@6", 6, "grew by 50"),
    ] {
        let out = Command::new(BIN)
            .args(["plugin", "test"])
            .arg(plugins().join(plugin))
            .args(["--inject", inject, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(o["report"]["status"], "degraded", "{plugin}: {o}");
        let f = &o["report"]["findings"][0];
        assert_eq!(f["gpu"], gpu, "{o}");
        assert!(f["message"].as_str().unwrap_or("").contains(grew), "{o}");
    }
}
