//! Plugins over time: hot reload (add, replace, refuse, remove), the compile cache across
//! restarts and its pruning, and files rewritten while the agent starts.

use std::time::{Duration, Instant};

use crate::plugins::wait_status;
use crate::util::{plugin_entry, plugins, sha256, Agent, Scratch};

#[test]
fn hot_reload_adds_replaces_and_removes_plugins() {
    let dir = Scratch::new("reload");
    let live = dir.0.join("live.wasm");
    std::fs::copy(plugins().join("thermal.wasm"), &live).unwrap();
    let entry = |sha: &str| {
        format!("[[plugins]]\nname = \"live\"\npath = \"{}\"\nsha256 = \"{sha}\"\ninterval = \"200ms\"\n", live.display())
    };
    let base = "[gpu]\nbackend = \"fake\"\nfake_count = 2\n[plugin]\nreload_interval = \"200ms\"\n";
    let thermal_sha = sha256(&live);
    let cfg = dir.write("agent.toml", &format!("{base}{}", entry(&thermal_sha)));
    let agent = Agent::start(&["--config", cfg.to_str().unwrap()], &[]);
    agent.wait_plugins("live loaded", |p| {
        p["plugins"][0]["sha256"] == thermal_sha.as_str()
    });
    wait_status(&agent, "live", 0.0);

    // Add a plugin.
    std::fs::write(
        &cfg,
        format!(
            "{base}{}{}",
            entry(&thermal_sha),
            plugin_entry("xid", "xid.wasm", "interval = \"200ms\"")
        ),
    )
    .unwrap();
    agent.wait_plugins("xid added", |p| {
        p["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "xid" && p["loaded"] == true)
    });

    // A new file that does not match the pinned digest is refused; the old version runs on.
    std::fs::copy(plugins().join("nvlink.wasm"), &live).unwrap();
    let nvlink_sha = sha256(&live);
    let p = agent.wait_plugins("refused replacement", |p| {
        p["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "live" && p["load_error"].is_string())
    });
    let live_entry = p["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "live")
        .cloned()
        .unwrap();
    let e = live_entry["load_error"].as_str().unwrap();
    assert!(
        e.contains("sha256 mismatch") && e.contains("previous version keeps running"),
        "{e}"
    );
    assert_eq!(live_entry["sha256"], thermal_sha.as_str());
    assert_eq!(live_entry["loaded"], true);
    // The xid plugin was not disturbed.
    assert_eq!(
        agent.plugin("xid").unwrap()["load_error"],
        serde_json::Value::Null
    );

    // Pinning the new digest replaces it.
    std::fs::write(
        &cfg,
        format!(
            "{base}{}{}",
            entry(&nvlink_sha),
            plugin_entry("xid", "xid.wasm", "interval = \"200ms\"")
        ),
    )
    .unwrap();
    agent.wait_plugins("live replaced", |p| {
        p["plugins"].as_array().unwrap().iter().any(|p| {
            p["name"] == "live" && p["sha256"] == nvlink_sha.as_str() && p["load_error"].is_null()
        })
    });
    let msg = || {
        agent
            .plugin("live")
            .and_then(|p| {
                p["last_result"]["report"]["message"]
                    .as_str()
                    .map(String::from)
            })
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !msg().contains("NVLink") {
        assert!(
            Instant::now() < deadline,
            "replacement never ran: {}",
            msg()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A broken config keeps the running set.
    std::fs::write(
        &cfg,
        "[gpu]\nbackend = \"fake\"\nfake_count = 2\n[[plugins]]\nname = 1\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(agent.plugins()["plugins"].as_array().unwrap().len(), 2);

    // Removing one stops it.
    std::fs::write(&cfg, format!("{base}{}", entry(&nvlink_sha))).unwrap();
    agent.wait_plugins("xid removed", |p| {
        p["plugins"].as_array().unwrap().len() == 1
    });
    let logs = agent.logs.lock().unwrap().join("\n");
    assert!(logs.contains("configuration reload failed"), "{logs}");
}

#[test]
fn compiled_plugins_are_cached_across_restarts() {
    let dir = Scratch::new("cache");
    let cfg = format!(
        "[gpu]\nbackend = \"fake\"\nfake_count = 1\n[plugin]\ncache_dir = \"{}\"\n{}",
        dir.0.join("cache").display(),
        plugin_entry("ecc", "ecc.wasm", "")
    );
    let file = dir.write("agent.toml", &cfg);
    for expect_cached in [false, true] {
        let agent = Agent::start(&["--config", file.to_str().unwrap()], &[]);
        let p = agent.wait_plugins("ecc loaded", |p| p["plugins"][0]["loaded"] == true);
        assert_eq!(p["plugins"][0]["from_cache"], expect_cached, "{p:#}");
    }
    let cache = dir.0.join("cache");
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "one compiled artefact per plugin and engine"
    );

    // Pruning at the next start: a replaced version unused for 8 days goes (as would an
    // older agent's entry), one another agent sharing the folder used yesterday stays, and
    // the entry in use stays however old it was.
    let aged = |name: &str, days: u64| {
        let path = cache.join(name);
        std::fs::write(&path, b"stale").unwrap();
        let when = std::time::SystemTime::now() - Duration::from_secs(days * 24 * 3600);
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(when).unwrap();
        path
    };
    let replaced = aged(&format!("{}-0123456789abcdef.cwasm", "b".repeat(64)), 8);
    let shared = aged(&format!("{}-0123456789abcdef.cwasm", "c".repeat(64)), 1);
    let ecc_entry = &entries[0];
    std::fs::File::options()
        .write(true)
        .open(ecc_entry)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(30 * 24 * 3600))
        .unwrap();
    let agent = Agent::start(&["--config", file.to_str().unwrap()], &[]);
    let p = agent.wait_plugins("ecc loaded", |p| p["plugins"][0]["loaded"] == true);
    assert_eq!(p["plugins"][0]["from_cache"], true, "{p:#}");
    // Pruned once the list is applied, just after the plugins load.
    let pruned = gpuwarden_testkit::poll(Duration::from_secs(10), || {
        (!replaced.exists()).then_some(())
    });
    assert!(pruned.is_some(), "an entry unused for a week is pruned");
    assert!(shared.exists(), "an entry used within the week stays");
    assert!(ecc_entry.exists(), "the entry in use stays");
    let used = std::fs::metadata(ecc_entry).unwrap().modified().unwrap();
    assert!(
        used.elapsed().unwrap_or_default() < Duration::from_secs(600),
        "loading it marked it used"
    );
}

/// Regression (hardening follow-up): 512 bytes flipped at offset 4096 of a cache entry, the
/// length unchanged, loaded with `from_cache=true` and the agent died of SIGSEGV at every
/// start. The entry's digest no longer matches: the plugin is compiled again, runs, and the
/// entry is rewritten (the next start loads it from the cache again).
#[test]
fn a_cache_entry_damaged_in_place_is_compiled_again() {
    let dir = Scratch::new("cache-damaged");
    let cache = dir.0.join("cache");
    let cfg = format!(
        "[gpu]\nbackend = \"fake\"\nfake_count = 1\n[plugin]\ncache_dir = \"{}\"\n{}",
        cache.display(),
        plugin_entry("ecc", "ecc.wasm", "interval = \"200ms\"")
    );
    let file = dir.write("agent.toml", &cfg);
    let args = ["--config", file.to_str().unwrap()];
    let agent = Agent::start(&args, &[]);
    agent.wait_plugins("ecc loaded", |p| p["plugins"][0]["loaded"] == true);
    assert_eq!(agent.terminate().code(), Some(0));
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&entry).unwrap();
    let len = bytes.len();
    assert!(len > 4096 + 512, "{len}");
    for b in &mut bytes[4096..4096 + 512] {
        *b ^= 0xff;
    }
    std::fs::write(&entry, &bytes).unwrap();

    for expect_cached in [false, true] {
        let agent = Agent::start(&args, &[]);
        let p = agent.wait_plugins("ecc loaded", |p| p["plugins"][0]["loaded"] == true);
        assert_eq!(p["plugins"][0]["from_cache"], expect_cached, "{p:#}");
        wait_status(&agent, "ecc", 0.0);
        assert_eq!(
            agent.terminate().code(),
            Some(0),
            "the agent ran and stopped cleanly"
        );
    }
    assert_eq!(
        std::fs::read(&entry).unwrap().len(),
        len,
        "the entry was rewritten"
    );
    assert_ne!(std::fs::read(&entry).unwrap(), bytes);
}

/// Regression: plugin files rewritten while the agent was still loading (a rebuild, a copy)
/// could make the watcher re-apply only the plugins loaded so far and drop the others; and a
/// file rewritten with identical content was reloaded for nothing.
#[test]
fn files_rewritten_during_start_up_do_not_drop_plugins() {
    let dir = Scratch::new("rewrite");
    let names = ["xid", "thermal", "ecc", "pcie"];
    let mut cfg = format!(
        "[gpu]\nbackend = \"fake\"\nfake_count = 1\n[plugin]\nreload_interval = \"100ms\"\ncache_dir = \"{}\"\n",
        dir.0.join("cache").display()
    );
    for n in names {
        let f = dir.0.join(format!("{n}.wasm"));
        std::fs::copy(plugins().join(format!("{n}.wasm")), &f).unwrap();
        cfg.push_str(&format!(
            "[[plugins]]\nname = \"{n}\"\npath = \"{}\"\nsha256 = \"{}\"\n",
            f.display(),
            sha256(&f)
        ));
    }
    let agent = Agent::start(
        &["--config", dir.write("agent.toml", &cfg).to_str().unwrap()],
        &[],
    );
    // Rewrite every file with its own bytes while the (uncached, slow) loads are under way.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        for n in names {
            let f = dir.0.join(format!("{n}.wasm"));
            let bytes = std::fs::read(&f).unwrap();
            std::fs::write(&f, bytes).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let p = agent.wait_plugins("all four loaded", |p| {
        p["plugins"]
            .as_array()
            .is_some_and(|a| a.len() == 4 && a.iter().all(|p| p["loaded"] == true))
    });
    assert!(
        p["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["load_error"].is_null()),
        "{p:#}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(agent.plugins()["plugins"].as_array().unwrap().len(), 4);
    let logs = agent.logs.lock().unwrap().join("\n");
    assert!(!logs.contains("plugin removed"), "{logs}");
    // A file read while it was being rewritten (truncated, then written: not atomic, as `cp`
    // writes) fails its sha256 pin and is refused; loading it once whole is then right.
    // Only a reload with no such refusal before it is a reload for nothing.
    for line in logs.lines().filter(|l| l.contains("plugin replaced")) {
        let plugin = line.split("plugin=").nth(1).unwrap_or("");
        assert!(
            logs.contains(&format!(
                "plugin refused plugin={plugin} error=sha256 mismatch"
            )),
            "identical files were reloaded: {logs}"
        );
    }
}
