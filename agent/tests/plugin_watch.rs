//! Hot reload without polling: the agent learns of changed files from the kernel, so a
//! change is still picked up with `reload_interval` at an hour, and an agent whose files do
//! not change has no thread waking up for them.

use std::time::{Duration, Instant};

use crate::util::{plugins, sha256, Agent, Scratch};

/// Context switches (voluntary and involuntary) of the agent's threads named `names`.
fn switches(pid: u32, names: &[&str]) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| names.iter().any(|n| c.trim().starts_with(n)))
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

#[test]
fn changes_are_picked_up_without_polling() {
    let dir = Scratch::new("watch");
    let live = dir.0.join("live.wasm");
    std::fs::copy(plugins().join("thermal.wasm"), &live).unwrap();
    // A plugin in another folder, added later by a config change: its folder is followed.
    let other_dir = Scratch::new("watch-other");
    let other = other_dir.0.join("other.wasm");
    std::fs::copy(plugins().join("xid.wasm"), &other).unwrap();
    let entry = |name: &str, path: &std::path::Path, sha: &str| {
        format!(
            "[[plugins]]\nname = \"{name}\"\npath = \"{}\"\nsha256 = \"{sha}\"\n",
            path.display()
        )
    };
    let base = "[gpu]\nbackend = \"fake\"\nfake_count = 1\n[plugin]\nreload_interval = \"1h\"\n";
    let thermal_sha = sha256(&live);
    let cfg = dir.write(
        "agent.toml",
        &format!("{base}{}", entry("live", &live, &thermal_sha)),
    );
    let agent = Agent::start(&["--config", cfg.to_str().unwrap()], &[]);
    agent.wait_plugins("live loaded", |p| {
        p["plugins"][0]["sha256"] == thermal_sha.as_str()
    });
    let within = |what: &str, cond: &dyn Fn(&serde_json::Value) -> bool| {
        let t = Instant::now();
        agent.wait_plugins(what, cond);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{what} took {:?}: polled, not woken",
            t.elapsed()
        );
    };

    // A plugin file replaced on disk: the new file is read (and refused: its digest is not
    // the pinned one).
    std::fs::copy(plugins().join("nvlink.wasm"), &live).unwrap();
    within("the replaced file read", &|p| {
        p["plugins"][0]["load_error"]
            .as_str()
            .is_some_and(|e| e.contains("sha256 mismatch"))
    });

    // The config file changed: the new pin loads the new file, and a plugin from another
    // folder is added.
    let nvlink_sha = sha256(&live);
    let xid_sha = sha256(&other);
    std::fs::write(
        &cfg,
        format!(
            "{base}{}{}",
            entry("live", &live, &nvlink_sha),
            entry("other", &other, &xid_sha)
        ),
    )
    .unwrap();
    within("config change applied", &|p| {
        p["plugins"].as_array().is_some_and(|a| {
            a.len() == 2
                && a.iter()
                    .all(|p| p["loaded"] == true && p["load_error"].is_null())
                && a.iter().any(|p| p["sha256"] == nvlink_sha.as_str())
        })
    });

    // The other folder is watched too: its file replaced is read.
    std::fs::copy(plugins().join("ecc.wasm"), &other).unwrap();
    within("the other folder's file read", &|p| {
        p["plugins"].as_array().is_some_and(|a| {
            a.iter().any(|p| {
                p["name"] == "other"
                    && p["load_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("sha256 mismatch"))
            })
        })
    });
}

#[test]
fn an_agent_whose_files_do_not_change_does_not_wake_for_them() {
    let dir = Scratch::new("watch-idle");
    // A short reload interval: polling would wake the plugin threads ~30 times below.
    let cfg = dir.write(
        "agent.toml",
        "[gpu]\nbackend = \"fake\"\nfake_count = 1\n[plugin]\nreload_interval = \"100ms\"\n",
    );
    let agent = Agent::start(&["--config", cfg.to_str().unwrap()], &[]);
    // Past the start-up's own work (slow on a loaded machine running a debug build).
    std::thread::sleep(Duration::from_millis(1500));
    // The plugin runtime's threads and the file watcher's.
    let threads = ["plugins", "notify-rs"];
    let before = switches(agent.pid(), &threads);
    std::thread::sleep(Duration::from_secs(3));
    let woke = switches(agent.pid(), &threads) - before;
    assert!(
        woke <= 2,
        "plugin threads woke {woke} times in 3 s with nothing to do"
    );

    // Still alive to changes.
    std::fs::write(
        &cfg,
        format!(
            "[gpu]\nbackend = \"fake\"\nfake_count = 1\n[plugin]\nreload_interval = \"100ms\"\n{}",
            crate::util::plugin_entry("xid", "xid.wasm", "")
        ),
    )
    .unwrap();
    agent.wait_plugins("xid added", |p| p["plugins"][0]["loaded"] == true);
}
